package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform"
)

const (
	adminToken  = "admin-token-0123456789"
	enrollToken = "enroll-token-0123456789"
)

// clock is a settable test clock.
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

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// start is the default test time: inside every test offer's validity.
var start = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// env is a platform under test behind a real HTTP server.
type env struct {
	t     testing.TB
	path  string // bolt file, or PostgreSQL DSN (see backend_test.go)
	store platform.Storage
	srv   *platform.Server
	http  *httptest.Server
	clock *clock
	opts  envOptions
}

type envOptions struct {
	autoRevoke bool
	maxSkew    time.Duration
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newEnv(t testing.TB) *env { return newEnvWith(t, envOptions{autoRevoke: true}) }

func newEnvWith(t testing.TB, opts envOptions) *env {
	t.Helper()
	e := &env{t: t, path: testBackend.newPath(t), clock: &clock{now: start}, opts: opts}
	e.open()
	return e
}

// open starts the server on the env's storage.
func (e *env) open() {
	e.t.Helper()
	e.store = testBackend.open(e.t, e.path)
	srv, err := platform.NewServer(e.store, platform.ServerConfig{
		AdminToken: adminToken, EnrollToken: enrollToken, AutoRevoke: e.opts.autoRevoke,
		MaxClockSkew: e.opts.maxSkew, Logger: testLogger(e.t), Now: e.clock.Now, TempDir: e.t.TempDir(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv = srv
	e.http = httptest.NewServer(srv.Handler())
	e.t.Cleanup(e.http.Close)
}

// restart stops the server, closes the storage and opens both again.
func (e *env) restart() {
	e.t.Helper()
	e.http.Close()
	testBackend.close(e.t, e.store)
	e.open()
}

// resp is a decoded answer.
type resp struct {
	status int
	body   map[string]any
	raw    []byte
}

func (r resp) errCode() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (r resp) errRule() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		s, _ := e["rule"].(string)
		return s
	}
	return ""
}

func (r resp) str(k string) string { s, _ := r.body[k].(string); return s }

func (r resp) num(k string) float64 { n, _ := r.body[k].(float64); return n }

func (r resp) list(k string) []any { l, _ := r.body[k].([]any); return l }

func (e *env) do(method, path, token string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "text/csv"
	case []byte:
		rd, ct = bytes.NewReader(b), "application/json"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd, ct = bytes.NewReader(raw), "application/json"
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.http.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	out := resp{status: res.StatusCode, raw: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			e.t.Fatalf("%s %s: answer is not a JSON object: %v\n%s", method, path, err, raw)
		}
	}
	return out
}

// must checks the status of an answer.
func (e *env) must(status int, r resp, what string) resp {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.raw)
	}
	return r
}

func (e *env) admin(method, path string, body any) resp {
	e.t.Helper()
	return e.do(method, path, adminToken, body)
}

// decode re-decodes an answer into v.
func decode[T any](t testing.TB, r resp) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.raw, &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, r.raw)
	}
	return v
}

func (e *env) putStore(id string) {
	e.t.Helper()
	e.must(200, e.admin("PUT", "/v1/stores/"+id, map[string]any{
		"name": "Store " + id, "zone": "east", "concept": "mall", "timezone": "America/New_York", "currency": "USD",
	}), "put store")
}

// offerJSON is the contract's example offer, adjusted by mods.
func offerJSON(id string, mods ...func(map[string]any)) map[string]any {
	o := map[string]any{
		"id":          id,
		"name":        "Offer " + id,
		"discount":    map[string]any{"type": "fixed", "amount": 4000, "currency": "USD"},
		"valid_from":  "2026-03-01T00:00:00Z",
		"valid_until": "2026-12-31T23:59:59Z",
		"expiry":      map[string]any{"mode": "with_offer"},
		"rules": map[string]any{
			"min_bill":                   10000,
			"max_redemptions_per_coupon": 1,
			"stores":                     []string{"S001", "S002"},
		},
		"offline": map[string]any{"allowed": true},
	}
	for _, m := range mods {
		m(o)
	}
	return o
}

func rules(o map[string]any) map[string]any { return o["rules"].(map[string]any) }

func (e *env) createOffer(id string, mods ...func(map[string]any)) {
	e.t.Helper()
	e.must(201, e.admin("POST", "/v1/offers", offerJSON(id, mods...)), "create offer "+id)
}

func (e *env) createCodes(offerID string, codes ...string) {
	e.t.Helper()
	r := e.must(201, e.admin("POST", "/v1/offers/"+offerID+"/coupons", map[string]any{"codes": codes}), "create codes")
	if int(r.num("created")) != len(codes) {
		e.t.Fatalf("created %v of %d codes: %s", r.num("created"), len(codes), r.raw)
	}
}

// basic sets up stores S001 and S002 and offer SPRING40 with codes K1..K5.
func (e *env) basic() {
	e.t.Helper()
	e.putStore("S001")
	e.putStore("S002")
	e.createOffer("SPRING40")
	e.createCodes("SPRING40", "K1", "K2", "K3", "K4", "K5")
}

// till is an enrolled till.
type till struct {
	e       *env
	storeID string
	tillID  string
	token   string
	seq     uint64
	n       int
}

func (e *env) enroll(storeID, tillID string) *till {
	e.t.Helper()
	r := e.must(201, e.do("POST", "/v1/till/enroll", "", map[string]any{
		"store_id": storeID, "till_id": tillID, "enroll_token": enrollToken,
	}), "enroll")
	tok := r.str("token")
	if tok == "" || r.str("epoch") == "" {
		e.t.Fatalf("enrollment answer lacks token or epoch: %s", r.raw)
	}
	return &till{e: e, storeID: storeID, tillID: tillID, token: tok}
}

func (t *till) do(method, path string, body any) resp {
	t.e.t.Helper()
	return t.e.do(method, path, t.token, body)
}

func usd(n int64) tillkeep.Money { return tillkeep.NewMoney(n, "USD") }

// redeem asks for an online redemption with fresh ids.
func (t *till) redeem(code, customer string, bill int64) resp {
	t.e.t.Helper()
	t.n++
	return t.do("POST", "/v1/till/redemptions", map[string]any{
		"redemption_id": fmt.Sprintf("%s-%s-on-%d", t.storeID, t.tillID, t.n), "transaction_id": fmt.Sprintf("tx-%s-%d", t.tillID, t.n),
		"code": code, "bill": usd(bill), "customer_id": customer, "wall_time": t.e.clock.Now(),
	})
}

// entry builds the till's next offline redemption entry, stamped at hlc.
func (t *till) entry(code, customer string, bill int64, at time.Time) tillkeep.JournalEntry {
	t.seq++
	id := fmt.Sprintf("%s-%s-%04d", t.storeID, t.tillID, t.seq)
	disc := min(int64(4000), bill)
	return tillkeep.JournalEntry{
		Seq: t.seq, EntryID: id, Kind: tillkeep.EntryRedemption, RedemptionID: id,
		StoreID: t.storeID, TillID: t.tillID, TransactionID: "tx-" + id, Code: code, OfferID: "SPRING40",
		CustomerID: customer, Bill: usd(bill), Discount: usd(disc), Mode: tillkeep.ModeOffline,
		WallTime: at, HLC: tillkeep.HLC{WallMS: at.UnixMilli()},
	}
}

// reversal builds the till's next entry reversing redemptionID.
func (t *till) reversal(redemptionID string, at time.Time) tillkeep.JournalEntry {
	t.seq++
	return tillkeep.JournalEntry{
		Seq: t.seq, EntryID: fmt.Sprintf("%s-%s-rev-%04d", t.storeID, t.tillID, t.seq), Kind: tillkeep.EntryReversal,
		RedemptionID: redemptionID, StoreID: t.storeID, TillID: t.tillID, Mode: tillkeep.ModeOffline,
		WallTime: at, HLC: tillkeep.HLC{WallMS: at.UnixMilli()},
	}
}

func (t *till) upload(entries ...tillkeep.JournalEntry) platform.JournalAck {
	t.e.t.Helper()
	r := t.e.must(200, t.do("POST", "/v1/till/journal", map[string]any{"epoch": "", "entries": entries}), "upload journal")
	return decode[platform.JournalAck](t.e.t, r)
}

func (e *env) coupon(code string) platform.CouponDetail {
	e.t.Helper()
	return decode[platform.CouponDetail](e.t, e.must(200, e.admin("GET", "/v1/coupons/"+code, nil), "get coupon"))
}

func (e *env) conflicts(status string) []map[string]any {
	e.t.Helper()
	path := "/v1/conflicts"
	if status != "" {
		path += "?status=" + status
	}
	r := e.must(200, e.admin("GET", path, nil), "list conflicts")
	var out []map[string]any
	for _, c := range r.list("conflicts") {
		out = append(out, c.(map[string]any))
	}
	return out
}

func (e *env) conflict(id string) platform.ConflictDetail {
	e.t.Helper()
	return decode[platform.ConflictDetail](e.t, e.must(200, e.admin("GET", "/v1/conflicts/"+id, nil), "get conflict"))
}

func (e *env) redemption(id string) platform.Redemption {
	e.t.Helper()
	return decode[platform.Redemption](e.t, e.must(200, e.admin("GET", "/v1/redemptions/"+id, nil), "get redemption"))
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
