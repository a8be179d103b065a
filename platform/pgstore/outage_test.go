package pgstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/pgstore"
	"github.com/tillkeep/tillkeep/platform/pgstore/pgtest"
)

// proxy relays TCP connections to the database. down cuts every connection and
// refuses new ones, as a database that went away would; up listens again on the same
// address.
type proxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[s] = struct{}{}, struct{}{}
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
			go func() { _, _ = io.Copy(c, s); _ = c.Close() }()
		}
	}()
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *proxy) up() {
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment after the close
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// TestDatabaseOutageAndRecovery runs a platform whose database goes away for a while:
// meanwhile /healthz still answers, storage calls fail as "unavailable" (HTTP 503, which
// tills retry), and when the database is back the pool reconnects without a restart.
func TestDatabaseOutageAndRecovery(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	proxied := fmt.Sprintf("postgres://%s:unused-pw@%s/%s?sslmode=disable&connect_timeout=2&pool_health_check_period=1s", cfg.User, p.addr, cfg.Database)
	st, err := pgstore.Open(t.Context(), proxied, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	in := startInstance(t, "A", st)
	in.setUp([]string{"K1", "K2", "K3"}, nil)
	tl := in.enroll("S001", "T01")
	redeem := func(n int, code string) answer {
		return tl.do("POST", "/v1/till/redemptions", map[string]any{
			"redemption_id": fmt.Sprintf("r-%d", n), "transaction_id": fmt.Sprintf("tx-%d", n), "code": code, "bill": usd(12000)})
	}
	in.must(201, redeem(1, "K1"), "redeem before the outage")

	p.down()
	if a := in.do("GET", "/healthz", "", nil); a.status != http.StatusOK {
		t.Fatalf("/healthz during the outage: %d", a.status)
	}
	a := redeem(2, "K2")
	if a.status != http.StatusServiceUnavailable || a.errCode() != string(tillkeep.CodeUnavailable) {
		t.Fatalf("redemption during the outage: %d %s; want 503 unavailable", a.status, a.raw)
	}
	if bytes.Contains(a.raw, []byte("unused-pw")) {
		t.Fatalf("the answer leaks the database password: %s", a.raw)
	}
	err = st.Update(t.Context(), func(tx platform.Tx) error { return tx.PutMeta("k", []byte("v")) })
	if tillkeep.ErrorCode(err) != tillkeep.CodeUnavailable {
		t.Fatalf("Update during the outage: %v, want code unavailable", err)
	}
	err = st.View(t.Context(), func(tx platform.ReadTx) error { _, err := tx.Meta("k"); return err })
	if tillkeep.ErrorCode(err) != tillkeep.CodeUnavailable {
		t.Fatalf("View during the outage: %v, want code unavailable", err)
	}

	p.up()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a = redeem(2, "K2")
		if a.status == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the platform did not recover after the database came back: %d %s", a.status, a.raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if c := in.coupon("K2"); c.TimesRedeemed != 1 {
		t.Fatalf("K2 counts %d uses after the retried redemption, want 1", c.TimesRedeemed)
	}
	if err := st.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}
