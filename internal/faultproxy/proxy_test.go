package faultproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const bigSize = 64 << 10

// backend is a real HTTP server standing in for the platform; hits counts the requests
// that reached it.
type backend struct {
	*httptest.Server
	hits atomic.Int64
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		_, _ = io.WriteString(w, "hello")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("Content-Length", fmt.Sprint(bigSize))
		_, _ = w.Write(bytes.Repeat([]byte("x"), bigSize))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		// Read it all first: an HTTP/1 handler cannot read the body once it has
		// started answering.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = w.Write(body)
	})
	b.Server = httptest.NewServer(mux)
	t.Cleanup(b.Close)
	return b
}

func (b *backend) target() string { return b.Listener.Addr().String() }

// newProxy starts a proxy whose cleanup closes it and then checks that none of its
// goroutines outlived Close.
func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := New(target, log)
	if err != nil {
		t.Fatalf("New(%q): %v", target, err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		assertNoProxyGoroutines(t)
	})
	return p
}

// assertNoProxyGoroutines is a goleak-style check scoped to this package's own
// goroutines, so that the HTTP client and server goroutines of the test don't count.
func assertNoProxyGoroutines(t *testing.T) {
	t.Helper()
	var leaked []string
	// A goroutine that has run its deferred wg.Done may still be on its way out.
	for deadline := time.Now().Add(time.Second); ; {
		leaked = proxyGoroutines()
		if len(leaked) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(leaked) > 0 {
		t.Errorf("%d proxy goroutines still running after Close:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
}

func proxyGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "faultproxy.(*Proxy).") || strings.Contains(g, "faultproxy.(*conn).") {
			found = append(found, g)
		}
	}
	return found
}

// newClient returns a client with its own transport, so keep-alive reuse is under the
// test's control.
func newClient(t *testing.T, timeout time.Duration) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

type result struct {
	status int
	header http.Header
	body   string
	reused bool  // the request went over a kept-alive connection
	err    error // from the request or from reading the body
}

func do(client *http.Client, method, url, body string) result {
	var res result
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { res.reused = info.Reused }}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), method, url, rd)
	if err != nil {
		res.err = err
		return res
	}
	resp, err := client.Do(req)
	if err != nil {
		res.err = err
		return res
	}
	defer resp.Body.Close()
	res.status, res.header = resp.StatusCode, resp.Header
	b, err := io.ReadAll(resp.Body)
	res.body, res.err = string(b), err
	return res
}

func get(client *http.Client, url string) result { return do(client, http.MethodGet, url, "") }

func isConnReset(err error) bool {
	const wsaeconnreset = syscall.Errno(10054) // Windows spells ECONNRESET its own way
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, wsaeconnreset)
}

func mustSet(t *testing.T, p *Proxy, mode Mode) {
	t.Helper()
	if err := p.Set(mode); err != nil {
		t.Fatalf("Set(%v): %v", mode, err)
	}
}

func mustGetHello(t *testing.T, client *http.Client, url string) result {
	t.Helper()
	res := get(client, url)
	if res.err != nil || res.status != http.StatusOK || res.body != "hello" {
		t.Fatalf("GET %s = %d %q, %v; want 200 \"hello\"", url, res.status, res.body, res.err)
	}
	return res
}

func TestNewRefusesNonLoopbackTargets(t *testing.T) {
	for _, target := range []string{
		"10.0.0.1:80", "192.168.1.10:8080", "0.0.0.0:80", "example.com:443", "[2001:db8::1]:80",
		":8080", "127.0.0.1", "127.0.0.1:0", "localhost:99999", "localhost:http", "localhost.example.com:80",
	} {
		if p, err := New(target, nil); err == nil {
			_ = p.Close()
			t.Errorf("New(%q) succeeded; want it refused", target)
		}
	}
	for _, target := range []string{"127.0.0.1:1", "127.5.6.7:80", "localhost:8080", "LOCALHOST:8080", "[::1]:80"} {
		p, err := New(target, nil)
		if err != nil {
			t.Errorf("New(%q): %v", target, err)
			continue
		}
		if !strings.HasPrefix(p.Addr(), "127.0.0.1:") || p.URL() != "http://"+p.Addr() {
			t.Errorf("Addr %q, URL %q: want a 127.0.0.1 listener and http://Addr", p.Addr(), p.URL())
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	assertNoProxyGoroutines(t)
}

func TestDialerRefusesNonLoopbackAddresses(t *testing.T) {
	if err := refuseNonLoopback("tcp", "10.1.2.3:80", nil); err == nil {
		t.Error("dialer control let 10.1.2.3 through")
	}
	if err := refuseNonLoopback("tcp", "127.0.0.1:80", nil); err != nil {
		t.Errorf("dialer control refused 127.0.0.1: %v", err)
	}
	if err := refuseNonLoopback("tcp6", "[::1]:80", nil); err != nil {
		t.Errorf("dialer control refused ::1: %v", err)
	}
}

func TestSetRejectsInvalidModes(t *testing.T) {
	p := newProxy(t, "127.0.0.1:9")
	for _, mode := range []Mode{
		nil,
		(*Slow)(nil),
		Slow{Latency: -time.Millisecond},
		Slow{BytesPerSecond: -1},
		CutAfter{Bytes: -1},
		HTTPStatus{Code: 100},
		HTTPStatus{Code: 600},
		HTTPStatus{Code: http.StatusNoContent, Body: "no"},
		HTTPStatus{Code: 503, Header: http.Header{"Bad Name": {"x"}}},
	} {
		if err := p.Set(mode); err == nil {
			t.Errorf("Set(%#v) succeeded; want an error", mode)
		}
	}
	if _, ok := p.Mode().(Pass); !ok {
		t.Errorf("mode after rejected sets = %v; want pass", p.Mode())
	}
	mustSet(t, p, &Slow{Latency: time.Millisecond})
	if got, ok := p.Mode().(Slow); !ok || got.Latency != time.Millisecond {
		t.Errorf("Set(&Slow{...}) left mode %#v; want the Slow value", p.Mode())
	}

	// The proxy keeps its own copy of an HTTPStatus header: callers may reuse theirs.
	header := http.Header{"Retry-After": {"5"}}
	mustSet(t, p, HTTPStatus{Code: 429, Header: header})
	header.Set("Retry-After", "999")
	p.Mode().(HTTPStatus).Header.Set("Retry-After", "998")
	if got := p.Mode().(HTTPStatus).Header.Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After after the caller changed its maps = %q; want 5", got)
	}
}

func TestPassForwardsBothWays(t *testing.T) {
	b := newBackend(t)
	p := newProxy(t, b.target())
	client := newClient(t, 2*time.Second)

	mustGetHello(t, client, p.URL()+"/")
	payload := strings.Repeat("0123456789", 20_000) // larger than one chunk either way
	res := do(client, http.MethodPost, p.URL()+"/echo", payload)
	if res.err != nil || res.body != payload {
		t.Fatalf("POST /echo through the proxy: %d bytes back, %v; want the %d bytes sent", len(res.body), res.err, len(payload))
	}
	if !res.reused {
		t.Error("second request did not reuse the kept-alive connection")
	}
	s := p.Stats()
	if s.Accepted != 1 || s.Dialed != 1 || s.Resets != 0 || s.Open != 1 {
		t.Errorf("stats %+v: want 1 accepted, 1 dialed, 1 open, no resets", s)
	}
	if s.BytesUp < int64(len(payload)) || s.BytesDown < int64(len(payload)) {
		t.Errorf("stats %+v: want at least %d bytes forwarded each way", s, len(payload))
	}
	if b.hits.Load() != 2 {
		t.Errorf("backend saw %d requests; want 2", b.hits.Load())
	}
}

func TestResetNewConnections(t *testing.T) {
	b := newBackend(t)
	p := newProxy(t, b.target())
	client := newClient(t, 2*time.Second)
	mustSet(t, p, Reset{})

	res := get(client, p.URL()+"/")
	if !isConnReset(res.err) {
		t.Fatalf("GET under reset: %v; want connection reset", res.err)
	}
	if s := p.Stats(); s.Resets < 1 || s.Dialed != 0 {
		t.Errorf("stats %+v: want resets and no dial to the target", s)
	}
	if b.hits.Load() != 0 {
		t.Errorf("backend saw %d requests under reset; want 0", b.hits.Load())
	}

	mustSet(t, p, Pass{})
	mustGetHello(t, client, p.URL()+"/")
}

func TestResetResetsOpenKeepAliveConnections(t *testing.T) {
	b := newBackend(t)
	p := newProxy(t, b.target())
	client := newClient(t, 2*time.Second)
	mustGetHello(t, client, p.URL()+"/")
	if s := p.Stats(); s.Open != 1 {
		t.Fatalf("stats %+v: want the kept-alive connection open", s)
	}

	mustSet(t, p, Reset{})
	if s := p.Stats(); s.Resets != 1 {
		t.Fatalf("stats %+v: want the open connection reset by Set itself", s)
	}
	res := get(client, p.URL()+"/")
	if !isConnReset(res.err) {
		t.Fatalf("GET after reset: %v; want connection reset", res.err)
	}
	if b.hits.Load() != 1 {
		t.Errorf("backend saw %d requests; want only the one before the reset", b.hits.Load())
	}
}

func TestBlackholeTimesOutThenHeals(t *testing.T) {
	b := newBackend(t)
	p := newProxy(t, b.target())
	client := newClient(t, 200*time.Millisecond)
	mustSet(t, p, Blackhole{})

	res := get(client, p.URL()+"/")
	var netErr net.Error
	if !errors.As(res.err, &netErr) || !netErr.Timeout() {
		t.Fatalf("GET under blackhole: %v; want the client timeout", res.err)
	}
	if b.hits.Load() != 0 {
		t.Fatalf("backend saw %d requests during the blackhole; want 0", b.hits.Load())
	}
	if s := p.Stats(); s.Accepted != 1 || s.Blackholed < 1 || s.Dialed != 0 {
		t.Errorf("stats %+v: want the connection accepted, held, and no dial", s)
	}

	mustSet(t, p, Pass{})
	mustGetHello(t, client, p.URL()+"/")
	// The held request is delivered on healing, as TCP would retransmit it.
	waitFor(t, "held request delivered after healing", func() bool { return b.hits.Load() == 2 })
}

func TestBlackholeFreezesOpenKeepAliveConnections(t *testing.T) {
	b := newBackend(t)
	p := newProxy(t, b.target())
	client := newClient(t, 200*time.Millisecond)
	mustGetHello(t, client, p.URL()+"/")

	mustSet(t, p, Blackhole{})
	res := get(client, p.URL()+"/")
	var netErr net.Error
	if !errors.As(res.err, &netErr) || !netErr.Timeout() {
		t.Fatalf("GET on the kept-alive connection under blackhole: %v; want the client timeout", res.err)
	}
	if !res.reused {
		t.Fatal("the request did not go over the kept-alive connection; the test proves nothing")
	}

	// Reset before Pass drops what the blackhole held.
	mustSet(t, p, Reset{})
	mustSet(t, p, Pass{})
	mustGetHello(t, client, p.URL()+"/")
	time.Sleep(50 * time.Millisecond) // room for a wrongly delivered held request to land
	if got := b.hits.Load(); got != 2 {
		t.Errorf("backend saw %d requests; want 2 (the held one was dropped by the reset)", got)
	}
}

func TestSlowAddsLatencyAndThrottles(t *testing.T) {
	b := newBackend(t)
	p := newProxy(t, b.target())
	client := newClient(t, 5*time.Second)
	mustGetHello(t, client, p.URL()+"/")

	const latency = 100 * time.Millisecond
	mustSet(t, p, Slow{Latency: latency})
	start := time.Now()
	res := mustGetHello(t, client, p.URL()+"/")
	// The request and the response each cross the link at least once.
	if elapsed := time.Since(start); elapsed < 2*latency {
		t.Errorf("GET over a %s link took %s; want at least %s", latency, elapsed, 2*latency)
	}
	if !res.reused {
		t.Error("the slow request did not go over the kept-alive connection")
	}

	const rate = 200_000 // bytes per second: /big takes at least 64 KiB / rate = 327 ms
	mustSet(t, p, Slow{BytesPerSecond: rate})
	start = time.Now()
	res = get(client, p.URL()+"/big")
	elapsed := time.Since(start)
	if res.err != nil || len(res.body) != bigSize {
		t.Fatalf("GET /big throttled: %d bytes, %v; want %d bytes", len(res.body), res.err, bigSize)
	}
	if floor := time.Duration(bigSize) * time.Second / rate; elapsed < floor {
		t.Errorf("%d bytes at %d B/s took %s; want at least %s", bigSize, rate, elapsed, floor)
	}
}

func TestCutAfterCutsTheResponse(t *testing.T) {
	b := newBackend(t)
	p := newProxy(t, b.target())
	client := newClient(t, 2*time.Second)
	if res := get(client, p.URL()+"/big"); res.err != nil || len(res.body) != bigSize {
		t.Fatalf("GET /big in pass: %d bytes, %v", len(res.body), res.err)
	}

	const cut = 1000
	mustSet(t, p, CutAfter{Bytes: cut})
	res := get(client, p.URL()+"/big")
	if res.status != http.StatusOK {
		t.Fatalf("GET /big under cut: status %d, %v; want the 200 header through", res.status, res.err)
	}
	if !res.reused {
		t.Error("the cut request did not go over the kept-alive connection")
	}
	if res.err == nil || !(errors.Is(res.err, io.ErrUnexpectedEOF) || isConnReset(res.err)) {
		t.Errorf("reading the cut body: %v; want unexpected EOF or connection reset", res.err)
	}
	if len(res.body) >= cut {
		t.Errorf("read %d body bytes; want fewer than the %d bytes let through, header included", len(res.body), cut)
	}
	if s := p.Stats(); s.Cuts != 1 {
		t.Errorf("stats %+v: want one cut", s)
	}
	if b.hits.Load() != 2 {
		t.Errorf("backend saw %d requests; want 2: CutAfter forwards requests", b.hits.Load())
	}
}

func TestHTTPStatus503AnswersWithoutTheBackend(t *testing.T) {
	b := newBackend(t)
	p := newProxy(t, b.target())
	client := newClient(t, 2*time.Second)
	mustSet(t, p, HTTPStatus{Code: http.StatusServiceUnavailable, Body: "platform down for the test"})

	res := get(client, p.URL()+"/v1/redeem")
	if res.err != nil || res.status != http.StatusServiceUnavailable || res.body != "platform down for the test" {
		t.Fatalf("GET under 503 = %d %q, %v", res.status, res.body, res.err)
	}
	if b.hits.Load() != 0 {
		t.Errorf("backend saw %d requests; want 0", b.hits.Load())
	}
	if s := p.Stats(); s.Answered != 1 || s.Dialed != 0 || s.BytesUp != 0 {
		t.Errorf("stats %+v: want one answer and nothing sent to the target", s)
	}
}

func TestHTTPStatus429OnKeepAliveAndBack(t *testing.T) {
	b := newBackend(t)
	p := newProxy(t, b.target())
	client := newClient(t, 2*time.Second)
	mustGetHello(t, client, p.URL()+"/")

	mustSet(t, p, HTTPStatus{Code: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"7"}}})
	for i, method := range []string{http.MethodGet, http.MethodPost, http.MethodGet, http.MethodHead} {
		res := do(client, method, p.URL()+"/v1/journal", map[bool]string{true: `{"entries":[1,2,3]}`}[method == http.MethodPost])
		if res.err != nil || res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") != "7" {
			t.Fatalf("request %d (%s) under 429 = %d Retry-After %q, %v", i, method, res.status, res.header.Get("Retry-After"), res.err)
		}
		if !res.reused {
			t.Errorf("request %d (%s) did not reuse the kept-alive connection", i, method)
		}
	}
	if b.hits.Load() != 1 {
		t.Errorf("backend saw %d requests; want only the one before the switch", b.hits.Load())
	}

	mustSet(t, p, Pass{})
	res := mustGetHello(t, client, p.URL()+"/")
	if !res.reused {
		t.Error("after switching back to pass, the request did not reuse the kept-alive connection")
	}
	if s := p.Stats(); s.Accepted != 1 || s.Answered != 4 || s.Dialed != 2 {
		t.Errorf("stats %+v: want one connection throughout, 4 answers, and a second dial after healing", s)
	}
}

// TestHTTPStatusOnTheWire checks what keep-alive clients other than Go's would see:
// pipelined requests get one answer each, in order, and garbage gets a 400 and a close.
func TestHTTPStatusOnTheWire(t *testing.T) {
	b := newBackend(t)
	p := newProxy(t, b.target())
	mustSet(t, p, HTTPStatus{Code: http.StatusBadGateway, Body: "bad gateway"})

	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_, err = io.WriteString(c, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"+
		"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"+
		"not http at all\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	in := bufio.NewReader(c)
	for _, want := range []int{http.StatusBadGateway, http.StatusBadGateway, http.StatusBadRequest} {
		resp, err := http.ReadResponse(in, nil)
		if err != nil {
			t.Fatalf("reading the answer expected to be %d: %v", want, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("answer = %d %q, %v; want %d", resp.StatusCode, body, err, want)
		}
		if want == http.StatusBadGateway && (string(body) != "bad gateway" || resp.Close) {
			t.Errorf("answer body %q, close %v; want \"bad gateway\" on a kept-alive connection", body, resp.Close)
		}
	}
	if _, err := in.ReadByte(); err != io.EOF {
		t.Errorf("after the 400: %v; want the connection closed", err)
	}
	if b.hits.Load() != 0 {
		t.Errorf("backend saw %d requests; want 0", b.hits.Load())
	}
}

func TestRefuseThenListenAgainOnTheSameAddress(t *testing.T) {
	b := newBackend(t)
	p := newProxy(t, b.target())
	client := newClient(t, 2*time.Second)
	mustGetHello(t, client, p.URL()+"/")
	addr := p.Addr()

	mustSet(t, p, Refuse{})
	if s := p.Stats(); s.Resets != 1 {
		t.Errorf("stats %+v: want the open connection reset", s)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c.Close()
		t.Fatal("dial under refuse succeeded")
	}
	client.Transport.(*http.Transport).CloseIdleConnections()
	res := get(client, p.URL()+"/")
	var opErr *net.OpError
	if !errors.As(res.err, &opErr) || opErr.Op != "dial" {
		t.Fatalf("GET under refuse: %v; want a dial error", res.err)
	}

	mustSet(t, p, Pass{})
	if p.Addr() != addr {
		t.Fatalf("address changed from %s to %s", addr, p.Addr())
	}
	mustGetHello(t, client, "http://"+addr+"/")
}

func TestRefuseWaitsForThePortToComeBack(t *testing.T) {
	b := newBackend(t)
	p := newProxy(t, b.target())
	p.relistenTimeout = 300 * time.Millisecond
	client := newClient(t, 2*time.Second)
	mustSet(t, p, Refuse{})

	// Another socket takes the port while the proxy refuses.
	squatter, err := net.Listen("tcp4", p.Addr())
	if err != nil {
		t.Fatalf("take the refused port: %v", err)
	}
	if err := p.Set(Pass{}); err == nil {
		t.Fatal("Set(Pass) with the port taken succeeded; want an error")
	}
	if _, ok := p.Mode().(Pass); !ok {
		t.Errorf("mode after the failed listen = %v; want pass, retried by the next Set", p.Mode())
	}

	// Set retries for a while: a port freed during the retries is taken back.
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = squatter.Close()
	}()
	mustSet(t, p, Pass{})
	mustGetHello(t, client, p.URL()+"/")
}

func TestTargetDownResetsTheClient(t *testing.T) {
	b := newBackend(t)
	p := newProxy(t, b.target())
	b.Close()
	client := newClient(t, 2*time.Second)

	res := get(client, p.URL()+"/")
	if !isConnReset(res.err) {
		t.Fatalf("GET with the target down: %v; want connection reset", res.err)
	}
	if s := p.Stats(); s.DialErrors != 1 {
		t.Errorf("stats %+v: want one dial error", s)
	}
}

func TestCloseReleasesEverything(t *testing.T) {
	baseline := runtime.NumGoroutine()
	b := newBackend(t)
	p, err := New(b.target(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 4}

	// One connection idle in pass, one held by a blackhole with a request in flight.
	mustGetHello(t, &http.Client{Transport: tr, Timeout: 2 * time.Second}, p.URL()+"/")
	mustSet(t, p, Blackhole{})
	inFlight := make(chan error, 1)
	go func() {
		inFlight <- get(&http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}, p.URL()+"/").err
	}()
	waitFor(t, "the blackholed request to be held", func() bool { return p.Stats().Blackholed >= 1 })

	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Close took %s; want it to end held connections at once", elapsed)
	}
	assertNoProxyGoroutines(t)
	if err := <-inFlight; err == nil {
		t.Error("the held request succeeded; want it to fail when the proxy closed")
	}
	if s := p.Stats(); s.Open != 0 {
		t.Errorf("stats %+v: want no open connection", s)
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		_ = c.Close()
		t.Error("dial after Close succeeded")
	}
	if err := p.Set(Pass{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close: %v; want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	tr.CloseIdleConnections()
	b.Close()
	waitFor(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= baseline })
}

// TestSwitchingUnderLoad flips modes while clients hammer the proxy: the race detector
// and the leak check are the assertions, plus a working link at the end.
func TestSwitchingUnderLoad(t *testing.T) {
	b := newBackend(t)
	p := newProxy(t, b.target())
	modes := []Mode{
		Pass{}, Reset{}, Blackhole{}, Slow{Latency: time.Millisecond, BytesPerSecond: 1 << 20},
		CutAfter{Bytes: 500}, HTTPStatus{Code: 503}, Refuse{}, Pass{},
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{}, Timeout: 100 * time.Millisecond}
			defer client.Transport.(*http.Transport).CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = get(client, p.URL()+"/big")
			}
		}()
	}
	for i := range 3 * len(modes) {
		mustSet(t, p, modes[i%len(modes)])
		time.Sleep(15 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	mustSet(t, p, Pass{})
	mustGetHello(t, newClient(t, 2*time.Second), p.URL()+"/")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
