package security

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // store time zones must not depend on the machine's zone files

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/agent"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/internal/httpapi"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/boltstore"
	"github.com/tillkeep/tillkeep/store"
)

// fixedNow is the clock of both daemons: a Monday afternoon inside every test offer.
var fixedNow = time.Date(2026, 6, 15, 16, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return fixedNow }

// newSecret returns a token no test input can contain by chance, so that finding it in
// a log line or an answer can only mean it leaked.
func newSecret(prefix string) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("read random bytes: %v", err))
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}

// secretSet is every value that must never be written to a log or an answer: the
// daemons' configured tokens, every till token handed out, and every wrong token a test
// presented (a wrong token is often a real token of something else, or a typo of one).
type secretSet struct {
	mu     sync.Mutex
	byName map[string]string
}

func (s *secretSet) add(name, value string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byName == nil {
		s.byName = map[string]string{}
	}
	s.byName[name] = value
	return value
}

// addTillToken registers a till token and the hash the platform keeps of it (hex
// SHA-256): ops see tills, never their token hashes.
func (s *secretSet) addTillToken(name, token string) string {
	sum := sha256.Sum256([]byte(token))
	s.add("hash of "+name, hex.EncodeToString(sum[:]))
	return s.add(name, token)
}

// leaksIn names the secrets text contains.
func (s *secretSet) leaksIn(text string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []string
	for name, v := range s.byName {
		if v != "" && strings.Contains(text, v) {
			found = append(found, name)
		}
	}
	sort.Strings(found)
	return found
}

// logSink collects a daemon's slog output (JSON lines) so tests can assert what was
// logged and scan every line for secrets.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// mark is the position after the last line logged so far.
func (l *logSink) mark() int { return len(l.lines()) }

// logRecord is one decoded log line.
type logRecord struct {
	raw   string
	level string
	msg   string
	attrs map[string]any
}

func (r logRecord) str(key string) string { s, _ := r.attrs[key].(string); return s }

// since returns the records logged after mark.
func (l *logSink) since(t testing.TB, mark int) []logRecord {
	t.Helper()
	all := l.lines()
	if mark > len(all) {
		mark = len(all)
	}
	var out []logRecord
	for _, line := range all[mark:] {
		var attrs map[string]any
		if err := json.Unmarshal([]byte(line), &attrs); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		rec := logRecord{raw: line, attrs: attrs}
		rec.level, _ = attrs["level"].(string)
		rec.msg, _ = attrs["msg"].(string)
		out = append(out, rec)
	}
	return out
}

func newLogger(sink io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// daemon is one real server under test, listening on loopback.
type daemon struct {
	name   string
	base   string
	addr   string
	logs   *logSink
	client *http.Client

	mu      sync.Mutex
	answers []answer // every answer, for the secret scan
}

// request is what a test sends; auth is the whole Authorization header value ("" for
// none).
type request struct {
	method      string
	path        string
	auth        string
	body        []byte
	contentType string
	header      map[string]string
	// chunked sends the body without a Content-Length.
	chunked bool
}

// answer is what a daemon answered.
type answer struct {
	method, path string
	status       int
	header       http.Header
	raw          []byte
}

func bearer(token string) string { return "Bearer " + token }

func jsonBody(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode request body: %v", err)
	}
	return b
}

func (d *daemon) do(t testing.TB, rq request) answer {
	t.Helper()
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
		if rq.chunked {
			body = io.MultiReader(body) // hides the length: Transfer-Encoding: chunked
		}
	}
	req, err := http.NewRequestWithContext(context.Background(), rq.method, d.base+rq.path, body)
	if err != nil {
		t.Fatalf("new request %s %s: %v", rq.method, rq.path, err)
	}
	if rq.auth != "" {
		req.Header.Set("Authorization", rq.auth)
	}
	ct := rq.contentType
	if ct == "" && rq.body != nil {
		ct = "application/json"
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	res, err := d.client.Do(req)
	if err != nil {
		t.Fatalf("%s: %s %s: %v", d.name, rq.method, rq.path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s: read the answer to %s %s: %v", d.name, rq.method, rq.path, err)
	}
	a := answer{method: rq.method, path: rq.path, status: res.StatusCode, header: res.Header, raw: raw}
	d.mu.Lock()
	d.answers = append(d.answers, a)
	d.mu.Unlock()
	return a
}

// envelopeCode checks that a is a non-2xx answer in the contract's error envelope and
// returns its code.
func envelopeCode(t testing.TB, a answer) string {
	t.Helper()
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: status %d with Content-Type %q, want the JSON error envelope; body %q",
			a.method, a.path, a.status, ct, a.raw)
		return ""
	}
	var env struct {
		Error *httpapi.ErrorDetail `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(a.raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || env.Error == nil {
		t.Errorf("%s %s: status %d body %q is not {\"error\": {\"code\", \"message\"}}: %v",
			a.method, a.path, a.status, a.raw, err)
		return ""
	}
	if !snakeCase.MatchString(env.Error.Code) || strings.TrimSpace(env.Error.Message) == "" {
		t.Errorf("%s %s: error envelope %q needs a snake_case code and a message", a.method, a.path, a.raw)
	}
	if want := httpapi.StatusOf(tillkeep.Code(env.Error.Code)); env.Error.Code != "method_not_allowed" && want != a.status {
		t.Errorf("%s %s: status %d but code %q maps to %d", a.method, a.path, a.status, env.Error.Code, want)
	}
	return env.Error.Code
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// expectRefused checks status and the envelope's code.
func expectRefused(t testing.TB, a answer, status int, code tillkeep.Code, what string) {
	t.Helper()
	if a.status != status {
		t.Errorf("%s: %s %s answered %d, want %d; body %s", what, a.method, a.path, a.status, status, a.raw)
		return
	}
	if got := envelopeCode(t, a); got != "" && got != string(code) {
		t.Errorf("%s: %s %s answered code %q, want %q", what, a.method, a.path, got, code)
	}
}

// serve runs serveFn on a fresh loopback listener until the test ends, and checks that
// it stops in time and without an error.
func serve(t testing.TB, name string, serveFn func(context.Context, net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for the %s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveFn(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: Serve returned %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop within 10 s", name)
		}
	})
	return ln.Addr().String()
}

func newDaemon(name, addr string, logs *logSink) *daemon {
	return &daemon{
		name: name, base: "http://" + addr, addr: addr, logs: logs,
		client: &http.Client{Timeout: 30 * time.Second},
	}
}

// world is a platform with two stores and three enrolled tills, and one till's agent.
type world struct {
	secrets  *secretSet
	platform *daemon
	psrv     *platform.Server
	agent    *daemon

	adminToken, enrollToken, posToken string
	// tills maps "S001/T01" to that till's bearer token.
	tills map[string]string
}

// worldOption changes the platform before it serves.
type worldOption func(*platform.Server)

func newWorld(t *testing.T, opts ...worldOption) *world {
	t.Helper()
	w := &world{secrets: &secretSet{}, tills: map[string]string{}}
	w.adminToken = w.secrets.add("admin token", newSecret("adm"))
	w.enrollToken = w.secrets.add("enroll token", newSecret("enr"))
	w.posToken = w.secrets.add("pos token", newSecret("pos"))
	// Registered first, so it runs last: after both daemons stopped and logged it.
	t.Cleanup(func() { w.scanForLeaks(t) })

	st := boltstore.MustOpen(t)
	plogs := &logSink{}
	psrv, err := platform.NewServer(st, platform.ServerConfig{
		Listen: "127.0.0.1:0", AdminToken: w.adminToken, EnrollToken: w.enrollToken, AutoRevoke: true,
		Logger: newLogger(plogs), Now: fixedClock, TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("new platform server: %v", err)
	}
	for _, o := range opts {
		o(psrv)
	}
	w.psrv = psrv
	w.platform = newDaemon("platform", serve(t, "platform", psrv.ServeListener), plogs)

	db, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{
		Timeout: time.Second, StoreID: "S001", TillID: "T01",
	})
	if err != nil {
		t.Fatalf("open the till ledger: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close the till ledger: %v", err)
		}
	})
	cfg := config.DefaultAgent()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.PosToken = w.posToken
	cfg.StoreID, cfg.TillID = "S001", "T01"
	cfg.Platform.EnrollToken = w.enrollToken
	alogs := &logSink{}
	asrv := agent.New(cfg, db, newLogger(alogs), agent.WithClock(fixedClock))
	w.agent = newDaemon("agent", serve(t, "agent", asrv.ServeListener), alogs)

	w.seed(t)
	return w
}

// seed creates two stores, an offer valid only in each, and enrolls three tills.
func (w *world) seed(t *testing.T) {
	t.Helper()
	for _, id := range []string{"S001", "S002"} {
		a := w.admin(t, "PUT", "/v1/stores/"+id, map[string]any{
			"name": "Store " + id, "zone": "east", "concept": "grocery",
			"timezone": "America/New_York", "currency": "USD",
		})
		w.must(t, a, http.StatusOK, "create store "+id)
	}
	for _, st := range []string{"S001", "S002"} {
		offerID := "ONLY-" + st
		a := w.admin(t, "POST", "/v1/offers", map[string]any{
			"id": offerID, "name": "10 USD off, only in " + st,
			"discount":    map[string]any{"type": "fixed", "amount": 1000, "currency": "USD"},
			"valid_from":  "2026-01-01T00:00:00Z",
			"valid_until": "2026-12-31T23:59:59Z",
			"expiry":      map[string]any{"mode": "with_offer"},
			"rules":       map[string]any{"min_bill": 2000, "max_redemptions_per_coupon": 1, "stores": []string{st}},
			"offline":     map[string]any{"allowed": true},
		})
		w.must(t, a, http.StatusCreated, "create offer "+offerID)
		codes := []string{st + "-ONLY-1", st + "-ONLY-2", st + "-ONLY-3"}
		a = w.admin(t, "POST", "/v1/offers/"+offerID+"/coupons", map[string]any{"codes": codes})
		w.must(t, a, http.StatusCreated, "create coupons of "+offerID)
	}
	for _, till := range []string{"S001/T01", "S001/T02", "S002/T01"} {
		storeID, tillID, _ := strings.Cut(till, "/")
		a := w.enroll(t, storeID, tillID, w.enrollToken)
		w.must(t, a, http.StatusCreated, "enroll "+till)
		var res platform.EnrollResult
		if err := json.Unmarshal(a.raw, &res); err != nil || res.Token == "" {
			t.Fatalf("enroll %s: answer %s has no token: %v", till, a.raw, err)
		}
		w.tills[till] = w.secrets.addTillToken("till token of "+till, res.Token)
	}
}

func (w *world) must(t testing.TB, a answer, status int, what string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: %s %s answered %d, want %d; body %s", what, a.method, a.path, a.status, status, a.raw)
	}
}

func (w *world) admin(t testing.TB, method, path string, body any) answer {
	t.Helper()
	rq := request{method: method, path: path, auth: bearer(w.adminToken)}
	if body != nil {
		rq.body = jsonBody(t, body)
	}
	return w.platform.do(t, rq)
}

func (w *world) till(t testing.TB, till, method, path string, body any) answer {
	t.Helper()
	tok, ok := w.tills[till]
	if !ok {
		t.Fatalf("no enrolled till %s", till)
	}
	rq := request{method: method, path: path, auth: bearer(tok)}
	if body != nil {
		rq.body = jsonBody(t, body)
	}
	return w.platform.do(t, rq)
}

func (w *world) enroll(t testing.TB, storeID, tillID, enrollToken string) answer {
	t.Helper()
	return w.platform.do(t, request{method: "POST", path: "/v1/till/enroll", body: jsonBody(t, platform.EnrollRequest{
		StoreID: storeID, TillID: tillID, EnrollToken: enrollToken,
	})})
}

// wrongToken makes a plausible token that is not valid anywhere, and remembers it as a
// secret: a presented token must never be echoed or logged either.
func (w *world) wrongToken(label string) string {
	return w.secrets.add("wrong token "+label, newSecret("wrong"))
}

// scanForLeaks fails the test if any secret appears in any log line of either daemon,
// in any answer's body or headers (but the till token a successful enrollment hands
// out), or if any answer carries a stack trace.
func (w *world) scanForLeaks(t *testing.T) {
	t.Helper()
	for _, d := range []*daemon{w.platform, w.agent} {
		if d == nil {
			continue
		}
		for i, line := range d.logs.lines() {
			if leaks := w.secrets.leaksIn(line); len(leaks) > 0 {
				t.Errorf("%s log line %d holds %s: %s", d.name, i+1, strings.Join(leaks, ", "), line)
			}
		}
		d.mu.Lock()
		answers := append([]answer(nil), d.answers...)
		d.mu.Unlock()
		for _, a := range answers {
			if a.path == "/v1/till/enroll" && a.status == http.StatusCreated {
				continue // a successful enrollment hands out its till token by design
			}
			var hdr strings.Builder
			_ = a.header.Write(&hdr)
			if leaks := w.secrets.leaksIn(string(a.raw) + "\n" + hdr.String()); len(leaks) > 0 {
				t.Errorf("%s: the %d answer to %s %s holds %s: %.500s", d.name, a.status, a.method, a.path,
					strings.Join(leaks, ", "), a.raw)
			}
			if a.status >= 300 && looksLikeStackTrace(string(a.raw)) {
				t.Errorf("%s: the %d answer to %s %s carries a stack trace: %s", d.name, a.status, a.method, a.path, a.raw)
			}
		}
	}
}

var stackTrace = regexp.MustCompile(`goroutine \d+ \[|\.go:\d+|runtime/debug|panic\(`)

func looksLikeStackTrace(s string) bool { return stackTrace.MatchString(s) }

// refusalLogged checks that a warning naming path was logged after mark.
func refusalLogged(t testing.TB, d *daemon, mark int, path, what string) {
	t.Helper()
	for _, rec := range d.logs.since(t, mark) {
		if (rec.level == "WARN" || rec.level == "ERROR") && rec.str("path") == path {
			return
		}
	}
	t.Errorf("%s: %s refused %s but logged no warning naming the path; logged:\n%s",
		what, d.name, path, joinRaw(d.logs.since(t, mark)))
}

func joinRaw(recs []logRecord) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString("  ")
		b.WriteString(r.raw)
		b.WriteByte('\n')
	}
	return b.String()
}
