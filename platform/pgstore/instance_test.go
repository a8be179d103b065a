package pgstore_test

import (
	"bytes"
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
	"github.com/tillkeep/tillkeep/platform/pgstore"
	"github.com/tillkeep/tillkeep/platform/pgstore/pgtest"
)

// Helpers for tests that run whole platform instances on PostgreSQL: each instance
// has its own store (its own connection pool, as a separate process would) and its own
// HTTP server, and all share one database.

const (
	adminToken  = "admin-token-0123456789"
	enrollToken = "enroll-token-0123456789"
)

type instance struct {
	t     testing.TB
	name  string
	store *pgstore.Store
	srv   *platform.Server
	url   string
}

type testWriter struct {
	t      testing.TB
	prefix string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newInstance starts a platform instance on the database dsn.
func newInstance(t testing.TB, name, dsn string) *instance {
	t.Helper()
	return startInstance(t, name, pgtest.OpenDSN(t, dsn))
}

func startInstance(t testing.TB, name string, st *pgstore.Store) *instance {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t, name + ": "}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := platform.NewServer(st, platform.ServerConfig{
		AdminToken: adminToken, EnrollToken: enrollToken, AutoRevoke: true, Logger: log, TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &instance{t: t, name: name, store: st, srv: srv, url: hs.URL}
}

// answer is a decoded HTTP answer.
type answer struct {
	status int
	body   map[string]any
	raw    []byte
}

func (a answer) errCode() string {
	if e, ok := a.body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (a answer) str(k string) string { s, _ := a.body[k].(string); return s }

var client = &http.Client{Timeout: 60 * time.Second}

func (in *instance) do(method, path, token string, body any) answer {
	in.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			in.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, in.url+path, rd)
	if err != nil {
		in.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// Errorf, not Fatalf: racing goroutines call this too. Status 0 marks the failure.
	res, err := client.Do(req)
	if err != nil {
		in.t.Errorf("%s %s on %s: %v", method, path, in.name, err)
		return answer{}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		in.t.Errorf("%s %s on %s: read answer: %v", method, path, in.name, err)
		return answer{}
	}
	a := answer{status: res.StatusCode, raw: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(raw, &a.body)
	}
	return a
}

func (in *instance) must(status int, a answer, what string) answer {
	in.t.Helper()
	if a.status != status {
		in.t.Fatalf("%s on %s: status %d, want %d: %s", what, in.name, a.status, status, a.raw)
	}
	return a
}

func (in *instance) admin(method, path string, body any) answer {
	in.t.Helper()
	return in.do(method, path, adminToken, body)
}

// setUp creates stores S001 and S002, offer SPRING40 (limit 1 per coupon) with codes,
// and offer PERCUST3 (3 per customer) with one code per racer, and customer C1.
func (in *instance) setUp(codes []string, perCustomerCodes []string) {
	in.t.Helper()
	for _, id := range []string{"S001", "S002"} {
		in.must(200, in.admin("PUT", "/v1/stores/"+id, map[string]any{
			"name": "Store " + id, "zone": "east", "concept": "mall", "timezone": "America/New_York", "currency": "USD",
		}), "put store")
	}
	in.must(200, in.admin("PUT", "/v1/customers/C1", map[string]any{}), "put customer")
	offer := func(id string, perCustomer int) map[string]any {
		rules := map[string]any{"min_bill": 10000, "max_redemptions_per_coupon": 1, "stores": []string{"S001", "S002"}}
		if perCustomer > 0 {
			rules["max_redemptions_per_customer"] = perCustomer
		}
		now := time.Now().UTC()
		return map[string]any{
			"id": id, "name": "Offer " + id,
			"discount":   map[string]any{"type": "fixed", "amount": 4000, "currency": "USD"},
			"valid_from": now.AddDate(0, -1, 0).Format(time.RFC3339), "valid_until": now.AddDate(0, 6, 0).Format(time.RFC3339),
			"expiry": map[string]any{"mode": "with_offer"}, "rules": rules, "offline": map[string]any{"allowed": true},
		}
	}
	in.must(201, in.admin("POST", "/v1/offers", offer("SPRING40", 0)), "create SPRING40")
	in.must(201, in.admin("POST", "/v1/offers/SPRING40/coupons", map[string]any{"codes": codes}), "create codes")
	if len(perCustomerCodes) > 0 {
		in.must(201, in.admin("POST", "/v1/offers", offer("PERCUST3", 3)), "create PERCUST3")
		in.must(201, in.admin("POST", "/v1/offers/PERCUST3/coupons", map[string]any{"codes": perCustomerCodes}), "create codes")
	}
}

// till is an enrolled till, attached to one instance.
type till struct {
	in      *instance
	storeID string
	tillID  string
	token   string
	seq     uint64
	mu      sync.Mutex
}

func (in *instance) enroll(storeID, tillID string) *till {
	in.t.Helper()
	a := in.must(201, in.do("POST", "/v1/till/enroll", "", map[string]any{
		"store_id": storeID, "till_id": tillID, "enroll_token": enrollToken,
	}), "enroll")
	return &till{in: in, storeID: storeID, tillID: tillID, token: a.str("token")}
}

// via returns the till talking to another instance (the load balancer moved it).
func (tl *till) via(in *instance) *till {
	return &till{in: in, storeID: tl.storeID, tillID: tl.tillID, token: tl.token}
}

func (tl *till) do(method, path string, body any) answer {
	tl.in.t.Helper()
	return tl.in.do(method, path, tl.token, body)
}

func usd(n int64) tillkeep.Money { return tillkeep.NewMoney(n, "USD") }

// entry builds the till's next offline redemption entry.
func (tl *till) entry(code, customer string, at time.Time) tillkeep.JournalEntry {
	tl.mu.Lock()
	tl.seq++
	seq := tl.seq
	tl.mu.Unlock()
	id := fmt.Sprintf("%s-%s-%05d", tl.storeID, tl.tillID, seq)
	return tillkeep.JournalEntry{
		Seq: seq, EntryID: id, Kind: tillkeep.EntryRedemption, RedemptionID: id,
		StoreID: tl.storeID, TillID: tl.tillID, TransactionID: "tx-" + id, Code: code, OfferID: "SPRING40",
		CustomerID: customer, Bill: usd(12000), Discount: usd(4000), Mode: tillkeep.ModeOffline,
		WallTime: at, HLC: tillkeep.HLC{WallMS: at.UnixMilli()},
	}
}

func (tl *till) upload(entries []tillkeep.JournalEntry) platform.JournalAck {
	tl.in.t.Helper()
	a := tl.in.must(200, tl.do("POST", "/v1/till/journal", map[string]any{"epoch": "", "entries": entries}), "upload journal")
	var ack platform.JournalAck
	if err := json.Unmarshal(a.raw, &ack); err != nil {
		tl.in.t.Fatal(err)
	}
	return ack
}
