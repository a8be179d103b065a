package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the store's zone must not depend on the machine's zone files

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/agent"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/internal/httpapi"
	"github.com/tillkeep/tillkeep/store/memstore"
)

// Fuzz targets for the POS API's JSON request decoders, driven through the real
// handler chain (token check, strict decoding, the redemption engine, the ledger). Seed
// corpora live in testdata/fuzz/<Target>/. Invariants on every answer: no 5xx but 503
// and 507 (storage), no panic (a recovered panic would be a 500), the JSON error
// envelope with a status matching its code on every non-2xx, a 2xx body of the right
// shape whose discount never exceeds the bill, and the POS token in no answer and no
// log line.

const fuzzPosToken = "fuzz-pos-token-7d0c2b8e4f6a1935"

var fuzzNow = time.Date(2026, 6, 15, 16, 0, 0, 0, time.UTC) // a Monday, noon in New York

// fuzzAgent is an agent over an in-memory ledger holding a catalog with every kind of
// offer the offline engine judges, so fuzzed bodies reach deep into it.
type fuzzAgent struct {
	handler http.Handler
	logs    *secretWatch
}

func newFuzzAgent(tb testing.TB) *fuzzAgent {
	tb.Helper()
	ledger := memstore.New("S001", "T01")
	tb.Cleanup(func() { _ = ledger.Close() })
	if err := ledger.ReplaceCatalog(context.Background(), fuzzCatalog()); err != nil {
		tb.Fatalf("import catalog: %v", err)
	}
	cfg := config.DefaultAgent()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", ""
	cfg.PosToken, cfg.StoreID, cfg.TillID = fuzzPosToken, "S001", "T01"
	logs := &secretWatch{secrets: []string{fuzzPosToken}}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := agent.New(cfg, ledger, log, agent.WithClock(func() time.Time { return fuzzNow }))
	return &fuzzAgent{handler: srv.Handler(), logs: logs}
}

func fuzzCatalog() tillkeep.CatalogSnapshot {
	validFrom := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	validUntil := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)
	offer := func(id string, edit func(*tillkeep.Offer)) tillkeep.Offer {
		o := tillkeep.Offer{
			ID: id, Name: id, ValidFrom: validFrom, ValidUntil: validUntil,
			Discount: tillkeep.Discount{Type: tillkeep.DiscountFixed, Amount: 1000, Currency: "USD"},
			Expiry:   tillkeep.Expiry{Mode: tillkeep.ExpiryWithOffer},
			Rules:    tillkeep.Rules{MaxRedemptionsPerCoupon: 1},
			Offline:  tillkeep.OfflinePolicy{Allowed: true},
		}
		if edit != nil {
			edit(&o)
		}
		return o
	}
	pct := tillkeep.PercentFromBasisPoints(1500)
	snap := tillkeep.CatalogSnapshot{
		StoreID: "S001", Seq: 1, AsOf: fuzzNow.Add(-time.Hour),
		Store: tillkeep.Store{ID: "S001", Name: "Main street", Zone: "east", Concept: "grocery",
			Timezone: "America/New_York", Currency: "USD"},
		Offers: []tillkeep.Offer{
			offer("FIXED", nil),
			offer("PCT", func(o *tillkeep.Offer) {
				o.Discount = tillkeep.Discount{Type: tillkeep.DiscountPercent, Percent: pct, MaxAmount: 2000}
			}),
			offer("MINBILL", func(o *tillkeep.Offer) { o.Rules.MinBill, o.Rules.MaxBill = 10000, 500000 }),
			offer("MULTI", func(o *tillkeep.Offer) {
				o.Rules.MaxRedemptionsPerCoupon, o.Rules.MaxRedemptionsPerCustomer = 1000, 2
			}),
			offer("ONLINEONLY", func(o *tillkeep.Offer) { o.Offline.Allowed = false }),
			offer("BIG", func(o *tillkeep.Offer) { o.Discount.Amount = 900000 }),
			offer("WEEKDAY", func(o *tillkeep.Offer) {
				o.Rules.DaysOfWeek, o.Rules.HoursOfDay = []string{"monday", "tuesday"}, []int{11, 12, 13}
			}),
			offer("OTHERSTORE", func(o *tillkeep.Offer) { o.Rules.Stores = []string{"S002"} }),
		},
	}
	for _, o := range snap.Offers {
		for i := 1; i <= 40; i++ {
			snap.Coupons = append(snap.Coupons, tillkeep.Coupon{
				Code: fmt.Sprintf("%s-%d", o.ID, i), OfferID: o.ID, Status: tillkeep.CouponActive,
				CreatedAt: validFrom, IssuedAt: validFrom,
			})
		}
	}
	snap.Coupons = append(snap.Coupons, tillkeep.Coupon{Code: "CUST-1", OfferID: "FIXED", CustomerID: "CU1",
		Status: tillkeep.CouponActive, CreatedAt: validFrom, IssuedAt: validFrom})
	return snap
}

// secretWatch is a log destination that remembers any line holding a secret.
type secretWatch struct {
	secrets []string
	mu      sync.Mutex
	leaked  []string
}

func (w *secretWatch) Write(p []byte) (int, error) {
	for _, s := range w.secrets {
		if bytes.Contains(p, []byte(s)) {
			w.mu.Lock()
			w.leaked = append(w.leaked, string(p))
			w.mu.Unlock()
		}
	}
	return len(p), nil
}

func (w *secretWatch) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.leaked) > 0 {
		first := w.leaked[0]
		w.leaked = nil // the next input starts clean
		t.Fatalf("a secret reached the log: %s", first)
	}
}

func (a *fuzzAgent) post(path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+fuzzPosToken)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, req)
	return rec
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkAnswer holds for every answer of the POS API, whatever the body was.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	status, raw := rec.Code, rec.Body.Bytes()
	if status >= 500 && status != http.StatusServiceUnavailable && status != http.StatusInsufficientStorage {
		t.Fatalf("answered %d: %s", status, raw)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("answered %d with Content-Type %q: %q", status, ct, raw)
	}
	if bytes.Contains(raw, []byte(fuzzPosToken)) {
		t.Fatalf("the answer echoes the POS token: %s", raw)
	}
	if bytes.Contains(raw, []byte("goroutine ")) || bytes.Contains(raw, []byte(".go:")) {
		t.Fatalf("the answer carries a stack trace: %s", raw)
	}
	if status < 300 {
		if !json.Valid(raw) {
			t.Fatalf("answered %d with invalid JSON: %q", status, raw)
		}
		return
	}
	var env struct {
		Error *httpapi.ErrorDetail `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || env.Error == nil {
		t.Fatalf("answered %d without the error envelope: %q (%v)", status, raw, err)
	}
	if !snakeCase.MatchString(env.Error.Code) || strings.TrimSpace(env.Error.Message) == "" {
		t.Fatalf("error envelope without a snake_case code and a message: %s", raw)
	}
	if want := httpapi.StatusOf(tillkeep.Code(env.Error.Code)); want != status {
		t.Fatalf("answered %d with code %q, which maps to %d", status, env.Error.Code, want)
	}
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		t.Fatalf("the POS token was refused: %s", raw)
	}
}

// billOf reads the bill of an accepted body (accepted bodies decode).
func billOf(t *testing.T, body []byte) tillkeep.Money {
	t.Helper()
	var b struct {
		Bill *tillkeep.Money `json:"bill"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Bill == nil {
		t.Fatalf("a body the API accepted does not decode with a bill: %v", err)
	}
	return *b.Bill
}

func checkDiscount(t *testing.T, bill, discount tillkeep.Money) {
	t.Helper()
	// A zero bill is a valid bill (the rule engine allows it) and gets a zero discount.
	if discount.Currency != bill.Currency || discount.Amount < 0 || discount.Amount > bill.Amount ||
		(bill.Amount > 0 && discount.Amount == 0) {
		t.Fatalf("granted %+v on a bill of %+v", discount, bill)
	}
}

func FuzzPOSRedeem(f *testing.F) {
	a := newFuzzAgent(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := a.post("/v1/redemptions", body)
		checkAnswer(t, rec)
		a.logs.check(t)
		if rec.Code != http.StatusCreated {
			return
		}
		var ans struct {
			RedemptionID string         `json:"redemption_id"`
			Mode         string         `json:"mode"`
			Discount     tillkeep.Money `json:"discount"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil || ans.RedemptionID == "" ||
			(ans.Mode != tillkeep.ModeOnline && ans.Mode != tillkeep.ModeOffline) {
			t.Fatalf("201 answer %s lacks redemption_id or mode (%v)", rec.Body.Bytes(), err)
		}
		checkDiscount(t, billOf(t, body), ans.Discount)
		// The same body again is the same redemption, never a second one.
		again := a.post("/v1/redemptions", body)
		checkAnswer(t, again)
		if again.Code != http.StatusCreated || !strings.Contains(again.Body.String(), ans.RedemptionID) {
			t.Fatalf("replaying an accepted body answered %d %s, want 201 with %s", again.Code, again.Body.Bytes(), ans.RedemptionID)
		}
	})
}

func FuzzPOSValidate(f *testing.F) {
	a := newFuzzAgent(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := a.post("/v1/validate", body)
		checkAnswer(t, rec)
		a.logs.check(t)
		if rec.Code != http.StatusOK {
			return
		}
		var ans struct {
			Valid    bool            `json:"valid"`
			Discount *tillkeep.Money `json:"discount"`
			Reason   string          `json:"reason"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
			t.Fatalf("200 answer does not decode: %v", err)
		}
		switch {
		case ans.Valid && ans.Discount == nil:
			t.Fatalf("valid without a discount: %s", rec.Body.Bytes())
		case ans.Valid:
			checkDiscount(t, billOf(t, body), *ans.Discount)
		case !snakeCase.MatchString(ans.Reason):
			t.Fatalf("invalid without a snake_case reason: %s", rec.Body.Bytes())
		}
	})
}
