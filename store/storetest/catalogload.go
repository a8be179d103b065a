package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/store"
)

// lockWait bounds how long a test waits for something that must not block: a lock a
// finished load forgot to release would otherwise hang the suite until its timeout.
const lockWait = 10 * time.Second

// within runs fn and fails the test when it does not return in time.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(lockWait):
		t.Fatalf("%s did not return within %v: a catalog load kept its lock", what, lockWait)
	}
}

func begin(t *testing.T, l store.Ledger, snap tillkeep.CatalogSnapshot) store.CatalogLoader {
	t.Helper()
	var (
		load store.CatalogLoader
		err  error
	)
	within(t, "BeginCatalog", func() { load, err = l.BeginCatalog(context.Background(), snap.Store, snap.Offers) })
	if err != nil {
		t.Fatalf("BeginCatalog: %v", err)
	}
	return load
}

func couponsByCode(snap tillkeep.CatalogSnapshot, codes ...string) []tillkeep.Coupon {
	var out []tillkeep.Coupon
	for _, code := range codes {
		for _, c := range snap.Coupons {
			if c.Code == code {
				out = append(out, c)
			}
		}
	}
	return out
}

func testLoadInChunks(t *testing.T, open Open) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		chunks [][]string
	}{
		{"ascending", [][]string{{"M1", "P1"}, {"P2", "S1"}, {"S2", "S3"}}},
		{"interleaved", [][]string{{"S3", "M1"}, {"P2"}, {}, {"S1", "P1", "S2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := open(t)
			snap := Snapshot()
			load := begin(t, l, snap)
			for _, chunk := range tc.chunks {
				if err := load.Add(ctx, couponsByCode(snap, chunk...)); err != nil {
					t.Fatalf("Add %v: %v", chunk, err)
				}
			}
			asOf := Base.Add(time.Hour)
			if err := load.Commit(ctx, 5, asOf, 0); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			load.Abort() // after Commit: nothing happens
			for _, c := range snap.Coupons {
				got := lookup(t, l, c.Code, "")
				if got.Coupon.OfferID != c.OfferID || got.Offer.ID != c.OfferID || got.Coupon.CustomerID != c.CustomerID ||
					!got.Coupon.ExpiresAt.Equal(c.ExpiresAt) || got.Coupon.Status != c.Status {
					t.Fatalf("%s after the load: %+v", c.Code, got.Coupon)
				}
			}
			cs, err := l.CatalogState(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if cs.Seq != 5 || cs.Coupons != 6 || cs.Offers != 3 || !cs.SyncedAt.Equal(asOf) {
				t.Fatalf("catalog state after the load: %+v", cs)
			}
			if got, err := l.Store(ctx); err != nil || got != snap.Store {
				t.Fatalf("store record after the load: %+v, %v", got, err)
			}
			if err := load.Add(ctx, couponsByCode(snap, "S1")); err == nil {
				t.Fatal("Add after Commit was accepted")
			}
			// The lock is free again: a delta applies.
			within(t, "ApplyCatalogChanges after a load", func() {
				if err := l.ApplyCatalogChanges(ctx, 6, asOf, nil, nil, nil, 0); err != nil {
					t.Errorf("delta after a load: %v", err)
				}
			})
		})
	}
}

func testLoadAbortKeepsOldCatalog(t *testing.T, open Open) {
	ctx := context.Background()
	l := OpenWithCatalog(t, open)
	before, err := l.CatalogState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fresh := Snapshot()
	fresh.Offers = fresh.Offers[:1]
	fresh.Coupons = []tillkeep.Coupon{{Code: "NEW1", OfferID: OfferSingle, Status: tillkeep.CouponActive}}
	unchanged := func(what string) {
		t.Helper()
		cs, err := l.CatalogState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cs != before {
			t.Fatalf("%s changed the catalog: %+v, was %+v", what, cs, before)
		}
		lookup(t, l, "M1", "")
		if _, err := l.Lookup(ctx, "NEW1", ""); tillkeep.ErrorCode(err) != tillkeep.CodeUnknownCoupon {
			t.Fatalf("%s: a staged coupon is visible: %v", what, err)
		}
	}

	load := begin(t, l, fresh)
	if err := load.Add(ctx, fresh.Coupons); err != nil {
		t.Fatal(err)
	}
	unchanged("a load in progress")
	load.Abort()
	load.Abort()
	unchanged("an aborted load")
	if err := load.Commit(ctx, 9, Base, 0); err == nil {
		t.Fatal("Commit after Abort was accepted")
	}
	unchanged("Commit after Abort")

	// A failing chunk abandons the load: the old catalog stays, the lock is released.
	bad := []struct {
		name  string
		chunk []tillkeep.Coupon
	}{
		{"duplicate across chunks", []tillkeep.Coupon{{Code: "NEW1", OfferID: OfferSingle, Status: tillkeep.CouponActive}}},
		{"duplicate within a chunk", []tillkeep.Coupon{{Code: "A", OfferID: OfferSingle}, {Code: "A", OfferID: OfferSingle}}},
		{"unknown offer", []tillkeep.Coupon{{Code: "ZZ", OfferID: OfferMulti}}},
		{"empty code", []tillkeep.Coupon{{OfferID: OfferSingle}}},
		{"negative count", []tillkeep.Coupon{{Code: "ZZ", OfferID: OfferSingle, Redemptions: -1}}},
	}
	for _, b := range bad {
		load := begin(t, l, fresh)
		if err := load.Add(ctx, fresh.Coupons); err != nil {
			t.Fatal(err)
		}
		err := load.Add(ctx, b.chunk)
		wantCode(t, err, tillkeep.CodeInvalidRequest)
		if err := load.Commit(ctx, 9, Base, 0); err == nil {
			t.Fatalf("%s: Commit after a failed Add was accepted", b.name)
		}
		load.Abort()
		unchanged(b.name)
	}

	// A cancelled context abandons the load too.
	load = begin(t, l, fresh)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := load.Add(cctx, fresh.Coupons); !errors.Is(err, context.Canceled) {
		t.Fatalf("Add with a cancelled context: %v", err)
	}
	unchanged("a cancelled load")

	// Offers and the store record are checked at the start.
	other := fresh
	other.Store.ID = "S999"
	if _, err := l.BeginCatalog(ctx, other.Store, other.Offers); tillkeep.ErrorCode(err) != tillkeep.CodeInvalidRequest {
		t.Fatalf("BeginCatalog with another store's record: %v", err)
	}
	twice := append(Snapshot().Offers, Snapshot().Offers[0])
	if _, err := l.BeginCatalog(ctx, fresh.Store, twice); tillkeep.ErrorCode(err) != tillkeep.CodeInvalidRequest {
		t.Fatalf("BeginCatalog with an offer twice: %v", err)
	}
	unchanged("refused loads")

	// After all that, a load still goes through.
	load = begin(t, l, fresh)
	if err := load.Add(ctx, fresh.Coupons); err != nil {
		t.Fatal(err)
	}
	if err := load.Commit(ctx, 9, Base, 0); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, l, "NEW1", ""); got.Offer.ID != OfferSingle {
		t.Fatalf("NEW1 after the load: %+v", got)
	}
	if _, err := l.Lookup(ctx, "M1", ""); tillkeep.ErrorCode(err) != tillkeep.CodeUnknownCoupon {
		t.Fatalf("M1 survived a snapshot without it: %v", err)
	}
}

// Redemptions keep committing while a load is staged, and what they used stays local use
// after the switch unless the snapshot reflects it.
func testRedemptionsDuringLoad(t *testing.T, open Open) {
	ctx := context.Background()
	l := OpenWithCatalog(t, open)
	mustRecord(t, l, RecordRequest("tx-1", "M1", "", tillkeep.ModeOffline)) // 1

	snap := Snapshot()
	snap.Coupons[0].Redemptions = 1 // the platform saw entry 1 (M1)
	load := begin(t, l, snap)
	if err := load.Add(ctx, snap.Coupons[:3]); err != nil {
		t.Fatal(err)
	}
	var out tillkeep.Outcome
	within(t, "Record during a load", func() { out = mustRecord(t, l, RecordRequest("tx-2", "S1", "", tillkeep.ModeOffline)) }) // 2
	if out.Seq != 2 {
		t.Fatalf("redemption during a load has seq %d, want 2", out.Seq)
	}
	if got := lookup(t, l, "S1", ""); got.LocalCouponRedemptions != 1 || got.Coupon.Redemptions != 0 {
		t.Fatalf("S1 during the load: %+v", got)
	}
	if err := load.Add(ctx, snap.Coupons[3:]); err != nil {
		t.Fatal(err)
	}
	within(t, "Reverse during a load", func() {
		m1 := mustRecord(t, l, RecordRequest("tx-3", "M1", "", tillkeep.ModeOffline)) // 3
		if _, err := l.Reverse(ctx, tillkeep.ReverseRequest{RedemptionID: m1.RedemptionID, Decide: Reverse(tillkeep.ModeOffline)}); err != nil {
			t.Error(err) // 4
		}
	})
	if err := load.Commit(ctx, 7, Base.Add(time.Hour), 1); err != nil {
		t.Fatal(err)
	}
	// Entry 1 is in the snapshot's count; entry 2 is still local use; 3 was reversed.
	if got := lookup(t, l, "M1", ""); got.Coupon.Redemptions != 1 || got.LocalCouponRedemptions != 0 {
		t.Fatalf("M1 after the load: %+v", got)
	}
	if got := lookup(t, l, "S1", ""); got.LocalCouponRedemptions != 1 || got.LocalOfferRedemptions != 1 {
		t.Fatalf("S1 after the load: %+v", got)
	}
	// Local use is enforced on the new catalog: S1 is single-use.
	_, _, err := l.Record(ctx, RecordRequest("tx-5", "S1", "", tillkeep.ModeOffline))
	wantCode(t, err, tillkeep.CodeAlreadyRedeemed)
	mustRecord(t, l, RecordRequest("tx-6", "S2", "", tillkeep.ModeOffline)) // 5
	if st := status(t, l); st.LastSeq != 5 || st.Coupons != 6 || st.PendingUploads != 5 {
		t.Fatalf("status after the load: %+v", st)
	}
	if cs, _ := l.CatalogState(ctx); cs.Seq != 7 || cs.ReflectsTillSeq != 1 {
		t.Fatalf("catalog state after the load: %+v", cs)
	}
}

// A delta waits for a load in progress instead of slipping in between its chunks.
func testDeltaWaitsForLoad(t *testing.T, open Open) {
	ctx := context.Background()
	l := OpenWithCatalog(t, open)
	snap := Snapshot()
	load := begin(t, l, snap)
	if err := load.Add(ctx, snap.Coupons); err != nil {
		t.Fatal(err)
	}
	applied := make(chan error, 1)
	go func() {
		renamed := snap.Offers[1]
		renamed.Name = "Renamed"
		applied <- l.ApplyCatalogChanges(ctx, 8, Base, []tillkeep.Offer{renamed}, nil, nil, 0)
	}()
	select {
	case err := <-applied:
		t.Fatalf("a delta was applied during a catalog load: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := load.Commit(ctx, 7, Base, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-applied:
		if err != nil {
			t.Fatalf("the delta after the load: %v", err)
		}
	case <-time.After(lockWait):
		t.Fatal("the delta never ran after the load committed")
	}
	if got := lookup(t, l, "M1", ""); got.Offer.Name != "Renamed" {
		t.Fatalf("the delta's change was lost: %+v", got.Offer)
	}
	if cs, _ := l.CatalogState(ctx); cs.Seq != 8 {
		t.Fatalf("catalog seq %d, want the delta's 8", cs.Seq)
	}
}

// AllowUncached records a redemption the platform decided online for a code the cache
// does not hold.
func testRecordUncached(t *testing.T, open Open) {
	ctx := context.Background()
	l := OpenWithCatalog(t, open)
	mustRecord(t, l, RecordRequest("tx-0", "M1", "", tillkeep.ModeOffline)) // 1, offline count 1

	req := RecordRequest("tx-1", "FRESH", CustomerAnna, tillkeep.ModeOnline)
	_, _, err := l.Record(ctx, req)
	wantCode(t, err, tillkeep.CodeUnknownCoupon)

	req.AllowUncached = true
	var seen tillkeep.LocalState
	decide := Redeem(tillkeep.ModeOnline)
	req.Decide = func(st tillkeep.LocalState) (tillkeep.JournalEntry, error) {
		seen = st
		return decide(st)
	}
	out := mustRecord(t, l, req) // 2
	if seen.Coupon.Code != "" || seen.Offer.ID != "" || seen.OfflineRedemptions != 1 || seen.LastHLC.WallMS == 0 {
		t.Fatalf("Decide saw %+v for an uncached coupon", seen)
	}
	if out.Seq != 2 || out.Code != "FRESH" || out.Mode != tillkeep.ModeOnline {
		t.Fatalf("outcome %+v", out)
	}
	e := journal(t, l, 1)[0]
	if e.Code != "FRESH" || e.OfferID != "" || e.CustomerID != CustomerAnna || e.TillID != TillID {
		t.Fatalf("journal entry %+v", e)
	}
	again, replayed, err := l.Record(ctx, req)
	if err != nil || !replayed || !sameOutcome(again, out) {
		t.Fatalf("replay of an uncached redemption: %+v %v %v", again, replayed, err)
	}
	// A cached code with the flag takes the normal path.
	cached := RecordRequest("tx-2", "S1", "", tillkeep.ModeOnline)
	cached.AllowUncached = true
	cached.Decide = func(st tillkeep.LocalState) (tillkeep.JournalEntry, error) {
		seen = st
		return decide(st)
	}
	mustRecord(t, l, cached) // 3
	if seen.Coupon.Code != "S1" || seen.Offer.ID != OfferSingle {
		t.Fatalf("Decide saw %+v for a cached coupon with AllowUncached", seen)
	}

	// Once the coupon arrives in the catalog, the till's own use counts until reflected.
	snap := Snapshot()
	snap.Seq = 2
	snap.Coupons = append(snap.Coupons, tillkeep.Coupon{Code: "FRESH", OfferID: OfferMulti, Status: tillkeep.CouponActive})
	if err := l.ReplaceCatalog(ctx, snap); err != nil {
		t.Fatalf("catalog after an uncached redemption: %v", err)
	}
	if got := lookup(t, l, "FRESH", CustomerAnna); got.LocalCouponRedemptions != 1 {
		t.Fatalf("FRESH after it arrived: %+v", got)
	}
	// It reverses like any other redemption.
	if _, err := l.Reverse(ctx, tillkeep.ReverseRequest{RedemptionID: out.RedemptionID, Decide: Reverse(tillkeep.ModeOnline)}); err != nil {
		t.Fatalf("reverse an uncached redemption: %v", err)
	}
	if got := lookup(t, l, "FRESH", CustomerAnna); got.LocalCouponRedemptions != 0 {
		t.Fatalf("FRESH after its reversal: %+v", got)
	}
	if st := status(t, l); st.LastSeq != 4 {
		t.Fatalf("last seq %d, want 4", st.LastSeq)
	}
}
