package apidoc

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // store-local rules must not depend on the machine's zone files

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/agent"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/boltstore"
	"github.com/tillkeep/tillkeep/store"
	"github.com/tillkeep/tillkeep/store/memstore"
	tksync "github.com/tillkeep/tillkeep/sync"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// The live checks drive both daemons through a scripted session, mostly with the spec's
// own request examples, and validate every answer against what the spec documents for
// its operation and status: a status the spec does not list, a field it does not
// declare, a null list or a wrong type all fail.

const (
	posToken   = "apidoc-pos-token-0123456789"
	adminToken = "apidoc-admin-token-0123456789"
	storeID    = "S001"
	tillID     = "T01"
)

// agentNow is a Monday noon in New York, inside the example offer's validity.
var agentNow = time.Date(2026, 6, 15, 16, 0, 0, 0, time.UTC)

// platformStart is the platform's clock at the start of its session; the till API
// examples are stamped with it.
var platformStart = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func agentConfig() config.Agent {
	cfg := config.DefaultAgent()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = ""
	cfg.PosToken = posToken
	cfg.StoreID = storeID
	cfg.TillID = tillID
	return cfg
}

func newMemLedger(t testing.TB) *memstore.Store {
	l := memstore.New(storeID, tillID)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func newAgentForProbe(t testing.TB) http.Handler {
	return agent.New(agentConfig(), newMemLedger(t), discardLogger()).Handler()
}

func newPlatformForProbe(t testing.TB) http.Handler {
	srv, err := platform.NewServer(boltstore.MustOpen(t), platform.ServerConfig{
		AdminToken: adminToken, EnrollToken: "apidoc-enroll-token", Logger: discardLogger(), TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("platform server: %v", err)
	}
	return srv.Handler()
}

// liveAPI sends requests to one daemon's handler and checks each answer against the spec.
type liveAPI struct {
	t        *testing.T
	s        *spec
	checker  schemaChecker
	daemon   string
	h        http.Handler
	answered map[string]bool // operations answered at least once, shared per daemon
}

type request struct {
	method, path, token string
	// body is nil, raw text (string) or a JSON value.
	body        any
	contentType string
	header      map[string]string
	// want is the expected status; 0 accepts any status the spec documents.
	want int
}

type liveAnswer struct {
	status int
	header http.Header
	raw    []byte
	body   any
}

// get walks the JSON body by object keys and array indexes.
func (a liveAnswer) get(keys ...any) any {
	var cur any = a.body
	for _, k := range keys {
		switch key := k.(type) {
		case string:
			cur = asMap(cur)[key]
		case int:
			l := asList(cur)
			if key >= len(l) {
				return nil
			}
			cur = l[key]
		}
	}
	return cur
}

func (a liveAnswer) str(keys ...any) string { s, _ := a.get(keys...).(string); return s }

func (l *liveAPI) do(r request) liveAnswer {
	l.t.Helper()
	var rd io.Reader
	ct := r.contentType
	switch b := r.body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			l.t.Fatalf("encode the body of %s %s: %v", r.method, r.path, err)
		}
		rd = bytes.NewReader(j)
		if ct == "" {
			ct = "application/json"
		}
	}
	req := httptest.NewRequest(r.method, r.path, rd)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	l.h.ServeHTTP(rec, req)
	a := liveAnswer{status: rec.Code, header: rec.Header(), raw: rec.Body.Bytes()}
	if r.want != 0 && a.status != r.want {
		l.t.Errorf("%s %s on the %s: status %d, want %d; body %s", r.method, r.path, l.daemon, a.status, r.want, truncate(a.raw))
	}
	l.conform(r, &a)
	return a
}

func truncate(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "..."
	}
	return string(b)
}

// conform checks one answer against the spec: its operation must document the status,
// the media type, the headers and the body's shape.
func (l *liveAPI) conform(r request, a *liveAnswer) {
	l.t.Helper()
	path, _, _ := strings.Cut(r.path, "?")
	op, ok := l.find(r.method, path)
	what := fmt.Sprintf("%s %s on the %s (%d)", r.method, r.path, l.daemon, a.status)
	if !ok {
		l.t.Errorf("%s: no documented operation matches", what)
		return
	}
	l.answered[op.String()] = true
	responses, _ := op.Node["responses"].(map[string]any)
	rn, ok := responses[strconv.Itoa(a.status)]
	if !ok {
		l.t.Errorf("%s: %s does not document status %d (body %s)", what, op.ID(), a.status, truncate(a.raw))
		return
	}
	resp, err := l.s.deref(rn)
	if err != nil {
		l.t.Errorf("%s: %v", what, err)
		return
	}
	headers, _ := resp["headers"].(map[string]any)
	for _, name := range []string{"Idempotent-Replayed", "Content-Disposition", "Cache-Control", "ETag", "Content-Encoding"} {
		v := a.header.Get(name)
		hn, documented := headers[name]
		switch {
		case v == "":
		case !documented:
			l.t.Errorf("%s: answered header %s, which %s %d does not document", what, name, op.ID(), a.status)
		case documented:
			h, err := l.s.deref(hn)
			if err == nil {
				for _, e := range l.checker.validate(h["schema"], v, what+" header "+name) {
					l.t.Error(e)
				}
			}
		}
	}
	content, _ := resp["content"].(map[string]any)
	if len(a.raw) == 0 && len(content) == 0 {
		return
	}
	mt, _, err := mime.ParseMediaType(a.header.Get("Content-Type"))
	if err != nil {
		l.t.Errorf("%s: Content-Type %q: %v", what, a.header.Get("Content-Type"), err)
		return
	}
	media, ok := content[mt].(map[string]any)
	if !ok {
		l.t.Errorf("%s: answered %s, which %s %d does not document (body %s)", what, mt, op.ID(), a.status, truncate(a.raw))
		return
	}
	raw := a.raw
	if a.header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			raw, err = io.ReadAll(zr)
		}
		if err != nil {
			l.t.Errorf("%s: the gzip body does not decompress: %v", what, err)
			return
		}
	}
	switch mt {
	case "application/json":
		v, err := decodeJSON(raw)
		if err != nil {
			l.t.Errorf("%s: the body is not JSON: %v", what, err)
			return
		}
		a.body = v
		for _, e := range l.checker.validate(media["schema"], v, what) {
			l.t.Error(e)
		}
	case "application/x-ndjson":
		lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
		for i, line := range lines {
			v, err := decodeJSON([]byte(line))
			if err != nil {
				l.t.Errorf("%s line %d is not JSON: %v", what, i+1, err)
				continue
			}
			for _, e := range l.checker.validate(media["schema"], v, fmt.Sprintf("%s line %d", what, i+1)) {
				l.t.Error(e)
			}
		}
	}
}

// find returns the operation of the daemon that takes method and path: the most specific
// template when several match, as ServeMux does.
func (l *liveAPI) find(method, path string) (operation, bool) {
	var best operation
	found := false
	for _, op := range l.s.operations() {
		if op.Method != method || !op.servedBy(l.daemon) || !templateRegexp(op.Path).MatchString(path) {
			continue
		}
		if !found || len(pathParams(op.Path)) < len(pathParams(best.Path)) {
			best, found = op, true
		}
	}
	return best, found
}

// requireAnswered fails for every operation of the daemon the session did not reach.
func requireAnswered(t *testing.T, s *spec, daemon string, answered map[string]bool) {
	t.Helper()
	for _, op := range s.operations() {
		if op.servedBy(daemon) && !answered[op.String()] {
			t.Errorf("the %s session never reached %s (%s); add it to the session so its answers are checked", daemon, op, op.ID())
		}
	}
}

// exampleCatalog is the till's catalog built from the spec's examples: the store of
// putStore and the offer of createOffer, with three coupons.
func exampleCatalog(t *testing.T, s *spec, asOf time.Time) tillkeep.CatalogSnapshot {
	t.Helper()
	var st tillkeep.Store
	fromExample(t, s.requestExample(t, "putStore", ""), &st)
	st.ID = storeID
	var offer tillkeep.Offer
	fromExample(t, s.requestExample(t, "createOffer", "fixed"), &offer)
	offer.Normalize()
	snap := tillkeep.CatalogSnapshot{StoreID: storeID, Seq: 1, Store: st, Offers: []tillkeep.Offer{offer}, AsOf: asOf}
	for _, code := range []string{"SPRING-0001", "SPRING-0002", "SPRING-0003"} {
		snap.Coupons = append(snap.Coupons, tillkeep.Coupon{Code: code, OfferID: offer.ID, Status: tillkeep.CouponActive})
	}
	return snap
}

func fromExample(t *testing.T, example any, into any) {
	t.Helper()
	j, err := json.Marshal(example)
	if err != nil {
		t.Fatalf("encode example: %v", err)
	}
	if err := json.Unmarshal(j, into); err != nil {
		t.Fatalf("the example %s does not decode into %T: %v", j, into, err)
	}
}

// with returns a copy of a JSON object example with fields replaced.
func with(example any, fields map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range asMap(example) {
		out[k] = v
	}
	for k, v := range fields {
		out[k] = v
	}
	return out
}

func money(amount int64) map[string]any { return map[string]any{"amount": amount, "currency": "USD"} }

func TestLiveAgentAnswersMatchSpec(t *testing.T) {
	s := loadSpec(t)
	answered := map[string]bool{}

	ledger := newMemLedger(t)
	if err := ledger.ReplaceCatalog(context.Background(), exampleCatalog(t, s, agentNow.Add(-time.Hour))); err != nil {
		t.Fatalf("load the example catalog: %v", err)
	}
	// The sync state as the syncer reports it, every field set, so that /v1/status shows
	// its whole shape.
	syncState := tksync.Status{
		Enrolled: true, LastPushAt: agentNow.Add(-time.Minute), LastPullAt: agentNow.Add(-2 * time.Minute),
		LastError: "push journal: platform unreachable", ClockOffsetMS: -1250,
		Conflicts: tksync.ConflictsSeen{Total: 1, Recent: []wire.EntryResult{{
			Seq: 7, RedemptionID: "0197713c-77aa-7d01-8e9f-0a1b2c3d4e5f", Status: tillkeep.RedemptionConflict,
			ConflictKind: "double_redemption", ConflictID: "0197713d-0a11-7e3c-a1b2-c3d4e5f60718"}}},
	}
	srv := agent.New(agentConfig(), ledger, discardLogger(), agent.WithClock(func() time.Time { return agentNow }),
		agent.WithSyncStatus(func() any { return syncState }))
	l := &liveAPI{t: t, s: s, checker: schemaChecker{s: s}, daemon: agentDaemon, h: srv.Handler(), answered: answered}

	l.do(request{method: "GET", path: "/healthz", want: 200})
	l.do(request{method: "GET", path: "/metrics", want: 200})
	st := l.do(request{method: "GET", path: "/v1/status", token: posToken, want: 200})
	if st.get("catalog", "coupons") == nil || st.str("mode") != tillkeep.ModeOffline || st.get("sync", "enrolled") != true {
		t.Errorf("status answered %s", st.raw)
	}
	l.do(request{method: "GET", path: "/v1/status", want: 401})

	v := l.do(request{method: "POST", path: "/v1/validate", token: posToken, body: s.requestExample(t, "posValidate", ""), want: 200})
	if v.get("valid") != true {
		t.Errorf("the posValidate example is not valid against the example catalog: %s", v.raw)
	}
	v = l.do(request{method: "POST", path: "/v1/validate", token: posToken,
		body: map[string]any{"code": "SPRING-0002", "bill": money(5000)}, want: 200})
	if v.get("valid") != false || v.str("reason") != string(tillkeep.CodeRuleViolation) || v.str("rule") != tillkeep.RuleMinBill {
		t.Errorf("a bill under min_bill validated as %s", v.raw)
	}
	l.do(request{method: "POST", path: "/v1/validate", token: posToken, body: map[string]any{"code": "SPRING-0002"}, want: 400})
	l.do(request{method: "POST", path: "/v1/validate", token: posToken, body: `{"code":"` + strings.Repeat("A", agent.MaxRequestBytes) + `"}`, contentType: "application/json", want: 413})

	redeem := s.requestExample(t, "posRedeem", "")
	first := l.do(request{method: "POST", path: "/v1/redemptions", token: posToken, body: redeem, want: 201})
	again := l.do(request{method: "POST", path: "/v1/redemptions", token: posToken, body: redeem, want: 201})
	if again.header.Get("Idempotent-Replayed") != "true" || again.str("redemption_id") != first.str("redemption_id") {
		t.Errorf("a replay answered %s with Idempotent-Replayed %q; first %s", again.raw, again.header.Get("Idempotent-Replayed"), first.raw)
	}
	l.do(request{method: "POST", path: "/v1/redemptions", token: posToken, body: with(redeem, map[string]any{"bill": money(13000)}), want: 409})
	used := l.do(request{method: "POST", path: "/v1/redemptions", token: posToken, body: with(redeem, map[string]any{"transaction_id": "POS1-000999"}), want: 422})
	if used.str("error", "code") != string(tillkeep.CodeAlreadyRedeemed) {
		t.Errorf("a used coupon answered %s", used.raw)
	}
	l.do(request{method: "POST", path: "/v1/redemptions", token: posToken, body: map[string]any{}, want: 400})

	rid := first.str("redemption_id")
	l.do(request{method: "POST", path: "/v1/redemptions/" + rid + "/reverse", token: posToken, want: 200})
	l.do(request{method: "POST", path: "/v1/redemptions/" + rid + "/reverse", token: posToken, want: 200})
	l.do(request{method: "POST", path: "/v1/redemptions/0197713c-0000-7000-8000-000000000000/reverse", token: posToken, want: 404})
	l.do(request{method: "GET", path: agent.BackupPath, token: posToken, want: 404})

	// The backup streams only from the real ledger.
	db, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{Timeout: time.Second, StoreID: storeID, TillID: tillID})
	if err != nil {
		t.Fatalf("open a bolt ledger: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	bolt := &liveAPI{t: t, s: s, checker: l.checker, daemon: agentDaemon, answered: answered,
		h: agent.New(agentConfig(), db, discardLogger(), agent.WithClock(func() time.Time { return agentNow })).Handler()}
	if b := bolt.do(request{method: "GET", path: agent.BackupPath, token: posToken, want: 200}); len(b.raw) == 0 {
		t.Error("the backup of a bolt ledger is empty")
	}

	requireAnswered(t, s, agentDaemon, answered)
}

// clock is the platform's settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func TestLivePlatformAnswersMatchSpec(t *testing.T) {
	s := loadSpec(t)
	enroll := s.requestExample(t, "tillEnroll", "")
	enrollToken, _ := asMap(enroll)["enroll_token"].(string)
	clk := &clock{now: platformStart}
	srv, err := platform.NewServer(boltstore.MustOpen(t), platform.ServerConfig{
		AdminToken: adminToken, EnrollToken: enrollToken, AutoRevoke: true, MaxClockSkew: 5 * time.Minute,
		Logger: discardLogger(), Now: clk.Now, TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("platform server: %v", err)
	}
	l := &liveAPI{t: t, s: s, checker: schemaChecker{s: s}, daemon: platformDaemon, h: srv.Handler(), answered: map[string]bool{}}
	admin := func(method, path string, body any, want int) liveAnswer {
		t.Helper()
		return l.do(request{method: method, path: path, token: adminToken, body: body, want: want})
	}

	l.do(request{method: "GET", path: "/healthz", want: 200})
	l.do(request{method: "GET", path: "/metrics", want: 200})

	// Empty lists are [] on a fresh platform.
	for _, p := range []string{"/v1/stores", "/v1/offers", "/v1/redemptions", "/v1/conflicts", "/v1/tills", "/v1/anomalies"} {
		admin("GET", p, nil, 200)
	}
	l.do(request{method: "GET", path: "/v1/stores", want: 401})
	admin("GET", "/v1/stores?limit=0", nil, 400)

	// Stores, customers, offers, coupons.
	admin("PUT", "/v1/stores/"+storeID, s.requestExample(t, "putStore", ""), 200)
	admin("PUT", "/v1/stores/"+storeID, map[string]any{"bogus": 1}, 400)
	admin("PUT", "/v1/stores/"+storeID, `{"name":"`+strings.Repeat("x", 2<<20)+`"}`, 413)
	admin("GET", "/v1/stores/"+storeID, nil, 200)
	admin("GET", "/v1/stores/S999", nil, 404)
	admin("PUT", "/v1/customers/cust-42", s.requestExample(t, "putCustomer", ""), 200)
	admin("GET", "/v1/customers/cust-42", nil, 200)
	admin("GET", "/v1/customers/nobody", nil, 404)
	admin("POST", "/v1/offers", s.requestExample(t, "createOffer", "fixed"), 201)
	admin("POST", "/v1/offers", s.requestExample(t, "createOffer", "fixed"), 409)
	admin("POST", "/v1/offers", s.requestExample(t, "createOffer", "percent"), 201)
	admin("GET", "/v1/offers", nil, 200)
	admin("GET", "/v1/offers/SPRING40", nil, 200)
	admin("GET", "/v1/offers/NOPE", nil, 404)
	admin("POST", "/v1/offers/SPRING40/coupons", s.requestExample(t, "createCoupons", "codes"), 201)
	admin("POST", "/v1/offers/SPRING40/coupons", s.requestExample(t, "createCoupons", "codes"), 422)
	admin("POST", "/v1/offers/WEEKEND15/coupons", s.requestExample(t, "createCoupons", "generate"), 201)
	admin("POST", "/v1/offers/NOPE/coupons", map[string]any{"codes": []string{"X1"}}, 404)

	// A till enrolls and redeems online.
	l.do(request{method: "POST", path: "/v1/till/enroll", body: with(enroll, map[string]any{"enroll_token": "wrong"}), want: 401})
	l.do(request{method: "POST", path: "/v1/till/enroll", body: with(enroll, map[string]any{"store_id": "S999"}), want: 404})
	enrolled := l.do(request{method: "POST", path: "/v1/till/enroll", body: enroll, want: 201})
	l.do(request{method: "POST", path: "/v1/till/enroll", body: enroll, want: 409})
	tillToken := enrolled.str("token")
	till := func(method, path string, body any, want int) liveAnswer {
		t.Helper()
		return l.do(request{method: method, path: path, token: tillToken, body: body, want: want})
	}
	if v := till("POST", "/v1/till/validate", s.requestExample(t, "tillValidate", ""), 200); v.get("valid") != true {
		t.Errorf("the tillValidate example is not valid: %s", v.raw)
	}
	l.do(request{method: "POST", path: "/v1/till/validate", body: s.requestExample(t, "tillValidate", ""), want: 401})
	redeem := s.requestExample(t, "tillRedeem", "")
	online := till("POST", "/v1/till/redemptions", redeem, 201).str("redemption_id")
	till("POST", "/v1/till/redemptions", redeem, 201)
	till("POST", "/v1/till/redemptions", with(redeem, map[string]any{"bill": money(13000)}), 409)
	till("POST", "/v1/till/redemptions", with(redeem, map[string]any{
		"redemption_id": "0197713c-99cc-7d01-8e9f-0a1b2c3d4e61", "transaction_id": "POS1-000999"}), 422)
	till("GET", "/v1/till/journal", nil, 200)

	// The till uploads its journal: an offline redemption, then a second use of the
	// coupon redeemed online (a double redemption).
	clk.Set(platformStart.Add(10 * time.Minute))
	upload := s.requestExample(t, "tillUploadJournal", "")
	till("POST", "/v1/till/journal", upload, 200)
	entry := asMap(asList(asMap(upload)["entries"])[0])
	double := with(entry, map[string]any{
		"seq": 2, "entry_id": "0197713c-88bb-7d01-8e9f-0a1b2c3d4e60", "redemption_id": "0197713c-88bb-7d01-8e9f-0a1b2c3d4e60",
		"transaction_id": "POS1-000125", "code": "SPRING-0002"})
	ack := till("POST", "/v1/till/journal", map[string]any{"epoch": asMap(upload)["epoch"], "entries": []any{double}}, 200)
	if ack.str("results", 0, "status") != tillkeep.RedemptionConflict {
		t.Errorf("a double redemption was answered %s", ack.raw)
	}
	till("POST", "/v1/till/journal", map[string]any{"entries": []any{with(entry, map[string]any{"seq": 3, "till_id": "T99"})}}, 403)
	till("POST", "/v1/till/journal", map[string]any{"entries": []any{with(entry, map[string]any{"seq": 0})}}, 400)

	// The catalog feed: a snapshot (plain and gzip), then deltas from its position.
	snap := till("GET", "/v1/till/catalog/snapshot", nil, 200)
	l.do(request{method: "GET", path: "/v1/till/catalog/snapshot", token: tillToken, header: map[string]string{"Accept-Encoding": "gzip"}, want: 200})
	var header struct {
		H struct {
			Epoch string `json:"epoch"`
			Seq   uint64 `json:"seq"`
		} `json:"h"`
	}
	firstLine, _, _ := bytes.Cut(snap.raw, []byte("\n"))
	if err := json.Unmarshal(firstLine, &header); err != nil || header.H.Epoch == "" {
		t.Errorf("the snapshot's first line is not a header with an epoch: %s (%v)", firstLine, err)
	}
	feed := fmt.Sprintf("/v1/till/catalog?epoch=%s&since=", header.H.Epoch)
	head := strconv.FormatUint(header.H.Seq, 10)
	delta := till("GET", feed+head, nil, 200)
	if tag := delta.header.Get("ETag"); tag == "" {
		t.Errorf("the last delta page has no ETag: %s", truncate(delta.raw))
	} else {
		l.do(request{method: "GET", path: feed + head, token: tillToken, header: map[string]string{"If-None-Match": tag}, want: 304})
	}
	till("GET", feed+"0", nil, 410) // the store record changed after sequence 0
	till("GET", feed+"soon", nil, 400)

	// Ops look at what happened.
	cases := admin("GET", "/v1/conflicts?status=open", nil, 200)
	admin("GET", "/v1/conflicts?status=bogus", nil, 400)
	caseID := cases.str("conflicts", 0, "id")
	if caseID == "" {
		t.Fatalf("no open conflict after a double redemption: %s", cases.raw)
	}
	admin("GET", "/v1/conflicts/"+caseID, nil, 200)
	admin("GET", "/v1/conflicts/NOPE", nil, 404)
	admin("POST", "/v1/conflicts/"+caseID+"/resolve", s.requestExample(t, "resolveConflict", ""), 200)
	admin("POST", "/v1/conflicts/"+caseID+"/resolve", s.requestExample(t, "resolveConflict", ""), 409)
	admin("POST", "/v1/conflicts/"+caseID+"/resolve", map[string]any{"action": "shrug"}, 400)
	admin("GET", "/v1/coupons/SPRING-0002", nil, 200)
	admin("GET", "/v1/coupons/NOPE", nil, 404)
	admin("GET", "/v1/redemptions", nil, 200)
	admin("GET", "/v1/redemptions?mode=bogus", nil, 400)
	admin("GET", "/v1/redemptions/"+online, nil, 200)
	admin("GET", "/v1/redemptions/NOPE", nil, 404)

	// Reversals: the till its own online redemption, ops the offline one.
	till("POST", "/v1/till/redemptions/"+online+"/reverse", nil, 200)
	till("POST", "/v1/till/redemptions/NOPE/reverse", nil, 404)
	offline, _ := entry["redemption_id"].(string)
	admin("POST", "/v1/redemptions/"+offline+"/reverse", nil, 200)
	admin("POST", "/v1/redemptions/NOPE/reverse", nil, 404)

	// Revocation, issuance, uploads and their report.
	admin("POST", "/v1/coupons/revoke", s.requestExample(t, "revokeCoupons", "codes"), 200)
	admin("POST", "/v1/coupons/revoke", s.requestExample(t, "revokeCoupons", "scope"), 200)
	admin("POST", "/v1/coupons/revoke", map[string]any{}, 400)
	admin("POST", "/v1/coupons/revoke", map[string]any{"offer_id": "NOPE", "scope": "unissued"}, 404)
	if d := till("GET", feed+head, nil, 200); len(asList(d.get("coupons"))) == 0 {
		t.Errorf("a delta after revocations holds no coupon: %s", truncate(d.raw))
	}
	admin("POST", "/v1/offers/WEEKEND15/issue", s.requestExample(t, "issueCoupons", ""), 200)
	issued := l.do(request{method: "POST", path: "/v1/offers/WEEKEND15/issue", token: adminToken,
		body: s.textRequestExample(t, "issueCoupons", "text/csv"), contentType: "text/csv", want: 200})
	report := issued.str("report_id")
	if report == "" {
		t.Errorf("an issuance with refused rows answered no report: %s", issued.raw)
	} else {
		admin("GET", "/v1/reports/"+report, nil, 200)
	}
	admin("GET", "/v1/reports/NOPE", nil, 404)
	admin("POST", "/v1/offers/NOPE/issue", map[string]any{"customers": []string{"cust-42"}}, 404)
	l.do(request{method: "POST", path: "/v1/offers/SPRING40/coupons/upload", token: adminToken,
		body: s.textRequestExample(t, "uploadCoupons", "text/csv"), contentType: "text/csv", want: 200})
	admin("POST", "/v1/offers/SPRING40/coupons/upload", map[string]any{"codes": []string{"X"}}, 400)

	// Tills and anomalies (the reused redemption id above is one).
	admin("GET", "/v1/tills?store_id="+storeID, nil, 200)
	if a := admin("GET", "/v1/anomalies", nil, 200); len(asList(a.get("anomalies"))) == 0 {
		t.Errorf("no anomaly after an idempotency key reuse: %s", a.raw)
	}
	admin("DELETE", "/v1/tills/"+storeID+"/"+tillID+"/enrollment", nil, 200)
	admin("DELETE", "/v1/tills/"+storeID+"/T99/enrollment", nil, 404)
	till("GET", "/v1/till/journal", nil, 401)
	l.do(request{method: "POST", path: "/v1/till/enroll", body: enroll, want: 201})

	requireAnswered(t, s, platformDaemon, l.answered)
	if t.Failed() {
		t.Logf("operations reached: %v", slices.Sorted(maps.Keys(l.answered)))
	}
}
