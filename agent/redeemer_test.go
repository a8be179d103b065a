package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/store"
)

// fakeOnline stands in for the platform (package sync builds the real one) so that
// the Redeemer's side of the online contract can be tested: accept, refuse, or give no
// decision, after an optional delay.
type fakeOnline struct {
	mu        sync.Mutex
	delay     time.Duration // wait before answering; an ending context cuts it short
	hang      bool          // never answer: only the context ends the call
	err       error         // the answer's error (nil: accepted)
	discount  tillkeep.Money
	reachable bool

	redeems     []OnlineRedemption
	validations []OnlineValidation
	reversals   []OnlineReversal
	deadlines   []time.Duration // time left on each call's context
	called      chan struct{}
}

func (f *fakeOnline) record(ctx context.Context, add func()) {
	f.mu.Lock()
	add()
	if dl, ok := ctx.Deadline(); ok {
		f.deadlines = append(f.deadlines, time.Until(dl))
	} else {
		f.deadlines = append(f.deadlines, -1)
	}
	if f.called == nil {
		f.called = make(chan struct{})
	}
	select {
	case <-f.called:
	default:
		close(f.called)
	}
	f.mu.Unlock()
}

func (f *fakeOnline) answer(ctx context.Context) error {
	f.mu.Lock()
	delay, hang, err := f.delay, f.hang, f.err
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return fmt.Errorf("%w: %w", ErrPlatformUnreachable, ctx.Err())
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrPlatformUnreachable, ctx.Err())
		}
	}
	return err
}

func (f *fakeOnline) Redeem(ctx context.Context, r OnlineRedemption) (OnlineResult, error) {
	f.record(ctx, func() { f.redeems = append(f.redeems, r) })
	if err := f.answer(ctx); err != nil {
		return OnlineResult{}, err
	}
	return OnlineResult{Discount: f.discount}, nil
}

func (f *fakeOnline) Validate(ctx context.Context, v OnlineValidation) (OnlineResult, error) {
	f.record(ctx, func() { f.validations = append(f.validations, v) })
	if err := f.answer(ctx); err != nil {
		return OnlineResult{}, err
	}
	return OnlineResult{Discount: f.discount}, nil
}

func (f *fakeOnline) Reverse(ctx context.Context, r OnlineReversal) error {
	f.record(ctx, func() { f.reversals = append(f.reversals, r) })
	return f.answer(ctx)
}

func (f *fakeOnline) Reachable() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reachable
}

func (f *fakeOnline) set(edit func(f *fakeOnline)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	edit(f)
}

func (f *fakeOnline) redeemIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, len(f.redeems))
	for i, r := range f.redeems {
		ids[i] = r.RedemptionID
	}
	return ids
}

func (f *fakeOnline) waitCalled(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	if f.called == nil {
		f.called = make(chan struct{})
	}
	ch := f.called
	f.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("the online path was never called")
	}
}

func unreachable(why string) error { return fmt.Errorf("%w: %s", ErrPlatformUnreachable, why) }

func TestOnlineAccepted(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		online := &fakeOnline{discount: usd(1234), reachable: true}
		h := newHarness(t, open, withOption(WithOnline(online)))
		r := h.redeem("C0001", "T-1", 12000)
		h.expectStatus(r, 201, "online redemption")
		if r.str("mode") != "online" || r.body["discount"].(map[string]any)["amount"] != 1234.0 {
			t.Errorf("answer %s, want mode online with the platform's discount", r.raw)
		}
		ids := online.redeemIDs()
		if len(ids) != 1 || ids[0] != r.str("redemption_id") {
			t.Fatalf("platform saw ids %v, POS got %s", ids, r.str("redemption_id"))
		}
		got := online.redeems[0]
		if got.TransactionID != "T-1" || got.Code != "C0001" || got.Bill != usd(12000) || got.StoreID != testStoreID || got.TillID != testTillID {
			t.Errorf("platform was asked %+v", got)
		}
		entries := h.journal()
		if len(entries) != 1 || entries[0].Mode != tillkeep.ModeOnline || entries[0].RedemptionID != ids[0] || entries[0].Discount != usd(1234) {
			t.Fatalf("journal %+v, want one online entry with the platform's discount", entries)
		}
		st := h.do("GET", "/v1/status", nil)
		if st.str("mode") != "online" || st.body["offline_redemptions"] != 0.0 || st.body["pending_uploads"] != 1.0 {
			t.Errorf("status %s", st.raw)
		}
		// A replay is answered from the journal without asking the platform again.
		h.expectStatus(h.redeem("C0001", "T-1", 12000), 201, "replay")
		if n := len(online.redeemIDs()); n != 1 {
			t.Errorf("a replay asked the platform again (%d calls)", n)
		}
		for _, left := range online.deadlines {
			if left < 0 || left > config.DefaultPlatformTimeout {
				t.Errorf("online call had %v left on its context, want at most platform.timeout", left)
			}
		}
	})
}

func TestOnlineRefusalIsFinal(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		online := &fakeOnline{reachable: true, err: tillkeep.Errorf(tillkeep.CodeAlreadyRedeemed, "used at till T02")}
		h := newHarness(t, open, withOption(WithOnline(online)))
		r := h.redeem("C0001", "T-1", 12000)
		if r.status != 422 || r.errorCode() != "already_redeemed" {
			t.Fatalf("platform refusal: %d %s, want 422 already_redeemed", r.status, r.raw)
		}
		if n := len(h.journal()); n != 0 {
			t.Fatalf("a platform refusal recorded %d entries", n)
		}
		v := h.do("POST", "/v1/validate", map[string]any{"code": "C0001", "bill": usd(12000)})
		if v.body["valid"] != false || v.str("reason") != "already_redeemed" || v.str("mode") != "online" {
			t.Errorf("validate: %s", v.raw)
		}
	})
}

func TestOnlineNoDecisionFallsBackWithSameID(t *testing.T) {
	for _, why := range []struct {
		name string
		err  error
	}{
		{"connection refused", unreachable("dial tcp: connection refused")},
		{"server error", errors.New("platform answered 502 Bad Gateway")},
		{"uncoded platform error", tillkeep.Errorf(tillkeep.CodeInternal, "platform failed")},
	} {
		t.Run(why.name, func(t *testing.T) {
			forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
				online := &fakeOnline{err: why.err}
				h := newHarness(t, open, withOption(WithOnline(online)))
				r := h.redeem("C0001", "T-1", 12000)
				h.expectStatus(r, 201, "fallback")
				if r.str("mode") != "offline" {
					t.Errorf("mode %q, want offline", r.str("mode"))
				}
				ids := online.redeemIDs()
				if len(ids) != 1 || ids[0] != r.str("redemption_id") {
					t.Fatalf("the platform was asked with %v, the offline redemption is %s: the ids must match", ids, r.str("redemption_id"))
				}
				if st := h.do("GET", "/v1/status", nil); st.str("mode") != "offline" {
					t.Errorf("status mode %q while the platform is unreachable", st.str("mode"))
				}
			})
		})
	}
}

func TestOnlineTimeoutFallsBack(t *testing.T) {
	online := &fakeOnline{hang: true, reachable: true}
	h := newHarness(t, ledgerKinds[1].open, withOption(WithOnline(online)), withConfig(func(c *config.Agent) {
		c.Platform.Timeout = config.Duration{Duration: 50 * time.Millisecond}
	}))
	r := h.redeem("C0001", "T-1", 12000)
	h.expectStatus(r, 201, "fallback after a timeout")
	if r.str("mode") != "offline" || online.redeemIDs()[0] != r.str("redemption_id") {
		t.Fatalf("answer %s, platform ids %v", r.raw, online.redeemIDs())
	}
	if left := online.deadlines[0]; left < 0 || left > 50*time.Millisecond {
		t.Errorf("online call had %v on its context, want at most the configured 50ms", left)
	}
	v := h.do("POST", "/v1/validate", map[string]any{"code": "C0002", "bill": usd(12000)})
	if v.body["valid"] != true || v.str("mode") != "offline" {
		t.Errorf("validate after a timeout: %s", v.raw)
	}
}

// An attempt whose online call may have landed and which the till then refused keeps
// its redemption id for the POS's retry, so the platform never sees two redemptions of
// one transaction.
func TestRetryReusesInconclusiveID(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		online := &fakeOnline{err: unreachable("timeout")}
		h := newHarness(t, open, withOption(WithOnline(online)))
		h.clock.Set(testNow.Add(100 * time.Hour)) // catalog too old to decide offline
		for range 2 {
			if r := h.redeem("C0001", "T-1", 12000); r.status != 422 || r.errorCode() != "catalog_stale" {
				t.Fatalf("offline with a stale catalog: %d %s", r.status, r.raw)
			}
		}
		ids := online.redeemIDs()
		if len(ids) != 2 || ids[0] != ids[1] {
			t.Fatalf("retries of one transaction sent ids %v, want the same id twice", ids)
		}
		// Another body is another attempt: a new id.
		h.redeem("C0001", "T-1", 13000)
		if ids = online.redeemIDs(); ids[2] == ids[0] {
			t.Fatalf("a different request reused the id %s", ids[0])
		}
		// The platform comes back and accepts the original retry: same id again.
		online.set(func(f *fakeOnline) { f.err, f.discount, f.reachable = nil, usd(1000), true })
		r := h.redeem("C0001", "T-1", 13000)
		h.expectStatus(r, 201, "online after the outage")
		if ids = online.redeemIDs(); r.str("redemption_id") != ids[2] || ids[3] != ids[2] {
			t.Fatalf("ids %v, answer %s", ids, r.raw)
		}
		if n := h.server.Redeemer().attempts.order.Len(); n != 0 {
			t.Errorf("%d attempts still remembered after the transaction was recorded", n)
		}
	})
}

func TestValidateOnlineAndFallback(t *testing.T) {
	online := &fakeOnline{reachable: true, discount: usd(900)}
	h := newHarness(t, ledgerKinds[0].open, withOption(WithOnline(online)))
	v := h.do("POST", "/v1/validate", map[string]any{"code": "C0001", "bill": usd(12000), "customer_id": "cust-1"})
	if v.body["valid"] != true || v.str("mode") != "online" || v.body["discount"].(map[string]any)["amount"] != 900.0 {
		t.Fatalf("online validate: %s", v.raw)
	}
	if got := online.validations[0]; got.Code != "C0001" || got.CustomerID != "cust-1" || got.Bill != usd(12000) {
		t.Errorf("platform was asked %+v", got)
	}
	online.set(func(f *fakeOnline) { f.err = unreachable("reset"); f.reachable = false })
	v = h.do("POST", "/v1/validate", map[string]any{"code": "MIN-1", "bill": usd(100)})
	if v.body["valid"] != false || v.str("reason") != "rule_violation" || v.str("rule") != "min_bill" || v.str("mode") != "offline" {
		t.Fatalf("offline validate: %s", v.raw)
	}
	if n := len(h.journal()); n != 0 {
		t.Fatalf("validation recorded %d entries", n)
	}
}

func TestReverseNotifiesPlatform(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open func(testing.TB) store.Ledger) {
		online := &fakeOnline{reachable: true, discount: usd(1000)}
		h := newHarness(t, open, withOption(WithOnline(online)))
		r := h.redeem("C0001", "T-1", 12000)
		h.expectStatus(r, 201, "redeem")
		id := r.str("redemption_id")
		online.set(func(f *fakeOnline) { f.err = unreachable("down") })
		rev := h.do("POST", "/v1/redemptions/"+id+"/reverse", nil)
		h.expectStatus(rev, 200, "reverse while the platform is down")
		entries := h.journal()
		if len(entries) != 2 || entries[1].Kind != tillkeep.EntryReversal || entries[1].Mode != tillkeep.ModeOnline {
			t.Fatalf("journal %+v", entries)
		}
		if len(online.reversals) != 1 || online.reversals[0].RedemptionID != id || online.reversals[0].EntryID != entries[1].EntryID {
			t.Fatalf("platform was told %+v, want the reversal of %s with entry %s", online.reversals, id, entries[1].EntryID)
		}
		h.expectStatus(h.do("POST", "/v1/redemptions/"+id+"/reverse", nil), 200, "repeat")
		if len(online.reversals) != 1 {
			t.Errorf("a repeated reversal notified the platform again")
		}
	})
}

func TestSetOnlineAtRuntime(t *testing.T) {
	h := newHarness(t, ledgerKinds[0].open)
	red := h.server.Redeemer()
	if red.Mode() != "offline" {
		t.Fatalf("mode %q without an online path", red.Mode())
	}
	online := &fakeOnline{reachable: true, discount: usd(1000)}
	red.SetOnline(online)
	if red.Mode() != "online" {
		t.Fatalf("mode %q with a reachable online path", red.Mode())
	}
	r := h.redeem("C0001", "T-1", 12000)
	if r.str("mode") != "online" {
		t.Fatalf("answer %s", r.raw)
	}
	red.SetOnline(nil)
	if r := h.redeem("C0002", "T-2", 12000); r.str("mode") != "offline" || red.Mode() != "offline" {
		t.Fatalf("after detaching: %s", r.raw)
	}
}

func TestRequestHash(t *testing.T) {
	base := RedeemRequest{Code: "AB", TransactionID: "C", Bill: usd(100), CustomerID: "x"}
	seen := map[string]RedeemRequest{RequestHash(base): base}
	for _, r := range []RedeemRequest{
		{Code: "A", TransactionID: "BC", Bill: usd(100), CustomerID: "x"},
		{Code: "AB", TransactionID: "C", Bill: usd(101), CustomerID: "x"},
		{Code: "AB", TransactionID: "C", Bill: tillkeep.Money{Amount: 100, Currency: "EUR"}, CustomerID: "x"},
		{Code: "AB", TransactionID: "C", Bill: usd(100)},
		{Code: "AB", TransactionID: "Cx", Bill: usd(100)},
		{Code: "AB", TransactionID: "C", Bill: usd(100 << 8), CustomerID: "x"},
	} {
		h := RequestHash(r)
		if prev, dup := seen[h]; dup {
			t.Fatalf("%+v and %+v hash alike", prev, r)
		}
		seen[h] = r
	}
	if first, again := RequestHash(base), RequestHash(base); first != again || len(first) != 64 {
		t.Fatal("the hash is not a stable hex sha256")
	}
	// Stored hashes must stay comparable across releases: pin the encoding.
	const pinned = "c2648f401ec0bbb67c0530a8134d8a51f213c21e51fee754c437f1ba52f643e3"
	if got := RequestHash(RedeemRequest{Code: "C1", TransactionID: "T1", Bill: usd(12000)}); got != pinned {
		t.Errorf("RequestHash changed: %s (pinned %s); a new encoding needs a new version prefix", got, pinned)
	}
}

func TestKeyedMutex(t *testing.T) {
	var k keyedMutex
	unlock, err := k.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	// Another key is not blocked.
	unlockB, err := k.lock(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	unlockB()
	// The same key waits, and gives up with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := k.lock(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock of a held key: %v, want the context's deadline", err)
	}
	got := make(chan struct{})
	go func() {
		u, err := k.lock(context.Background(), "a")
		if err == nil {
			u()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("a held key was acquired twice")
	case <-time.After(20 * time.Millisecond):
	}
	unlock()
	<-got
	if n := k.size(); n != 0 {
		t.Fatalf("%d keys left after every holder left", n)
	}
}

func TestAttemptMemoryIsBounded(t *testing.T) {
	m := newAttemptMemory()
	for i := range maxRememberedAttempts + 10 {
		m.remember(fmt.Sprintf("tx-%d", i), "h", fmt.Sprintf("id-%d", i))
	}
	if m.order.Len() != maxRememberedAttempts || len(m.byTx) != maxRememberedAttempts {
		t.Fatalf("memory holds %d/%d attempts, want %d", m.order.Len(), len(m.byTx), maxRememberedAttempts)
	}
	if _, ok := m.recall("tx-0", "h"); ok {
		t.Error("the oldest attempt was not evicted")
	}
	if id, ok := m.recall(fmt.Sprintf("tx-%d", maxRememberedAttempts+9), "h"); !ok || id != fmt.Sprintf("id-%d", maxRememberedAttempts+9) {
		t.Error("the newest attempt was lost")
	}
	if _, ok := m.recall(fmt.Sprintf("tx-%d", maxRememberedAttempts+9), "other"); ok {
		t.Error("another request body recalled the id")
	}
}

// The platform accepts a coupon the till has not cached yet. Until the ledger can
// journal such an entry, the POS must hear "retry", never a refusal, and the retry
// must carry the same redemption id.
func TestOnlineAcceptedButNotCached(t *testing.T) {
	online := &fakeOnline{reachable: true, discount: usd(500)}
	h := newHarness(t, ledgerKinds[1].open, withOption(WithOnline(online)))
	r := h.redeem("NEW-SINCE-SYNC", "T-1", 12000)
	if r.status == 201 {
		t.Skip("the ledger journals online redemptions of uncached coupons; nothing to work around")
	}
	if r.status != 503 || r.errorCode() != "unavailable" {
		t.Fatalf("answer %d %s, want 503 unavailable", r.status, r.raw)
	}
	h.redeem("NEW-SINCE-SYNC", "T-1", 12000)
	if ids := online.redeemIDs(); len(ids) != 2 || ids[0] != ids[1] {
		t.Fatalf("retry sent ids %v, want the same id twice", ids)
	}
}
