package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/store"
)

func TestAuth(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		h := newHarness(t, open)
		routes := []struct{ method, path, body string }{
			{"GET", "/v1/status", ""},
			{"POST", "/v1/validate", `{"code":"C0001","bill":{"amount":1000,"currency":"USD"}}`},
			{"POST", "/v1/redemptions", `{"code":"C0001","transaction_id":"T1","bill":{"amount":1000,"currency":"USD"}}`},
			{"POST", "/v1/redemptions/0190aaaa-0000-7000-8000-000000000000/reverse", ""},
			{"GET", "/v1/no-such-route", ""},
		}
		for _, rt := range routes {
			for _, token := range []string{"", "wrong-token", testPosToken + "x", strings.ToUpper(testPosToken)} {
				var body any
				if rt.body != "" {
					body = rt.body
				}
				r := h.doWith(rt.method, rt.path, token, body)
				if r.status != http.StatusUnauthorized || r.errorCode() != "unauthorized" {
					t.Errorf("%s %s with token %q: %d %s, want 401 unauthorized", rt.method, rt.path, token, r.status, r.raw)
				}
			}
		}
		// Nothing got through: no redemption was recorded.
		if n := len(h.journal()); n != 0 {
			t.Fatalf("journal has %d entries after unauthorised requests", n)
		}
		if r := h.doWith("GET", "/healthz", "", nil); r.status != http.StatusOK {
			t.Errorf("/healthz without token: %d %s, want 200", r.status, r.raw)
		}
		if r := h.doWith("GET", "/metrics", "", nil); r.status != http.StatusOK {
			t.Errorf("/metrics without token: %d, want 200", r.status)
		}
		if r := h.do("GET", "/v1/status", nil); r.status != http.StatusOK {
			t.Errorf("/v1/status with the token: %d %s", r.status, r.raw)
		}
	})
}

func TestMalformedRequests(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		h := newHarness(t, open)
		long := strings.Repeat("x", 129)
		cases := []struct {
			name, path, body string
			status           int
			code             string
		}{
			{"malformed JSON", "/v1/redemptions", `{"code": "C0001",`, 400, "invalid_request"},
			{"not an object", "/v1/redemptions", `[1,2]`, 400, "invalid_request"},
			{"empty body", "/v1/redemptions", ``, 400, "invalid_request"},
			{"unknown field", "/v1/redemptions", `{"code":"C0001","transaction_id":"T1","bill":{"amount":1000,"currency":"USD"},"coupon":"x"}`, 400, "invalid_request"},
			{"unknown field in bill", "/v1/redemptions", `{"code":"C0001","transaction_id":"T1","bill":{"amount":1000,"currency":"USD","tax":1}}`, 400, "invalid_request"},
			{"missing code", "/v1/redemptions", `{"transaction_id":"T1","bill":{"amount":1000,"currency":"USD"}}`, 400, "invalid_request"},
			{"missing transaction", "/v1/redemptions", `{"code":"C0001","bill":{"amount":1000,"currency":"USD"}}`, 400, "invalid_request"},
			{"transaction too long", "/v1/redemptions", `{"code":"C0001","transaction_id":"` + long + `","bill":{"amount":1000,"currency":"USD"}}`, 400, "invalid_request"},
			{"missing bill", "/v1/redemptions", `{"code":"C0001","transaction_id":"T1"}`, 400, "invalid_request"},
			{"negative bill", "/v1/redemptions", `{"code":"C0001","transaction_id":"T1","bill":{"amount":-1,"currency":"USD"}}`, 400, "invalid_request"},
			{"float amount", "/v1/redemptions", `{"code":"C0001","transaction_id":"T1","bill":{"amount":10.5,"currency":"USD"}}`, 400, "invalid_request"},
			{"bad currency", "/v1/redemptions", `{"code":"C0001","transaction_id":"T1","bill":{"amount":1000,"currency":"usd"}}`, 400, "invalid_request"},
			{"two values", "/v1/redemptions", `{"code":"C0001","transaction_id":"T1","bill":{"amount":1000,"currency":"USD"}} {}`, 400, "invalid_request"},
			{"validate missing code", "/v1/validate", `{"bill":{"amount":1000,"currency":"USD"}}`, 400, "invalid_request"},
			{"validate unknown field", "/v1/validate", `{"code":"C0001","bill":{"amount":1000,"currency":"USD"},"transaction_id":"T1"}`, 400, "invalid_request"},
			{"too large", "/v1/redemptions", `{"code":"` + strings.Repeat("A", MaxRequestBytes) + `"}`, 413, "body_too_large"},
			{"validate too large", "/v1/validate", `{"code":"` + strings.Repeat("A", MaxRequestBytes) + `"}`, 413, "body_too_large"},
		}
		for _, c := range cases {
			r := h.do("POST", c.path, c.body)
			if r.status != c.status || r.errorCode() != c.code {
				t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.raw, c.status, c.code)
			}
			if msg, _ := r.body["error"].(map[string]any)["message"].(string); msg == "" {
				t.Errorf("%s: the error has no message: %s", c.name, r.raw)
			}
		}
		if r := h.do("GET", "/v1/redemptions", nil); r.status != http.StatusMethodNotAllowed || r.errorCode() != "method_not_allowed" {
			t.Errorf("GET /v1/redemptions: %d %s, want a JSON 405", r.status, r.raw)
		}
		if r := h.do("GET", "/nowhere", nil); r.status != http.StatusNotFound || r.errorCode() != "not_found" {
			t.Errorf("GET /nowhere: %d %s, want a JSON 404", r.status, r.raw)
		}
		if n := len(h.journal()); n != 0 {
			t.Fatalf("journal has %d entries after malformed requests", n)
		}
	})
}

func TestRedeemReplayAndConflict(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		h := newHarness(t, open)
		first := h.redeem("C0001", "T-1", 12000)
		h.expectStatus(first, http.StatusCreated, "first redemption")
		id := first.str("redemption_id")
		if first.str("mode") != "offline" {
			t.Errorf("mode %q, want offline (no online path attached)", first.str("mode"))
		}
		if d := first.body["discount"].(map[string]any); d["amount"] != 1000.0 || d["currency"] != "USD" {
			t.Errorf("discount %v, want 1000 USD", d)
		}
		if first.header.Get(replayedHeader) != "" {
			t.Errorf("a first answer is marked replayed")
		}

		again := h.redeem("C0001", "T-1", 12000)
		h.expectStatus(again, http.StatusCreated, "replay")
		if again.raw != first.raw {
			t.Errorf("replay answered %s, first answer was %s", again.raw, first.raw)
		}
		if again.header.Get(replayedHeader) != "true" {
			t.Errorf("replay is not marked %s", replayedHeader)
		}

		for _, other := range []redeemJSON{
			{Code: "C0001", TransactionID: "T-1", Bill: usd(12001)},
			{Code: "C0002", TransactionID: "T-1", Bill: usd(12000)},
			{Code: "C0001", TransactionID: "T-1", Bill: tillkeep.Money{Amount: 12000, Currency: "EUR"}},
			{Code: "C0001", TransactionID: "T-1", Bill: usd(12000), CustomerID: "cust-1"},
		} {
			r := h.do("POST", "/v1/redemptions", other)
			if r.status != http.StatusConflict || r.errorCode() != "idempotency_key_reuse" {
				t.Errorf("reuse with %+v: %d %s, want 409 idempotency_key_reuse", other, r.status, r.raw)
			}
		}

		entries := h.journal()
		if len(entries) != 1 {
			t.Fatalf("journal has %d entries, want 1: %+v", len(entries), entries)
		}
		e := entries[0]
		if e.RedemptionID != id || e.EntryID != id || e.Kind != tillkeep.EntryRedemption || e.Mode != tillkeep.ModeOffline ||
			e.TransactionID != "T-1" || e.Code != "C0001" || e.OfferID != "PLAIN" || e.Bill != usd(12000) ||
			e.Discount != usd(1000) || e.StoreID != testStoreID || e.TillID != testTillID || e.Seq != 1 {
			t.Errorf("journal entry %+v does not match the answer %s", e, first.raw)
		}
		if !e.WallTime.Equal(testNow) || e.HLC.WallMS != testNow.UnixMilli() {
			t.Errorf("entry time %v / HLC %+v, want the injected clock %v", e.WallTime, e.HLC, testNow)
		}
	})
}

// A refused attempt leaves no record: the same transaction_id may come back with
// another body and is judged afresh.
func TestRefusalLeavesNoRecord(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		h := newHarness(t, open)
		r := h.redeem("MIN-1", "T-9", 5000)
		if r.status != 422 || r.errorCode() != "rule_violation" || r.errorRule() != "min_bill" {
			t.Fatalf("small bill: %d %s, want 422 rule_violation min_bill", r.status, r.raw)
		}
		r = h.redeem("MIN-1", "T-9", 15000)
		h.expectStatus(r, http.StatusCreated, "retry with a larger bill")
		if d := r.body["discount"].(map[string]any)["amount"]; d != 4000.0 {
			t.Errorf("discount %v, want 4000", d)
		}
		if n := len(h.journal()); n != 1 {
			t.Fatalf("journal has %d entries, want 1", n)
		}
	})
}

func TestRefusalCodes(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		cases := []struct {
			name   string
			setup  func(h *harness)
			cfg    func(*config.Agent)
			code   string
			bill   int64
			wantCd string
			rule   string
		}{
			{name: "unknown", code: "NOPE", bill: 12000, wantCd: "unknown_coupon"},
			{name: "already redeemed in the catalog", code: "USED-1", bill: 12000, wantCd: "already_redeemed", rule: "max_redemptions_per_coupon"},
			{name: "already redeemed here", code: "C0003", bill: 12000, wantCd: "already_redeemed", rule: "max_redemptions_per_coupon",
				setup: func(h *harness) { h.expectStatus(h.redeem("C0003", "first", 12000), 201, "first use") }},
			{name: "revoked", code: "REVOKED-1", bill: 12000, wantCd: "revoked"},
			{name: "expired", code: "PAST-1", bill: 12000, wantCd: "expired"},
			{name: "not yet valid", code: "FUTURE-1", bill: 12000, wantCd: "not_yet_valid"},
			{name: "min bill", code: "MIN-1", bill: 9999, wantCd: "rule_violation", rule: "min_bill"},
			{name: "hours of day in store time", code: "NOON-1", bill: 12000, wantCd: "rule_violation", rule: "hours_of_day",
				// 12:00 UTC is 08:00 in New York: outside the offer's noon hour.
				setup: func(h *harness) { h.clock.Set(time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)) }},
			{name: "offer online only", code: "ONLINE-1", bill: 12000, wantCd: "offline_not_allowed"},
			{name: "offline disabled", code: "C0001", bill: 12000, wantCd: "offline_not_allowed",
				cfg: func(c *config.Agent) { c.Offline.Enabled = false }},
			{name: "discount above max_discount", code: "BIG-1", bill: 12000, wantCd: "offline_limit"},
			{name: "lowered max_discount", code: "C0001", bill: 12000, wantCd: "offline_limit",
				cfg: func(c *config.Agent) { c.Offline.MaxDiscount = 999 }},
			{name: "max_redemptions reached", code: "C0010", bill: 12000, wantCd: "offline_limit",
				cfg: func(c *config.Agent) { c.Offline.MaxRedemptions = 2 },
				setup: func(h *harness) {
					h.expectStatus(h.redeem("C0011", "a", 12000), 201, "first of two")
					h.expectStatus(h.redeem("C0012", "b", 12000), 201, "second of two")
				}},
			{name: "catalog too old", code: "C0001", bill: 12000, wantCd: "catalog_stale",
				setup: func(h *harness) { h.clock.Set(testNow.Add(72 * time.Hour)) }},
			{name: "catalog too old, unknown code", code: "NOPE", bill: 12000, wantCd: "catalog_stale",
				setup: func(h *harness) { h.clock.Set(testNow.Add(73 * time.Hour)) }},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var hopts []harnessOption
				if c.cfg != nil {
					hopts = append(hopts, withConfig(c.cfg))
				}
				h := newHarness(t, open, hopts...)
				if c.setup != nil {
					c.setup(h)
				}
				before := len(h.journal())
				r := h.redeem(c.code, "T-refused", c.bill)
				if r.status != http.StatusUnprocessableEntity || r.errorCode() != c.wantCd || r.errorRule() != c.rule {
					t.Fatalf("redeem %s: %d %s, want 422 %s rule %q", c.code, r.status, r.raw, c.wantCd, c.rule)
				}
				v := h.do("POST", "/v1/validate", map[string]any{"code": c.code, "bill": usd(c.bill)})
				if v.status != 200 || v.body["valid"] != false || v.str("reason") != c.wantCd || v.str("rule") != c.rule {
					t.Errorf("validate %s: %d %s, want valid false, reason %s", c.code, v.status, v.raw, c.wantCd)
				}
				if after := len(h.journal()); after != before {
					t.Errorf("a refusal changed the journal from %d to %d entries", before, after)
				}
			})
		}
	})
}

func TestCatalogNeverSynced(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		h := newBareHarness(t, open)
		st := h.do("GET", "/v1/status", nil)
		h.expectStatus(st, 200, "status")
		cat := st.body["catalog"].(map[string]any)
		if v, present := cat["synced_at"]; !present || v != nil {
			t.Errorf("catalog.synced_at = %v (present %v), want null", v, present)
		}
		if r := h.redeem("C0001", "T-1", 12000); r.status != 422 || r.errorCode() != "catalog_stale" {
			t.Errorf("redeem before any catalog: %d %s, want 422 catalog_stale", r.status, r.raw)
		}
		// The catalog arrives: the agent notices without a restart.
		h.importCatalog(testSnapshot(testNow.Add(-time.Minute), 5))
		h.expectStatus(h.redeem("C0001", "T-1", 12000), 201, "redeem after the catalog arrived")
	})
}

func TestStatus(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		h := newHarness(t, open)
		st := h.do("GET", "/v1/status", nil)
		h.expectStatus(st, 200, "status")
		want := map[string]any{"till_id": testTillID, "store_id": testStoreID, "mode": "offline", "pending_uploads": 0.0}
		for k, v := range want {
			if st.body[k] != v {
				t.Errorf("status %s = %v, want %v (%s)", k, st.body[k], v, st.raw)
			}
		}
		cat := st.body["catalog"].(map[string]any)
		if cat["coupons"] != float64(len(testSnapshot(testNow, 50).Coupons)) {
			t.Errorf("catalog.coupons = %v", cat["coupons"])
		}
		synced, err := time.Parse(time.RFC3339, cat["synced_at"].(string))
		if err != nil || !synced.Equal(testNow.Add(-time.Hour)) {
			t.Errorf("catalog.synced_at = %v (%v), want %v", cat["synced_at"], err, testNow.Add(-time.Hour))
		}
		h.expectStatus(h.redeem("C0001", "T-1", 12000), 201, "redeem")
		h.expectStatus(h.redeem("C0002", "T-2", 12000), 201, "redeem")
		st = h.do("GET", "/v1/status", nil)
		if st.body["pending_uploads"] != 2.0 || st.body["offline_redemptions"] != 2.0 {
			t.Errorf("after two redemptions: %s", st.raw)
		}
	})
}

func TestValidate(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		h := newHarness(t, open)
		v := h.do("POST", "/v1/validate", map[string]any{"code": "MIN-1", "bill": usd(10000), "customer_id": "cust-7"})
		h.expectStatus(v, 200, "validate")
		if v.body["valid"] != true || v.body["discount"].(map[string]any)["amount"] != 4000.0 || v.str("mode") != "offline" {
			t.Errorf("validate: %s", v.raw)
		}
		if _, has := v.body["reason"]; has {
			t.Errorf("a valid answer carries a reason: %s", v.raw)
		}
		if n := len(h.journal()); n != 0 {
			t.Fatalf("validate recorded %d entries", n)
		}
		// Validation sees the till's own use.
		h.expectStatus(h.redeem("MIN-1", "T-1", 10000), 201, "redeem")
		v = h.do("POST", "/v1/validate", map[string]any{"code": "MIN-1", "bill": usd(10000)})
		if v.body["valid"] != false || v.str("reason") != "already_redeemed" {
			t.Errorf("validate a used coupon: %s", v.raw)
		}
		if _, has := v.body["discount"]; has {
			t.Errorf("an invalid answer carries a discount: %s", v.raw)
		}
	})
}

func TestReverse(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		h := newHarness(t, open)
		first := h.redeem("C0005", "T-5", 12000)
		h.expectStatus(first, 201, "redeem")
		id := first.str("redemption_id")
		h.clock.Set(testNow.Add(time.Minute))

		for i := range 2 {
			r := h.do("POST", "/v1/redemptions/"+id+"/reverse", nil)
			h.expectStatus(r, 200, fmt.Sprintf("reverse #%d", i+1))
			if r.str("redemption_id") != id || r.str("status") != "reversed" {
				t.Errorf("reverse #%d answered %s", i+1, r.raw)
			}
		}
		entries := h.journal()
		if len(entries) != 2 {
			t.Fatalf("journal has %d entries after a reversal and its repeat, want 2", len(entries))
		}
		rev := entries[1]
		if rev.Kind != tillkeep.EntryReversal || rev.RedemptionID != id || rev.EntryID == id || rev.EntryID == "" ||
			rev.TransactionID != "T-5" || rev.Code != "C0005" || !rev.WallTime.Equal(testNow.Add(time.Minute)) ||
			!entries[0].HLC.Less(rev.HLC) {
			t.Errorf("reversal entry %+v", rev)
		}

		// The coupon is free again at this till, and the reversed transaction is still
		// answered as it was.
		h.expectStatus(h.redeem("C0005", "T-6", 12000), 201, "redeem the reversed coupon again")
		if r := h.redeem("C0005", "T-5", 12000); r.status != 201 || r.str("redemption_id") != id {
			t.Errorf("replay of the reversed transaction: %d %s", r.status, r.raw)
		}

		for _, unknown := range []string{"0190aaaa-0000-7000-8000-000000000000", "not-a-uuid"} {
			r := h.do("POST", "/v1/redemptions/"+unknown+"/reverse", nil)
			if r.status != 404 || r.errorCode() != "not_found" {
				t.Errorf("reverse %s: %d %s, want 404 not_found", unknown, r.status, r.raw)
			}
		}
		if r := h.do("POST", "/v1/redemptions/"+strings.Repeat("x", 200)+"/reverse", nil); r.status != 400 {
			t.Errorf("reverse an absurd id: %d %s, want 400", r.status, r.raw)
		}
	})
}

// Sixteen lanes race for one single-use coupon: exactly one wins.
func TestConcurrentLimitOne(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		h := newHarness(t, open)
		const lanes = 16
		results := make([]response, lanes)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range lanes {
			wg.Go(func() {
				<-start
				results[i] = h.redeem("C0007", fmt.Sprintf("lane-%d", i), 12000)
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for i, r := range results {
			switch {
			case r.status == 201:
				won++
			case r.status == 422 && r.errorCode() == "already_redeemed":
			default:
				t.Errorf("lane %d: %d %s", i, r.status, r.raw)
			}
		}
		if won != 1 {
			t.Fatalf("%d lanes redeemed a single-use coupon, want exactly 1", won)
		}
		if n := len(h.journal()); n != 1 {
			t.Fatalf("journal has %d entries, want 1", n)
		}
	})
}

// Sixteen retries of one transaction at once: one redemption id for all of them.
func TestConcurrentSameTransaction(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		h := newHarness(t, open)
		const lanes = 16
		ids := make([]string, lanes)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range lanes {
			wg.Go(func() {
				<-start
				r := h.redeem("TWICE-1", "same-tx", 12000)
				if r.status != 201 {
					t.Errorf("lane %d: %d %s", i, r.status, r.raw)
				}
				ids[i] = r.str("redemption_id")
			})
		}
		close(start)
		wg.Wait()
		for i := range ids {
			if ids[i] != ids[0] {
				t.Fatalf("lanes got different redemption ids: %v", ids)
			}
		}
		if n := len(h.journal()); n != 1 {
			t.Fatalf("journal has %d entries, want 1", n)
		}
		if n := h.server.Redeemer().transactions.size(); n != 0 {
			t.Errorf("%d transaction locks left behind", n)
		}
	})
}

// The store's time zone comes from the cached catalog and follows catalog changes.
func TestStoreTimezoneFollowsCatalog(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		h := newHarness(t, open)
		// 16:00 UTC is 12:00 in New York: inside the offer's noon hour.
		v := h.do("POST", "/v1/validate", map[string]any{"code": "NOON-1", "bill": usd(12000)})
		if v.body["valid"] != true {
			t.Fatalf("noon in New York: %s", v.raw)
		}
		snap := testSnapshot(testNow.Add(-time.Minute), 50)
		snap.Seq = 2
		snap.Store.Timezone = "Europe/Amsterdam" // 18:00 there
		h.importCatalog(snap)
		r := h.redeem("NOON-1", "T-1", 12000)
		if r.status != 422 || r.errorRule() != "hours_of_day" {
			t.Fatalf("after the store moved to Amsterdam: %d %s, want 422 hours_of_day", r.status, r.raw)
		}
	})
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, ledgerKinds[0].open)
	h.expectStatus(h.redeem("C0001", "T-1", 12000), 201, "redeem")
	h.expectStatus(h.redeem("C0001", "T-1", 12000), 201, "replay")
	if r := h.redeem("MIN-1", "T-2", 100); r.status != 422 {
		t.Fatalf("refusal: %d", r.status)
	}
	m := h.doWith("GET", "/metrics", "", nil)
	h.expectStatus(m, 200, "metrics")
	for _, want := range []string{
		`tillkeep_agent_redemptions_total{mode="offline",outcome="accepted"} 1`,
		`tillkeep_agent_redemptions_total{mode="offline",outcome="replayed"} 1`,
		`tillkeep_agent_redemptions_total{mode="offline",outcome="refused"} 1`,
		`tillkeep_agent_refusals_total{code="rule_violation"} 1`,
		`tillkeep_agent_pending_uploads 1`,
		`tillkeep_agent_online 0`,
		`tillkeep_agent_http_request_duration_seconds_count{route="POST /v1/redemptions",status="201"} 2`,
		`go_goroutines`,
	} {
		if !strings.Contains(m.raw, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(m.raw, testPosToken) {
		t.Errorf("metrics expose the POS token")
	}
}

// faultyLedger makes the real ledger's writes fail the way a full or read-only disk
// makes them fail, which a test cannot arrange on a shared machine.
type faultyLedger struct {
	store.Ledger
	fail error
}

func (f faultyLedger) Record(ctx context.Context, req tillkeep.RecordRequest) (tillkeep.Outcome, bool, error) {
	return tillkeep.Outcome{}, false, fmt.Errorf("commit ledger: %w", f.fail)
}

func (f faultyLedger) Reverse(ctx context.Context, req tillkeep.ReverseRequest) (tillkeep.Outcome, error) {
	return tillkeep.Outcome{}, fmt.Errorf("commit ledger: %w", f.fail)
}

func TestStorageFailures(t *testing.T) {
	cases := []struct {
		name   string
		fail   error
		status int
		code   string
	}{
		{"disk full", &fs.PathError{Op: "write", Path: "/var/lib/tillkeep/agent/ledger.db", Err: syscall.ENOSPC}, 507, "storage_full"},
		{"read-only file system", &fs.PathError{Op: "write", Path: "/var/lib/tillkeep/agent/ledger.db", Err: syscall.EROFS}, 503, "unavailable"},
		{"unexplained", errors.New("bbolt: something odd"), 500, "internal"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, ledgerKinds[1].open, withLedgerWrapper(func(l store.Ledger) Ledger {
				return faultyLedger{l, c.fail}
			}))
			r := h.redeem("C0001", "T-1", 12000)
			if r.status != c.status || r.errorCode() != c.code {
				t.Fatalf("redeem: %d %s, want %d %s", r.status, r.raw, c.status, c.code)
			}
			if strings.Contains(r.raw, "/var/lib") || strings.Contains(r.raw, "bbolt") {
				t.Errorf("the answer leaks the cause: %s", r.raw)
			}
			if r := h.do("POST", "/v1/redemptions/0190aaaa-0000-7000-8000-000000000000/reverse", nil); r.status != c.status {
				t.Errorf("reverse: %d %s, want %d", r.status, r.raw, c.status)
			}
			if r := h.doWith("GET", "/healthz", "", nil); r.status != 200 {
				t.Errorf("the agent stopped serving after a storage failure: %d", r.status)
			}
		})
	}
	t.Run("ledger closed", func(t *testing.T) {
		h := newHarness(t, ledgerKinds[1].open)
		if err := h.ledger.Close(); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/v1/redemptions", "/v1/validate"} {
			r := h.do("POST", path, redeemJSON{Code: "C0001", TransactionID: "T-1", Bill: usd(12000)})
			if path == "/v1/validate" {
				r = h.do("POST", path, map[string]any{"code": "C0001", "bill": usd(12000)})
			}
			if r.status != 503 || r.errorCode() != "unavailable" {
				t.Errorf("%s on a closed ledger: %d %s, want 503 unavailable", path, r.status, r.raw)
			}
		}
		if r := h.do("GET", "/v1/status", nil); r.status != 503 {
			t.Errorf("status on a closed ledger: %d %s, want 503", r.status, r.raw)
		}
	})
}

func TestServeStopsGracefully(t *testing.T) {
	h := newHarness(t, ledgerKinds[1].open)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- h.server.ServeListener(ctx, ln) }()
	url := "http://" + ln.Addr().String()
	waitHealthy(t, url)

	// An in-flight redemption held up by a slow platform must finish, not be cut.
	slow := &fakeOnline{delay: 300 * time.Millisecond, reachable: true}
	h.server.Redeemer().SetOnline(slow)
	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", url+"/v1/redemptions",
			strings.NewReader(`{"code":"C0001","transaction_id":"T-slow","bill":{"amount":12000,"currency":"USD"}}`))
		req.Header.Set("Authorization", "Bearer "+testPosToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- -1
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	slow.waitCalled(t)
	stopAt := time.Now()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve returned %v, want nil", err)
		}
		if took := time.Since(stopAt); took > 5*time.Second {
			t.Fatalf("Serve took %v to stop", took)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("Serve did not return within 6 s of cancel")
	}
	if status := <-answered; status != 201 {
		t.Fatalf("the in-flight redemption got %d, want 201", status)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("the listener still accepts after Serve returned")
	}
}

func waitHealthy(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s/healthz did not answer 200 within 5 s", url)
}

func TestBackupEndpoint(t *testing.T) {
	h := newHarness(t, ledgerKinds[1].open)
	h.expectStatus(h.redeem("C0001", "T-1", 12000), 201, "redeem")
	if r := h.doWith("GET", BackupPath, "", nil); r.status != 401 {
		t.Fatalf("backup without a token: %d", r.status)
	}
	r := h.do("GET", BackupPath, nil)
	h.expectStatus(r, 200, "backup")
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(copyPath, []byte(r.raw), 0o600); err != nil {
		t.Fatal(err)
	}
	copied, err := store.Open(copyPath, store.Options{StoreID: testStoreID, TillID: testTillID})
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	defer copied.Close()
	entries, err := copied.Journal(context.Background(), 0, 10)
	if err != nil || len(entries) != 1 || entries[0].TransactionID != "T-1" {
		t.Fatalf("the copy's journal: %+v, %v", entries, err)
	}

	mem := newHarness(t, ledgerKinds[0].open)
	if r := mem.do("GET", BackupPath, nil); r.status != 404 || r.errorCode() != "not_found" {
		t.Fatalf("backup of an in-memory ledger: %d %s", r.status, r.raw)
	}
}
