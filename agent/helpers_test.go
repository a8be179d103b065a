package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the tests must not depend on the machine's zone files

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/store"
	"github.com/tillkeep/tillkeep/store/memstore"
)

const (
	testStoreID  = "S001"
	testTillID   = "T01"
	testPosToken = "pos-token-for-tests-0123456789"
)

// testNow is a Monday noon in New York, mid-year so no DST edge is involved.
var testNow = time.Date(2026, 6, 15, 16, 0, 0, 0, time.UTC)

// ledgerKinds are the ledger implementations every API test runs against: the fast
// in-memory one and the real bbolt one.
var ledgerKinds = []struct {
	name string
	open func(t testing.TB) store.Ledger
}{
	{"memstore", func(t testing.TB) store.Ledger {
		l := memstore.New(testStoreID, testTillID)
		t.Cleanup(func() { _ = l.Close() })
		return l
	}},
	{"bolt", func(t testing.TB) store.Ledger {
		db, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{
			Timeout: time.Second, StoreID: testStoreID, TillID: testTillID,
		})
		if err != nil {
			t.Fatalf("open bolt ledger: %v", err)
		}
		t.Cleanup(func() {
			if err := db.Close(); err != nil {
				t.Errorf("close bolt ledger: %v", err)
			}
		})
		return db
	}},
}

// forEachLedger runs fn once per ledger implementation.
func forEachLedger(t *testing.T, fn func(t *testing.T, open func(testing.TB) store.Ledger)) {
	for _, k := range ledgerKinds {
		t.Run(k.name, func(t *testing.T) { fn(t, k.open) })
	}
}

func testConfig() config.Agent {
	cfg := config.DefaultAgent()
	cfg.Listen = "127.0.0.1:0"
	cfg.PosToken = testPosToken
	cfg.StoreID = testStoreID
	cfg.TillID = testTillID
	cfg.DataDir = ""
	return cfg
}

// clock is a settable clock for the Redeemer.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func usd(amount int64) tillkeep.Money { return tillkeep.Money{Amount: amount, Currency: "USD"} }

func offer(id string, discount int64, edit func(*tillkeep.Offer)) tillkeep.Offer {
	o := tillkeep.Offer{
		ID:         id,
		Name:       id,
		Discount:   tillkeep.Discount{Type: tillkeep.DiscountFixed, Amount: discount, Currency: "USD"},
		ValidFrom:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		ValidUntil: time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC),
		Expiry:     tillkeep.Expiry{Mode: tillkeep.ExpiryWithOffer},
		Rules:      tillkeep.Rules{MaxRedemptionsPerCoupon: 1, Stores: []string{testStoreID}},
		Offline:    tillkeep.OfflinePolicy{Allowed: true},
	}
	if edit != nil {
		edit(&o)
	}
	return o
}

func coupon(code, offerID string, edit func(*tillkeep.Coupon)) tillkeep.Coupon {
	c := tillkeep.Coupon{
		Code:      code,
		OfferID:   offerID,
		Status:    tillkeep.CouponActive,
		CreatedAt: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC),
		IssuedAt:  time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC),
	}
	if edit != nil {
		edit(&c)
	}
	return c
}

// testSnapshot is the store's catalog: one offer per refusal the offline path can
// produce, plus an ordinary one with many single-use coupons.
func testSnapshot(asOf time.Time, plainCoupons int) tillkeep.CatalogSnapshot {
	snap := tillkeep.CatalogSnapshot{
		StoreID: testStoreID,
		Seq:     1,
		Store: tillkeep.Store{ID: testStoreID, Name: "Main street", Zone: "east", Concept: "grocery",
			Timezone: "America/New_York", Currency: "USD"},
		AsOf: asOf,
		Offers: []tillkeep.Offer{
			offer("PLAIN", 1000, nil),
			offer("MINBILL", 4000, func(o *tillkeep.Offer) { o.Rules.MinBill = 10000 }),
			offer("ONLINEONLY", 1000, func(o *tillkeep.Offer) { o.Offline.Allowed = false }),
			offer("BIG", 6000, nil),
			offer("FUTURE", 1000, func(o *tillkeep.Offer) {
				o.ValidFrom = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
			}),
			offer("PAST", 1000, func(o *tillkeep.Offer) {
				o.ValidUntil = time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC)
			}),
			offer("TWICE", 500, func(o *tillkeep.Offer) { o.Rules.MaxRedemptionsPerCoupon = 2 }),
			offer("NOON", 700, func(o *tillkeep.Offer) { o.Rules.HoursOfDay = []int{12} }),
		},
		Coupons: []tillkeep.Coupon{
			coupon("MIN-1", "MINBILL", nil),
			coupon("ONLINE-1", "ONLINEONLY", nil),
			coupon("BIG-1", "BIG", nil),
			coupon("FUTURE-1", "FUTURE", nil),
			coupon("PAST-1", "PAST", nil),
			coupon("TWICE-1", "TWICE", nil),
			coupon("NOON-1", "NOON", nil),
			coupon("REVOKED-1", "PLAIN", func(c *tillkeep.Coupon) {
				c.Status = tillkeep.CouponRevoked
				c.RevokedAt = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
			}),
			coupon("USED-1", "PLAIN", func(c *tillkeep.Coupon) {
				c.Status = tillkeep.CouponRedeemed
				c.Redemptions = 1
			}),
		},
	}
	for i := 1; i <= plainCoupons; i++ {
		snap.Coupons = append(snap.Coupons, coupon(fmt.Sprintf("C%04d", i), "PLAIN", nil))
	}
	return snap
}

// harness is an agent under test: its ledger, clock and HTTP surface.
type harness struct {
	t      *testing.T
	ledger store.Ledger
	clock  *clock
	server *Server
	http   *httptest.Server
}

// harnessSetup is what harness options may change before the agent starts.
type harnessSetup struct {
	cfg  config.Agent
	opts []Option
	// wrap puts something between the agent and the real ledger (fault injection).
	wrap func(store.Ledger) Ledger
}

type harnessOption func(*harnessSetup)

func withConfig(edit func(*config.Agent)) harnessOption {
	return func(s *harnessSetup) { edit(&s.cfg) }
}

func withOption(o Option) harnessOption {
	return func(s *harnessSetup) { s.opts = append(s.opts, o) }
}

func withLedgerWrapper(wrap func(store.Ledger) Ledger) harnessOption {
	return func(s *harnessSetup) { s.wrap = wrap }
}

// newHarness starts an agent over a fresh ledger loaded with testSnapshot (synced an
// hour before testNow) unless noCatalog is given.
func newHarness(t *testing.T, open func(testing.TB) store.Ledger, hopts ...harnessOption) *harness {
	t.Helper()
	h := newBareHarness(t, open, hopts...)
	h.importCatalog(testSnapshot(testNow.Add(-time.Hour), 50))
	return h
}

func newBareHarness(t *testing.T, open func(testing.TB) store.Ledger, hopts ...harnessOption) *harness {
	t.Helper()
	clk := newClock(testNow)
	setup := harnessSetup{cfg: testConfig(), opts: []Option{WithClock(clk.Now)}}
	for _, o := range hopts {
		o(&setup)
	}
	ledger := open(t)
	var served Ledger = ledger
	if setup.wrap != nil {
		served = setup.wrap(ledger)
	}
	srv := New(setup.cfg, served, testLogger(t), setup.opts...)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &harness{t: t, ledger: ledger, clock: clk, server: srv, http: hs}
}

func (h *harness) importCatalog(snap tillkeep.CatalogSnapshot) {
	h.t.Helper()
	if err := h.ledger.ReplaceCatalog(context.Background(), snap); err != nil {
		h.t.Fatalf("import catalog: %v", err)
	}
}

// testLogger sends the agent's logs to the test log, so a failing test shows them.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// response is an HTTP answer with its decoded JSON body.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r response) errorCode() string {
	e, _ := r.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func (r response) errorRule() string {
	e, _ := r.body["error"].(map[string]any)
	rule, _ := e["rule"].(string)
	return rule
}

func (r response) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

// do sends a request with the POS token.
func (h *harness) do(method, path string, body any) response {
	h.t.Helper()
	return h.doWith(method, path, testPosToken, body)
}

func (h *harness) doWith(method, path, token string, body any) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.http.URL+path, rd)
	if err != nil {
		h.t.Fatalf("new request: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.http.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("read answer of %s %s: %v", method, path, err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			h.t.Fatalf("%s %s answered non-JSON %q: %v", method, path, raw, err)
		}
	}
	return r
}

type redeemJSON struct {
	Code          string         `json:"code"`
	TransactionID string         `json:"transaction_id"`
	Bill          tillkeep.Money `json:"bill"`
	CustomerID    string         `json:"customer_id,omitempty"`
}

func (h *harness) redeem(code, txID string, bill int64) response {
	h.t.Helper()
	return h.do("POST", "/v1/redemptions", redeemJSON{Code: code, TransactionID: txID, Bill: usd(bill)})
}

// journal reads the whole journal.
func (h *harness) journal() []tillkeep.JournalEntry {
	h.t.Helper()
	var all []tillkeep.JournalEntry
	var after uint64
	for {
		page, err := h.ledger.Journal(context.Background(), after, 1000)
		if err != nil {
			h.t.Fatalf("read journal: %v", err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
}

func (h *harness) expectStatus(r response, want int, what string) {
	h.t.Helper()
	if r.status != want {
		h.t.Fatalf("%s: status %d, want %d; body %s", what, r.status, want, r.raw)
	}
}
