package security

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/agent"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/internal/httpapi"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/store/memstore"
)

// paddedJSON is a syntactically valid JSON object of exactly n bytes (n >= 10), so a
// decoder must read all of it: {"pad":"aaaa...a"}.
func paddedJSON(n int64) []byte {
	const open, closing = `{"pad":"`, `"}`
	b := make([]byte, 0, n)
	b = append(b, open...)
	b = append(b, bytes.Repeat([]byte("a"), int(n)-len(open)-len(closing))...)
	return append(b, closing...)
}

// TestJSONBodiesOverTheLimitAnswer413: every route that decodes a JSON body refuses a
// body one byte over its limit with 413 body_too_large, whether the length is declared
// or the body is chunked; a body of exactly the limit is read (and refused for its
// content, not its size), so the limit is where the daemon says it is.
func TestJSONBodiesOverTheLimitAnswer413(t *testing.T) {
	w := newWorld(t)
	for _, r := range routes {
		if r.body != bodyJSON {
			continue
		}
		t.Run(r.String(), func(t *testing.T) {
			d := w.daemonOf(r)
			limit := r.bodyLimit()
			for _, chunked := range []bool{false, true} {
				rq := requestFor(t, r, w.rightCredential(r.who))
				rq.body, rq.chunked = paddedJSON(limit+1), chunked
				a := d.do(t, rq)
				expectRefused(t, a, http.StatusRequestEntityTooLarge, tillkeep.CodeBodyTooLarge,
					fmt.Sprintf("body of %d bytes (chunked %v)", limit+1, chunked))
			}
			rq := requestFor(t, r, w.rightCredential(r.who))
			rq.body = paddedJSON(limit)
			if a := d.do(t, rq); a.status == http.StatusRequestEntityTooLarge || a.status >= 500 {
				t.Errorf("a body of exactly the limit (%d bytes) answered %d: %.200s", limit, a.status, a.raw)
			}
		})
	}
}

// TestOversizedHeadersAnswer431: both daemons refuse a request whose headers exceed
// httpapi.NewServer's MaxHeaderBytes, before any handler or authorization runs.
func TestOversizedHeadersAnswer431(t *testing.T) {
	w := newWorld(t)
	huge := strings.Repeat("h", 96<<10)
	for _, d := range []*daemon{w.agent, w.platform} {
		for _, path := range []string{"/healthz", "/v1/status", "/v1/till/journal"} {
			a := d.do(t, request{method: "GET", path: path, header: map[string]string{"X-Pad": huge}})
			if a.status != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("%s: GET %s with 96 KiB of headers answered %d, want 431", d.name, path, a.status)
			}
		}
		// Headers well under the limit are served: the limit is not set absurdly low.
		a := d.do(t, request{method: "GET", path: "/healthz", header: map[string]string{"X-Pad": huge[:8<<10]}})
		if a.status != http.StatusOK {
			t.Errorf("%s: 8 KiB of headers answered %d, want 200", d.name, a.status)
		}
	}
}

// TestSlowHeadersAreCut: a client that trickles its request headers (slowloris) is
// disconnected by the ReadHeaderTimeout of httpapi.NewServer, without an answer, while
// the daemon keeps serving everyone else. Both daemons are tried at once, so the test
// waits for the timeout (5 s) once.
func TestSlowHeadersAreCut(t *testing.T) {
	t.Parallel() // it mostly waits: let the other tests run meanwhile
	w := newWorld(t)
	for _, d := range []*daemon{w.agent, w.platform} {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", d.addr)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: till\r\n"); err != nil {
				t.Fatalf("write request line: %v", err)
			}
			type readResult struct {
				data []byte
				err  error
			}
			closed := make(chan readResult, 1)
			go func() {
				data, err := io.ReadAll(conn)
				closed <- readResult{data, err}
			}()
			start := time.Now()
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			// Generous: ReadHeaderTimeout is 5 s; anything under this bound proves the cut.
			giveUp := time.After(20 * time.Second)
			servedMeanwhile := false
			for n := 0; ; n++ {
				select {
				case res := <-closed:
					t.Logf("%s cut the slow client after %v, having received %d header lines",
						d.name, time.Since(start).Round(100*time.Millisecond), n)
					if len(res.data) > 0 && !bytes.HasPrefix(res.data, []byte("HTTP/1.1 408")) {
						t.Errorf("the slow client was answered %q; want no answer or 408", res.data)
					}
					if !servedMeanwhile {
						t.Errorf("no other request was served while the slow client was connected")
					}
					return
				case <-giveUp:
					t.Fatalf("%s still holds a client that has been sending headers for 20 s", d.name)
				case <-tick.C:
					// The connection may already be gone; the read side reports it.
					_, _ = fmt.Fprintf(conn, "X-Slow-%d: still typing\r\n", n)
					if !servedMeanwhile {
						a := d.do(t, request{method: "GET", path: "/healthz"})
						servedMeanwhile = a.status == http.StatusOK
					}
				}
			}
		})
	}
}

// panickingLedger is the till's real ledger with a lookup that panics like a bug would,
// to drive a panic through the agent's real handler chain.
type panickingLedger struct{ agent.Ledger }

func (panickingLedger) Lookup(context.Context, string, string) (tillkeep.LocalState, error) {
	panic("boom: a bug in a handler")
}

// TestPanicsAnswer500WithoutStack: a panic in a handler answers 500 in the error
// envelope with a generic message, no stack trace and no panic value; it is logged; the
// daemon keeps serving. Tried on httpapi.Recover alone, on a route added to the real
// platform (ops and till API), and inside the real agent (a ledger that panics).
func TestPanicsAnswer500WithoutStack(t *testing.T) {
	const panicText = "boom: a bug in a handler"
	check := func(t *testing.T, d *daemon, rq request) {
		t.Helper()
		mark := d.logs.mark()
		a := d.do(t, rq)
		expectRefused(t, a, http.StatusInternalServerError, tillkeep.CodeInternal, "panicking handler")
		if looksLikeStackTrace(string(a.raw)) || strings.Contains(string(a.raw), panicText) {
			t.Errorf("the 500 answer reveals the panic: %s", a.raw)
		}
		if !anyRecord(d.logs.since(t, mark), func(r logRecord) bool { return r.level == "ERROR" && strings.Contains(r.raw, panicText) }) {
			t.Errorf("the panic was not logged:\n%s", joinRaw(d.logs.since(t, mark)))
		}
		if a := d.do(t, request{method: "GET", path: "/healthz"}); a.status != http.StatusOK {
			t.Errorf("after the panic /healthz answered %d", a.status)
		}
	}

	t.Run("httpapi.Recover", func(t *testing.T) {
		logs := &logSink{}
		h := httpapi.Recover(newLogger(logs), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				httpapi.Healthz(w, r)
				return
			}
			panic("boom: a bug in a handler")
		}))
		srv := httptest.NewServer(h)
		defer srv.Close()
		d := newDaemon("recover", strings.TrimPrefix(srv.URL, "http://"), logs)
		check(t, d, request{method: "GET", path: "/anything"})
	})

	t.Run("platform", func(t *testing.T) {
		w := newWorld(t, func(s *platform.Server) {
			s.HandleOps("GET /v1/test/panic", func(http.ResponseWriter, *http.Request) error {
				panic("boom: a bug in a handler")
			})
			s.HandleTill("GET /v1/till/test/panic", func(http.ResponseWriter, *http.Request, platform.TillRef) error {
				panic("boom: a bug in a handler")
			})
		})
		check(t, w.platform, request{method: "GET", path: "/v1/test/panic", auth: bearer(w.adminToken)})
		check(t, w.platform, request{method: "GET", path: "/v1/till/test/panic", auth: bearer(w.tills["S001/T01"])})
	})

	t.Run("agent", func(t *testing.T) {
		ledger := memstore.New("S001", "T01")
		t.Cleanup(func() { _ = ledger.Close() })
		if err := ledger.ReplaceCatalog(context.Background(), tillkeep.CatalogSnapshot{
			StoreID: "S001", Seq: 1, AsOf: fixedNow.Add(-time.Hour),
			Store: tillkeep.Store{ID: "S001", Name: "S001", Timezone: "America/New_York", Currency: "USD"},
		}); err != nil {
			t.Fatalf("import catalog: %v", err)
		}
		posToken := newSecret("pos")
		cfg := config.DefaultAgent()
		cfg.Listen, cfg.DataDir, cfg.PosToken, cfg.StoreID, cfg.TillID = "127.0.0.1:0", t.TempDir(), posToken, "S001", "T01"
		logs := &logSink{}
		srv := agent.New(cfg, panickingLedger{ledger}, newLogger(logs), agent.WithClock(fixedClock))
		d := newDaemon("agent", serve(t, "agent", srv.ServeListener), logs)
		check(t, d, request{method: "POST", path: "/v1/validate", auth: bearer(posToken),
			body: []byte(`{"code":"C1","bill":{"amount":5000,"currency":"USD"}}`)})
	})
}

// TestUnroutedRequestsAnswerTheEnvelope: an unknown path or a method a route does not
// take is a non-2xx answer too, and the contract wants the error envelope on every one.
func TestUnroutedRequestsAnswerTheEnvelope(t *testing.T) {
	w := newWorld(t)
	cases := []struct {
		d      *daemon
		rq     request
		status int
	}{
		{w.agent, request{method: "GET", path: "/nope"}, http.StatusNotFound},
		{w.agent, request{method: "GET", path: "/v1/nope", auth: bearer(w.posToken)}, http.StatusNotFound},
		{w.agent, request{method: "DELETE", path: "/v1/redemptions", auth: bearer(w.posToken)}, http.StatusMethodNotAllowed},
		{w.agent, request{method: "POST", path: "/healthz"}, http.StatusMethodNotAllowed},
		{w.platform, request{method: "GET", path: "/nope"}, http.StatusNotFound},
		{w.platform, request{method: "GET", path: "/v1/nope", auth: bearer(w.adminToken)}, http.StatusNotFound},
		{w.platform, request{method: "DELETE", path: "/v1/offers", auth: bearer(w.adminToken)}, http.StatusMethodNotAllowed},
		{w.platform, request{method: "GET", path: "/v1/till/enroll"}, http.StatusMethodNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.d.name+" "+tc.rq.method+" "+tc.rq.path, func(t *testing.T) {
			a := tc.d.do(t, tc.rq)
			if a.status != tc.status {
				t.Errorf("answered %d, want %d: %s", a.status, tc.status, a.raw)
			}
			envelopeCode(t, a)
		})
	}
}

// TestErrorsNeverEchoSecrets: refused requests that carry text in their path, query,
// other headers and body get a generic 401 that reflects none of it; the enroll token in
// a refused enrollment is never echoed or logged, whatever else is wrong with the
// request; a wrong bearer token is never echoed or logged (the world's leak scan checks
// every answer and log line for every secret at the end).
func TestErrorsNeverEchoSecrets(t *testing.T) {
	w := newWorld(t)
	canary := "canary-" + newSecret("c")
	for _, r := range routes {
		if r.who == public || r.who == enroll {
			continue
		}
		d := w.daemonOf(r)
		path := strings.ReplaceAll(r.path(), "nope-404", canary) + "?token=" + canary + "&store_id=" + canary
		rq := request{method: r.method(), path: path, auth: bearer(w.wrongToken("echo " + r.String())),
			header: map[string]string{"X-Request-Id": canary}}
		if r.body == bodyJSON {
			rq.body = []byte(`{"code":"` + canary + `","enroll_token":"` + canary + `"}`)
		}
		a := d.do(t, rq)
		expectRefused(t, a, http.StatusUnauthorized, tillkeep.CodeUnauthorized, r.String())
		if strings.Contains(string(a.raw), canary) {
			t.Errorf("%s: the 401 answer reflects the request: %s", r, a.raw)
		}
	}

	// Enrollments refused for every reason other than the token: none echoes it.
	tok := w.enrollToken
	for _, tc := range []struct {
		name   string
		body   string
		status int
	}{
		{"replayed", `{"store_id":"S001","till_id":"T01","enroll_token":"` + tok + `"}`, http.StatusConflict},
		{"unknown store", `{"store_id":"S999","till_id":"T01","enroll_token":"` + tok + `"}`, http.StatusNotFound},
		{"invalid till id", `{"store_id":"S001","till_id":"T 01/..","enroll_token":"` + tok + `"}`, http.StatusBadRequest},
		{"missing till id", `{"store_id":"S001","enroll_token":"` + tok + `"}`, http.StatusBadRequest},
		{"unknown field", `{"store_id":"S001","till_id":"T05","enroll_token":"` + tok + `","pin":"` + tok + `"}`, http.StatusBadRequest},
		{"token of the wrong type", `{"store_id":"S001","till_id":"T05","enroll_token":["` + tok + `"]}`, http.StatusBadRequest},
		{"truncated", `{"store_id":"S001","till_id":"T05","enroll_token":"` + tok, http.StatusBadRequest},
		{"syntax error after the token", `{"enroll_token":"` + tok + `" "store_id":"S001"}`, http.StatusBadRequest},
		{"trailing data", `{"store_id":"S001","till_id":"T05","enroll_token":"` + tok + `"} "` + tok + `"`, http.StatusBadRequest},
	} {
		a := w.platform.do(t, request{method: "POST", path: "/v1/till/enroll", body: []byte(tc.body)})
		if a.status != tc.status {
			t.Errorf("enrollment %s answered %d, want %d: %s", tc.name, a.status, tc.status, a.raw)
		}
		envelopeCode(t, a)
	}
}
