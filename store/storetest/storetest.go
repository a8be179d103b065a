package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/store"
)

// Open returns a new, empty ledger of store StoreID and till TillID, and arranges for
// it to be closed when the test ends. Close must be safe to call twice, since some
// tests close the ledger themselves.
type Open func(t *testing.T) store.Ledger

// Run runs the conformance suite against the ledgers open returns.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"RecordAndReplay", testRecordAndReplay},
		{"UnknownCoupon", testUnknownCoupon},
		{"RefusalWritesNothing", testRefusalWritesNothing},
		{"DecidePanicIsAnError", testDecidePanic},
		{"InconsistentEntryRefused", testInconsistentEntry},
		{"RequestValidation", testRequestValidation},
		{"SequenceContiguousUnderConcurrency", testConcurrentSequence},
		{"SameTransactionRacing", testSameTransactionRacing},
		{"CouponLimitUnderConcurrency", testCouponLimitRacing},
		{"Reverse", testReverse},
		{"ReverseIdempotentAndUnknown", testReverseIdempotent},
		{"ReverseRefusalWritesNothing", testReverseRefused},
		{"ReverseRestoresCustomerUse", testReverseCustomerUse},
		{"PendingAndAcknowledge", testPendingAcknowledge},
		{"SetAckedSeqAndPrune", testSetAckedAndPrune},
		{"OfflineCounter", testOfflineCounter},
		{"ReplaceCatalogKeepsUnreflectedUse", testReplaceKeepsLocalUse},
		{"ReplaceCatalogValidation", testReplaceValidation},
		{"ApplyCatalogChanges", testApplyChanges},
		{"StaleDeltaRefused", testStaleDelta},
		{"CatalogLoadInChunks", testLoadInChunks},
		{"CatalogLoadAbortKeepsOldCatalog", testLoadAbortKeepsOldCatalog},
		{"RedemptionsDuringCatalogLoad", testRedemptionsDuringLoad},
		{"DeltaWaitsForCatalogLoad", testDeltaWaitsForLoad},
		{"RecordUncachedCoupon", testRecordUncached},
		{"ReversalOfReflectedRedemption", testReverseReflected},
		{"Cursors", testCursors},
		{"IntentsUntilRecorded", testIntents},
		{"Status", testStatus},
		{"StoreRecord", testStoreRecord},
		{"ClockAndSync", testClockAndSync},
		{"ReturnedValuesAreCopies", testCopies},
		{"CancelledContext", testCancelled},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// OpenWithCatalog opens a ledger and loads Snapshot into it.
func OpenWithCatalog(t *testing.T, open Open) store.Ledger {
	t.Helper()
	l := open(t)
	if err := l.ReplaceCatalog(context.Background(), Snapshot()); err != nil {
		t.Fatalf("ReplaceCatalog: %v", err)
	}
	return l
}

func mustRecord(t *testing.T, l store.Ledger, req tillkeep.RecordRequest) tillkeep.Outcome {
	t.Helper()
	out, replayed, err := l.Record(context.Background(), req)
	if err != nil {
		t.Fatalf("Record %s: %v", req.TransactionID, err)
	}
	if replayed {
		t.Fatalf("Record %s: replayed on first call", req.TransactionID)
	}
	return out
}

func wantCode(t *testing.T, err error, code tillkeep.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	if got := tillkeep.ErrorCode(err); got != code {
		t.Fatalf("got error %v (code %s), want code %s", err, got, code)
	}
}

func status(t *testing.T, l store.Ledger) tillkeep.LedgerStatus {
	t.Helper()
	st, err := l.Status(context.Background())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

func lookup(t *testing.T, l store.Ledger, code, customer string) tillkeep.LocalState {
	t.Helper()
	st, err := l.Lookup(context.Background(), code, customer)
	if err != nil {
		t.Fatalf("Lookup %s: %v", code, err)
	}
	return st
}

func journal(t *testing.T, l store.Ledger, after uint64) []tillkeep.JournalEntry {
	t.Helper()
	es, err := l.Journal(context.Background(), after, 0)
	if err != nil {
		t.Fatalf("Journal: %v", err)
	}
	return es
}

func pending(t *testing.T, l store.Ledger, after uint64, limit int) []tillkeep.JournalEntry {
	t.Helper()
	es, err := l.Pending(context.Background(), after, limit)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return es
}

func seqs(es []tillkeep.JournalEntry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func equalSeqs(a []uint64, b ...uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameOutcome(a, b tillkeep.Outcome) bool {
	return a.TransactionID == b.TransactionID && a.RequestHash == b.RequestHash &&
		a.RedemptionID == b.RedemptionID && a.Code == b.Code && a.Mode == b.Mode &&
		a.Discount == b.Discount && a.Status == b.Status && a.Seq == b.Seq && a.At.Equal(b.At)
}

func testRecordAndReplay(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	req := RecordRequest("tx-1", "S1", "", tillkeep.ModeOffline)
	out := mustRecord(t, l, req)
	if out.Seq != 1 || out.Status != tillkeep.RedemptionAccepted || out.RedemptionID == "" ||
		out.Code != "S1" || out.Mode != tillkeep.ModeOffline || out.TransactionID != "tx-1" ||
		out.RequestHash != req.RequestHash || out.Discount != tillkeep.NewMoney(500, "EUR") || out.At.IsZero() {
		t.Fatalf("outcome %+v", out)
	}

	es := pending(t, l, 0, 10)
	if len(es) != 1 {
		t.Fatalf("pending has %d entries, want 1", len(es))
	}
	e := es[0]
	if e.Seq != 1 || e.Kind != tillkeep.EntryRedemption || e.EntryID != out.RedemptionID ||
		e.RedemptionID != out.RedemptionID || e.StoreID != StoreID || e.TillID != TillID ||
		e.TransactionID != "tx-1" || e.Code != "S1" || e.OfferID != OfferSingle ||
		e.Mode != tillkeep.ModeOffline || !e.WallTime.Equal(out.At) || e.HLC.WallMS == 0 {
		t.Fatalf("journal entry %+v", e)
	}

	// A retry with the same body replays without calling Decide.
	retry := req
	retry.Decide = func(tillkeep.LocalState) (tillkeep.JournalEntry, error) {
		t.Error("Decide called on a replay")
		return tillkeep.JournalEntry{}, errors.New("unexpected")
	}
	again, replayed, err := l.Record(ctx, retry)
	if err != nil || !replayed || !sameOutcome(again, out) {
		t.Fatalf("replay: %+v replayed=%v err=%v, want %+v", again, replayed, err, out)
	}
	stored, ok, err := l.OutcomeByTransaction(ctx, "tx-1")
	if err != nil || !ok || !sameOutcome(stored, out) {
		t.Fatalf("OutcomeByTransaction: %+v %v %v", stored, ok, err)
	}
	if _, ok, err := l.OutcomeByTransaction(ctx, "tx-none"); err != nil || ok {
		t.Fatalf("OutcomeByTransaction(unknown) = %v, %v", ok, err)
	}

	// The same transaction id with another body is a reuse of the key.
	other := RecordRequest("tx-1", "S2", "", tillkeep.ModeOffline)
	_, _, err = l.Record(ctx, other)
	wantCode(t, err, tillkeep.CodeIdempotencyReuse)
	if st := status(t, l); st.LastSeq != 1 {
		t.Fatalf("last seq %d after replays, want 1", st.LastSeq)
	}
	if lookup(t, l, "S2", "").LocalCouponRedemptions != 0 {
		t.Fatal("the refused reuse counted as local use")
	}

	// The single-use coupon is used up locally.
	_, _, err = l.Record(ctx, RecordRequest("tx-2", "S1", "", tillkeep.ModeOffline))
	wantCode(t, err, tillkeep.CodeAlreadyRedeemed)
}

func testUnknownCoupon(t *testing.T, open Open) {
	ctx := context.Background()
	for _, withCatalog := range []bool{false, true} {
		l := open(t)
		if withCatalog {
			if err := l.ReplaceCatalog(ctx, Snapshot()); err != nil {
				t.Fatal(err)
			}
		}
		req := RecordRequest("tx-u", "NOPE", "", tillkeep.ModeOffline)
		req.Decide = func(tillkeep.LocalState) (tillkeep.JournalEntry, error) {
			t.Error("Decide called for an unknown coupon")
			return tillkeep.JournalEntry{}, errors.New("unexpected")
		}
		_, _, err := l.Record(ctx, req)
		wantCode(t, err, tillkeep.CodeUnknownCoupon)
		_, err = l.Lookup(ctx, "NOPE", "")
		wantCode(t, err, tillkeep.CodeUnknownCoupon)
		if st := status(t, l); st.LastSeq != 0 {
			t.Fatalf("last seq %d, want 0", st.LastSeq)
		}
		if _, ok, _ := l.OutcomeByTransaction(ctx, "tx-u"); ok {
			t.Fatal("an unknown coupon stored an outcome")
		}
	}
}

func testRefusalWritesNothing(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	req := RecordRequest("tx-r", "M1", "", tillkeep.ModeOffline)
	req.Decide = func(tillkeep.LocalState) (tillkeep.JournalEntry, error) {
		return tillkeep.JournalEntry{}, tillkeep.RuleError("min_bill", "bill below 10.00")
	}
	_, _, err := l.Record(ctx, req)
	wantCode(t, err, tillkeep.CodeRuleViolation)
	if tillkeep.ErrorRule(err) != "min_bill" {
		t.Fatalf("the refusal lost its rule: %v", err)
	}
	st := status(t, l)
	if st.LastSeq != 0 || st.PendingUploads != 0 || st.OfflineRedemptions != 0 {
		t.Fatalf("status after a refusal: %+v", st)
	}
	if _, ok, _ := l.OutcomeByTransaction(ctx, "tx-r"); ok {
		t.Fatal("a refusal was stored in the idempotency index")
	}
	if ls := lookup(t, l, "M1", ""); ls.LocalCouponRedemptions != 0 || ls.LocalOfferRedemptions != 0 {
		t.Fatalf("a refusal counted as local use: %+v", ls)
	}
	// The same transaction may succeed later (say, with a bigger bill).
	if out := mustRecord(t, l, RecordRequest("tx-r", "M1", "", tillkeep.ModeOffline)); out.Seq != 1 {
		t.Fatalf("seq %d after a refusal, want 1", out.Seq)
	}
}

func testDecidePanic(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	req := RecordRequest("tx-p", "M1", "", tillkeep.ModeOffline)
	req.Decide = func(tillkeep.LocalState) (tillkeep.JournalEntry, error) { panic("boom") }
	_, _, err := l.Record(context.Background(), req)
	wantCode(t, err, tillkeep.CodeInternal)
	if st := status(t, l); st.LastSeq != 0 {
		t.Fatalf("last seq %d after a panic, want 0", st.LastSeq)
	}
	mustRecord(t, l, RecordRequest("tx-ok", "M1", "", tillkeep.ModeOffline))
}

func testInconsistentEntry(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	breakers := map[string]func(*tillkeep.JournalEntry){
		"no redemption id": func(e *tillkeep.JournalEntry) { e.RedemptionID = "" },
		"wrong kind":       func(e *tillkeep.JournalEntry) { e.Kind = tillkeep.EntryReversal },
		"wrong code":       func(e *tillkeep.JournalEntry) { e.Code = "S2" },
		"wrong offer":      func(e *tillkeep.JournalEntry) { e.OfferID = OfferSingle },
		"wrong till":       func(e *tillkeep.JournalEntry) { e.TillID = "T99" },
		"wrong store":      func(e *tillkeep.JournalEntry) { e.StoreID = "S999" },
		"no mode":          func(e *tillkeep.JournalEntry) { e.Mode = "" },
		"no wall time":     func(e *tillkeep.JournalEntry) { e.WallTime = time.Time{} },
		"other entry id":   func(e *tillkeep.JournalEntry) { e.EntryID = "x" },
		"other tx":         func(e *tillkeep.JournalEntry) { e.TransactionID = "tx-other" },
	}
	for name, breakEntry := range breakers {
		req := RecordRequest("tx-"+name, "M1", "", tillkeep.ModeOffline)
		decide := req.Decide
		req.Decide = func(st tillkeep.LocalState) (tillkeep.JournalEntry, error) {
			e, err := decide(st)
			breakEntry(&e)
			return e, err
		}
		_, _, err := l.Record(ctx, req)
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		wantCode(t, err, tillkeep.CodeInternal)
	}
	if st := status(t, l); st.LastSeq != 0 {
		t.Fatalf("last seq %d, want 0", st.LastSeq)
	}

	// A redemption id can be used once only.
	first := mustRecord(t, l, RecordRequest("tx-a", "M1", "", tillkeep.ModeOffline))
	req := RecordRequest("tx-b", "M1", "", tillkeep.ModeOffline)
	decide := req.Decide
	req.Decide = func(st tillkeep.LocalState) (tillkeep.JournalEntry, error) {
		e, err := decide(st)
		e.RedemptionID = first.RedemptionID
		return e, err
	}
	_, _, err := l.Record(ctx, req)
	wantCode(t, err, tillkeep.CodeConflict)
	if st := status(t, l); st.LastSeq != 1 {
		t.Fatalf("last seq %d, want 1", st.LastSeq)
	}
}

func testRequestValidation(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	noTx := RecordRequest("", "M1", "", tillkeep.ModeOffline)
	_, _, err := l.Record(ctx, noTx)
	wantCode(t, err, tillkeep.CodeInvalidRequest)
	noCode := RecordRequest("tx", "", "", tillkeep.ModeOffline)
	_, _, err = l.Record(ctx, noCode)
	wantCode(t, err, tillkeep.CodeInvalidRequest)
	_, err = l.Reverse(ctx, tillkeep.ReverseRequest{Decide: Reverse(tillkeep.ModeOffline)})
	wantCode(t, err, tillkeep.CodeInvalidRequest)
}

const lanes = 16

func testConcurrentSequence(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	const perLane = 12
	var wg sync.WaitGroup
	outs := make([][]tillkeep.Outcome, lanes)
	errs := make(chan error, lanes*perLane)
	for lane := range lanes {
		wg.Go(func() {
			for i := range perLane {
				mode := tillkeep.ModeOffline
				if i%3 == 0 {
					mode = tillkeep.ModeOnline
				}
				out, _, err := l.Record(ctx, RecordRequest(fmt.Sprintf("lane%d-%d", lane, i), "M1", "", mode))
				if err != nil {
					errs <- err
					return
				}
				outs[lane] = append(outs[lane], out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Record: %v", err)
	}
	const total = lanes * perLane
	bySeq := map[uint64]tillkeep.Outcome{}
	for _, lane := range outs {
		last := uint64(0)
		for _, o := range lane {
			if o.Seq <= last {
				t.Fatalf("one lane saw seq %d after %d", o.Seq, last)
			}
			last = o.Seq
			if _, dup := bySeq[o.Seq]; dup {
				t.Fatalf("seq %d handed out twice", o.Seq)
			}
			bySeq[o.Seq] = o
		}
	}
	es := pending(t, l, 0, total+10)
	if len(es) != total {
		t.Fatalf("journal has %d entries, want %d", len(es), total)
	}
	for i, e := range es {
		if e.Seq != uint64(i+1) {
			t.Fatalf("journal entry %d has seq %d: not contiguous", i, e.Seq)
		}
		if o := bySeq[e.Seq]; o.RedemptionID != e.RedemptionID || o.TransactionID != e.TransactionID {
			t.Fatalf("entry %d does not match the outcome given for it: %+v vs %+v", e.Seq, e, o)
		}
	}
	st := status(t, l)
	if st.LastSeq != total || st.PendingUploads != total || st.OfflineRedemptions != lanes*(perLane-perLane/3) {
		t.Fatalf("status %+v", st)
	}
	if ls := lookup(t, l, "M1", ""); ls.LocalCouponRedemptions != total || ls.LocalOfferRedemptions != total {
		t.Fatalf("local use %+v, want %d", ls, total)
	}
}

func testSameTransactionRacing(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outs     []tillkeep.Outcome
		replayed int
	)
	start := make(chan struct{})
	for range lanes {
		wg.Go(func() {
			<-start
			out, rep, err := l.Record(ctx, RecordRequest("tx-same", "M1", "", tillkeep.ModeOffline))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("Record: %v", err)
				return
			}
			outs = append(outs, out)
			if rep {
				replayed++
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, o := range outs[1:] {
		if !sameOutcome(o, outs[0]) {
			t.Fatalf("racing retries got different outcomes: %+v vs %+v", o, outs[0])
		}
	}
	if replayed != lanes-1 {
		t.Fatalf("%d of %d calls replayed, want %d", replayed, lanes, lanes-1)
	}
	if es := journal(t, l, 0); len(es) != 1 {
		t.Fatalf("journal has %d entries for one transaction", len(es))
	}
	if ls := lookup(t, l, "M1", ""); ls.LocalCouponRedemptions != 1 {
		t.Fatalf("local use %d, want 1", ls.LocalCouponRedemptions)
	}
}

// Lanes racing for the last use of a coupon: the check and the consumption must be one
// atomic step, so exactly one wins.
func testCouponLimitRacing(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
		refused  int
	)
	start := make(chan struct{})
	for i := range lanes {
		wg.Go(func() {
			<-start
			_, _, err := l.Record(ctx, RecordRequest(fmt.Sprintf("tx-%d", i), "S3", "", tillkeep.ModeOffline))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted++
			case tillkeep.ErrorCode(err) == tillkeep.CodeAlreadyRedeemed:
				refused++
			default:
				t.Errorf("Record: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if accepted != 1 || refused != lanes-1 {
		t.Fatalf("accepted %d, refused %d; want 1 and %d", accepted, refused, lanes-1)
	}
	if st := status(t, l); st.LastSeq != 1 {
		t.Fatalf("last seq %d, want 1", st.LastSeq)
	}
}

func testReverse(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	out := mustRecord(t, l, RecordRequest("tx-1", "P1", CustomerAnna, tillkeep.ModeOffline))
	mustRecord(t, l, RecordRequest("tx-2", "M1", "", tillkeep.ModeOffline))
	before := lookup(t, l, "P1", CustomerAnna)
	if before.LocalCouponRedemptions != 1 || before.LocalCustomerRedemptions != 1 || before.LocalOfferRedemptions != 1 {
		t.Fatalf("local use before reversal: %+v", before)
	}

	var seenOriginal tillkeep.JournalEntry
	var seenHLC tillkeep.HLC
	rev, err := l.Reverse(ctx, tillkeep.ReverseRequest{
		RedemptionID: out.RedemptionID,
		Decide: func(orig tillkeep.JournalEntry, last tillkeep.HLC) (tillkeep.JournalEntry, error) {
			seenOriginal, seenHLC = orig, last
			return Reverse(tillkeep.ModeOffline)(orig, last)
		},
	})
	if err != nil {
		t.Fatalf("Reverse: %v", err)
	}
	if seenOriginal.RedemptionID != out.RedemptionID || seenOriginal.Seq != out.Seq {
		t.Fatalf("Decide saw original %+v", seenOriginal)
	}
	es := journal(t, l, 0)
	if seenHLC != es[1].HLC {
		t.Fatalf("Decide saw clock %+v, want the latest stamp %+v", seenHLC, es[1].HLC)
	}
	if rev.Status != tillkeep.RedemptionReversed || rev.RedemptionID != out.RedemptionID ||
		rev.TransactionID != "tx-1" || rev.Seq != out.Seq || rev.RequestHash != out.RequestHash {
		t.Fatalf("reverse outcome %+v", rev)
	}
	if len(es) != 3 {
		t.Fatalf("journal has %d entries, want 3", len(es))
	}
	r := es[2]
	if r.Seq != 3 || r.Kind != tillkeep.EntryReversal || r.RedemptionID != out.RedemptionID ||
		r.EntryID == "" || r.EntryID == out.RedemptionID || r.Code != "P1" || r.OfferID != OfferPerson ||
		r.CustomerID != CustomerAnna || r.TransactionID != "tx-1" || r.StoreID != StoreID || r.TillID != TillID ||
		!es[1].HLC.Less(r.HLC) {
		t.Fatalf("reversal entry %+v", r)
	}
	stored, ok, err := l.OutcomeByTransaction(ctx, "tx-1")
	if err != nil || !ok || stored.Status != tillkeep.RedemptionReversed {
		t.Fatalf("stored outcome after reversal: %+v %v %v", stored, ok, err)
	}
	// A POS retry of the original transaction now hears that it was reversed.
	replay, replayed, err := l.Record(ctx, RecordRequest("tx-1", "P1", CustomerAnna, tillkeep.ModeOffline))
	if err != nil || !replayed || replay.Status != tillkeep.RedemptionReversed {
		t.Fatalf("replay after reversal: %+v %v %v", replay, replayed, err)
	}
	after := lookup(t, l, "P1", CustomerAnna)
	if after.LocalCouponRedemptions != 0 || after.LocalCustomerRedemptions != 0 || after.LocalOfferRedemptions != 0 || !after.LocalCustomerLast.IsZero() {
		t.Fatalf("local use after reversal: %+v", after)
	}
	if m := lookup(t, l, "M1", ""); m.LocalCouponRedemptions != 1 {
		t.Fatalf("reversal touched another coupon: %+v", m)
	}
	if st := status(t, l); st.OfflineRedemptions != 2 || st.LastSeq != 3 || st.PendingUploads != 3 {
		t.Fatalf("status after reversal: %+v", st)
	}
	// The coupon can be redeemed again.
	mustRecord(t, l, RecordRequest("tx-3", "P1", CustomerAnna, tillkeep.ModeOffline))
}

func testReverseIdempotent(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	out := mustRecord(t, l, RecordRequest("tx-1", "S1", "", tillkeep.ModeOffline))
	first, err := l.Reverse(ctx, tillkeep.ReverseRequest{RedemptionID: out.RedemptionID, Decide: Reverse(tillkeep.ModeOffline)})
	if err != nil {
		t.Fatal(err)
	}
	second, err := l.Reverse(ctx, tillkeep.ReverseRequest{
		RedemptionID: out.RedemptionID,
		Decide: func(tillkeep.JournalEntry, tillkeep.HLC) (tillkeep.JournalEntry, error) {
			t.Error("Decide called for an already reversed redemption")
			return tillkeep.JournalEntry{}, errors.New("unexpected")
		},
	})
	if err != nil || !sameOutcome(first, second) {
		t.Fatalf("second reverse: %+v %v, want %+v", second, err, first)
	}
	if es := journal(t, l, 0); len(es) != 2 {
		t.Fatalf("journal has %d entries, want 2", len(es))
	}
	_, err = l.Reverse(ctx, tillkeep.ReverseRequest{RedemptionID: "nope", Decide: Reverse(tillkeep.ModeOffline)})
	wantCode(t, err, tillkeep.CodeNotFound)
	// A reversal entry's own id is not a redemption.
	es := journal(t, l, 0)
	_, err = l.Reverse(ctx, tillkeep.ReverseRequest{RedemptionID: es[1].EntryID, Decide: Reverse(tillkeep.ModeOffline)})
	wantCode(t, err, tillkeep.CodeNotFound)

	// Racing reversals append one entry.
	out2 := mustRecord(t, l, RecordRequest("tx-2", "S2", "", tillkeep.ModeOffline))
	var wg sync.WaitGroup
	for range lanes {
		wg.Go(func() {
			if _, err := l.Reverse(ctx, tillkeep.ReverseRequest{RedemptionID: out2.RedemptionID, Decide: Reverse(tillkeep.ModeOffline)}); err != nil {
				t.Errorf("Reverse: %v", err)
			}
		})
	}
	wg.Wait()
	if es := journal(t, l, 0); len(es) != 4 {
		t.Fatalf("journal has %d entries after racing reversals, want 4", len(es))
	}
}

func testReverseRefused(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	out := mustRecord(t, l, RecordRequest("tx-1", "S1", "", tillkeep.ModeOffline))
	_, err := l.Reverse(ctx, tillkeep.ReverseRequest{
		RedemptionID: out.RedemptionID,
		Decide: func(tillkeep.JournalEntry, tillkeep.HLC) (tillkeep.JournalEntry, error) {
			return tillkeep.JournalEntry{}, tillkeep.Errorf(tillkeep.CodeNotReversible, "too late")
		},
	})
	wantCode(t, err, tillkeep.CodeNotReversible)
	_, err = l.Reverse(ctx, tillkeep.ReverseRequest{
		RedemptionID: out.RedemptionID,
		Decide: func(o tillkeep.JournalEntry, h tillkeep.HLC) (tillkeep.JournalEntry, error) {
			e, err := Reverse(tillkeep.ModeOffline)(o, h)
			e.RedemptionID = "another"
			return e, err
		},
	})
	wantCode(t, err, tillkeep.CodeInternal)
	_, err = l.Reverse(ctx, tillkeep.ReverseRequest{
		RedemptionID: out.RedemptionID,
		Decide:       func(tillkeep.JournalEntry, tillkeep.HLC) (tillkeep.JournalEntry, error) { panic("boom") },
	})
	wantCode(t, err, tillkeep.CodeInternal)
	if es := journal(t, l, 0); len(es) != 1 {
		t.Fatalf("journal has %d entries after refused reversals, want 1", len(es))
	}
	if stored, _, _ := l.OutcomeByTransaction(ctx, "tx-1"); stored.Status != tillkeep.RedemptionAccepted {
		t.Fatalf("a refused reversal changed the outcome: %+v", stored)
	}
	if ls := lookup(t, l, "S1", ""); ls.LocalCouponRedemptions != 1 {
		t.Fatalf("a refused reversal undid local use: %+v", ls)
	}
}

func testReverseCustomerUse(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	first := mustRecord(t, l, RecordRequest("tx-1", "P1", CustomerAnna, tillkeep.ModeOffline))
	second := mustRecord(t, l, RecordRequest("tx-2", "P2", CustomerAnna, tillkeep.ModeOffline))
	ls := lookup(t, l, "P2", CustomerAnna)
	if ls.LocalCustomerRedemptions != 2 || !ls.LocalCustomerLast.Equal(second.At) {
		t.Fatalf("customer use %+v, want 2, last %v", ls, second.At)
	}
	if _, err := l.Reverse(ctx, tillkeep.ReverseRequest{RedemptionID: second.RedemptionID, Decide: Reverse(tillkeep.ModeOffline)}); err != nil {
		t.Fatal(err)
	}
	ls = lookup(t, l, "P2", CustomerAnna)
	if ls.LocalCustomerRedemptions != 1 || !ls.LocalCustomerLast.Equal(first.At) {
		t.Fatalf("customer use after reversing the latest: %+v, want 1, last %v", ls, first.At)
	}
	if other := lookup(t, l, "P2", "someone-else"); other.LocalCustomerRedemptions != 0 {
		t.Fatalf("another customer inherited use: %+v", other)
	}
}

func testPendingAcknowledge(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	for i := range 5 {
		mustRecord(t, l, RecordRequest(fmt.Sprintf("tx-%d", i), "M1", "", tillkeep.ModeOffline))
	}
	if got := seqs(pending(t, l, 0, 2)); !equalSeqs(got, 1, 2) {
		t.Fatalf("Pending(0, 2) = %v", got)
	}
	if got := seqs(pending(t, l, 2, 10)); !equalSeqs(got, 3, 4, 5) {
		t.Fatalf("Pending(2, 10) = %v", got)
	}
	if got := pending(t, l, 5, 10); len(got) != 0 {
		t.Fatalf("Pending(5) = %v", seqs(got))
	}
	if got := seqs(pending(t, l, 0, 0)); len(got) != 5 {
		t.Fatalf("Pending with the default limit = %v", got)
	}
	if err := l.Acknowledge(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if acked, err := l.AckedSeq(ctx); err != nil || acked != 3 {
		t.Fatalf("AckedSeq = %d, %v", acked, err)
	}
	if st := status(t, l); st.PendingUploads != 2 || st.AckedSeq != 3 {
		t.Fatalf("status %+v", st)
	}
	if err := l.Acknowledge(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if acked, _ := l.AckedSeq(ctx); acked != 3 {
		t.Fatalf("Acknowledge lowered the acked seq to %d", acked)
	}
	wantCode(t, l.Acknowledge(ctx, 6), tillkeep.CodeConflict)
	// Acknowledged entries stay in the journal until pruned.
	if got := journal(t, l, 0); len(got) != 5 {
		t.Fatalf("journal has %d entries, want 5", len(got))
	}
}

func testSetAckedAndPrune(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	for i := range 5 {
		mustRecord(t, l, RecordRequest(fmt.Sprintf("tx-%d", i), "M1", "", tillkeep.ModeOffline))
	}
	if err := l.Acknowledge(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if err := l.SetAckedSeq(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if st := status(t, l); st.AckedSeq != 1 || st.PendingUploads != 4 {
		t.Fatalf("status after SetAckedSeq(1): %+v", st)
	}
	wantCode(t, l.SetAckedSeq(ctx, 6), tillkeep.CodeConflict)
	if err := l.SetAckedSeq(ctx, 4); err != nil {
		t.Fatal(err)
	}

	// Pruning stops at the acked seq and at what the catalog reflects.
	_, err := l.PruneJournal(ctx, 5)
	wantCode(t, err, tillkeep.CodeConflict)
	_, err = l.PruneJournal(ctx, 2)
	wantCode(t, err, tillkeep.CodeConflict) // the catalog reflects nothing yet
	snap := Snapshot()
	snap.Seq, snap.ReflectsTillSeq = 2, 3
	if err := l.ReplaceCatalog(ctx, snap); err != nil {
		t.Fatal(err)
	}
	n, err := l.PruneJournal(ctx, 2)
	if err != nil || n != 2 {
		t.Fatalf("PruneJournal(2) = %d, %v", n, err)
	}
	if got := seqs(journal(t, l, 0)); !equalSeqs(got, 3, 4, 5) {
		t.Fatalf("journal after pruning: %v", got)
	}
	if n, err := l.PruneJournal(ctx, 2); err != nil || n != 0 {
		t.Fatalf("pruning again = %d, %v", n, err)
	}
	wantCode(t, l.SetAckedSeq(ctx, 1), tillkeep.CodeConflict)
	if err := l.SetAckedSeq(ctx, 2); err != nil {
		t.Fatalf("SetAckedSeq to the pruned point: %v", err)
	}
	if st := status(t, l); st.LastSeq != 5 || st.PendingUploads != 3 {
		t.Fatalf("status after pruning: %+v", st)
	}
	// Idempotency outlives the journal.
	out, replayed, err := l.Record(ctx, RecordRequest("tx-0", "M1", "", tillkeep.ModeOffline))
	if err != nil || !replayed || out.Seq != 1 {
		t.Fatalf("replay of a pruned transaction: %+v %v %v", out, replayed, err)
	}
	_, err = l.Reverse(ctx, tillkeep.ReverseRequest{RedemptionID: out.RedemptionID, Decide: Reverse(tillkeep.ModeOffline)})
	wantCode(t, err, tillkeep.CodeNotReversible)
	// New entries continue the sequence.
	if out := mustRecord(t, l, RecordRequest("tx-new", "M1", "", tillkeep.ModeOffline)); out.Seq != 6 {
		t.Fatalf("seq after pruning %d, want 6", out.Seq)
	}
}

func testOfflineCounter(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	mustRecord(t, l, RecordRequest("tx-1", "M1", "", tillkeep.ModeOffline))
	mustRecord(t, l, RecordRequest("tx-2", "M1", "", tillkeep.ModeOnline))
	mustRecord(t, l, RecordRequest("tx-3", "M1", "", tillkeep.ModeOffline))
	if ls := lookup(t, l, "M1", ""); ls.OfflineRedemptions != 2 {
		t.Fatalf("offline redemptions %d, want 2", ls.OfflineRedemptions)
	}
	var seen int
	req := RecordRequest("tx-4", "M1", "", tillkeep.ModeOffline)
	decide := req.Decide
	req.Decide = func(st tillkeep.LocalState) (tillkeep.JournalEntry, error) {
		seen = st.OfflineRedemptions
		return decide(st)
	}
	mustRecord(t, l, req)
	if seen != 2 {
		t.Fatalf("Decide saw %d offline redemptions, want 2", seen)
	}
	if err := l.Acknowledge(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if st := status(t, l); st.OfflineRedemptions != 0 {
		t.Fatalf("offline counter %d after Acknowledge, want 0", st.OfflineRedemptions)
	}
	mustRecord(t, l, RecordRequest("tx-5", "M1", "", tillkeep.ModeOffline))
	if st := status(t, l); st.OfflineRedemptions != 1 {
		t.Fatalf("offline counter %d, want 1", st.OfflineRedemptions)
	}
}

func testReplaceKeepsLocalUse(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	mustRecord(t, l, RecordRequest("tx-1", "S1", "", tillkeep.ModeOffline))          // 1
	mustRecord(t, l, RecordRequest("tx-2", "P1", CustomerAnna, tillkeep.ModeOnline)) // 2
	p2 := mustRecord(t, l, RecordRequest("tx-3", "P2", CustomerAnna, tillkeep.ModeOffline))
	m1 := mustRecord(t, l, RecordRequest("tx-4", "M1", "", tillkeep.ModeOffline)) // 4
	if _, err := l.Reverse(ctx, tillkeep.ReverseRequest{RedemptionID: m1.RedemptionID, Decide: Reverse(tillkeep.ModeOffline)}); err != nil {
		t.Fatal(err) // 5
	}
	mustRecord(t, l, RecordRequest("tx-6", "M1", "", tillkeep.ModeOffline)) // 6

	// The platform has seen entries 1 and 2: S1 and P1 come with their counts.
	snap := Snapshot()
	snap.Seq, snap.ReflectsTillSeq, snap.AsOf = 7, 2, Base.Add(time.Hour)
	for i := range snap.Coupons {
		switch snap.Coupons[i].Code {
		case "S1":
			snap.Coupons[i].Redemptions, snap.Coupons[i].Status = 1, tillkeep.CouponRedeemed
		case "P1":
			snap.Coupons[i].Redemptions = 1
		}
	}
	if err := l.ReplaceCatalog(ctx, snap); err != nil {
		t.Fatal(err)
	}
	s1 := lookup(t, l, "S1", "")
	if s1.LocalCouponRedemptions != 0 || s1.Coupon.Redemptions != 1 || s1.Coupon.Status != tillkeep.CouponRedeemed {
		t.Fatalf("S1 after a snapshot reflecting it: %+v", s1)
	}
	p1 := lookup(t, l, "P1", CustomerAnna)
	if p1.LocalCouponRedemptions != 0 || p1.Coupon.Redemptions != 1 {
		t.Fatalf("P1 after a snapshot reflecting it: %+v", p1)
	}
	// P2 (entry 3) is not reflected yet: still local use, for the coupon, the customer
	// and the offer.
	if p1.LocalCustomerRedemptions != 1 || !p1.LocalCustomerLast.Equal(p2.At) || p1.LocalOfferRedemptions != 1 {
		t.Fatalf("customer/offer use after the snapshot: %+v", p1)
	}
	if got := lookup(t, l, "P2", CustomerAnna); got.LocalCouponRedemptions != 1 {
		t.Fatalf("P2 lost its local use: %+v", got)
	}
	// M1: entry 4 was reversed, entry 6 counts.
	if got := lookup(t, l, "M1", ""); got.LocalCouponRedemptions != 1 || got.LocalOfferRedemptions != 1 {
		t.Fatalf("M1 local use %+v, want 1", got)
	}
	cs, err := l.CatalogState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Seq != 7 || cs.ReflectsTillSeq != 2 || !cs.SyncedAt.Equal(snap.AsOf) || cs.Coupons != 6 || cs.Offers != 3 {
		t.Fatalf("catalog state %+v", cs)
	}
	// A snapshot reflecting everything leaves no local use.
	snap.Seq, snap.ReflectsTillSeq = 8, 6
	if err := l.ReplaceCatalog(ctx, snap); err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"S1", "P1", "P2", "M1"} {
		if got := lookup(t, l, code, CustomerAnna); got.LocalCouponRedemptions != 0 || got.LocalCustomerRedemptions != 0 || got.LocalOfferRedemptions != 0 {
			t.Fatalf("%s still has local use after a snapshot reflecting all: %+v", code, got)
		}
	}
	// A snapshot claiming more than the till wrote is clamped to its journal.
	snap.Seq, snap.ReflectsTillSeq = 9, 100
	if err := l.ReplaceCatalog(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if cs, _ := l.CatalogState(ctx); cs.ReflectsTillSeq != 6 {
		t.Fatalf("reflects_till_seq %d beyond the journal, want 6", cs.ReflectsTillSeq)
	}
	mustRecord(t, l, RecordRequest("tx-7", "M1", "", tillkeep.ModeOffline))
	if got := lookup(t, l, "M1", ""); got.LocalCouponRedemptions != 1 {
		t.Fatalf("new redemption after a clamped snapshot: %+v", got)
	}
	// The snapshot replaced the catalog: coupons missing from it are gone.
	small := Snapshot()
	small.Seq = 10
	small.Coupons = small.Coupons[:1]
	if err := l.ReplaceCatalog(ctx, small); err != nil {
		t.Fatal(err)
	}
	_, err = l.Lookup(ctx, "S1", "")
	wantCode(t, err, tillkeep.CodeUnknownCoupon)
	if st := status(t, l); st.Coupons != 1 || st.Offers != 3 {
		t.Fatalf("status after a smaller snapshot: %+v", st)
	}
}

func testReplaceValidation(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	bad := map[string]func(*tillkeep.CatalogSnapshot){
		"other store":      func(s *tillkeep.CatalogSnapshot) { s.StoreID = "S999" },
		"other record":     func(s *tillkeep.CatalogSnapshot) { s.Store.ID = "S999" },
		"duplicate code":   func(s *tillkeep.CatalogSnapshot) { s.Coupons = append(s.Coupons, s.Coupons[0]) },
		"unknown offer":    func(s *tillkeep.CatalogSnapshot) { s.Coupons[0].OfferID = "NOPE" },
		"duplicate offer":  func(s *tillkeep.CatalogSnapshot) { s.Offers = append(s.Offers, s.Offers[0]) },
		"empty code":       func(s *tillkeep.CatalogSnapshot) { s.Coupons[2].Code = "" },
		"negative count":   func(s *tillkeep.CatalogSnapshot) { s.Coupons[1].Redemptions = -1 },
		"offer without id": func(s *tillkeep.CatalogSnapshot) { s.Offers[1].ID = "" },
	}
	for name, breakSnap := range bad {
		snap := Snapshot()
		snap.Seq = 5
		breakSnap(&snap)
		err := l.ReplaceCatalog(ctx, snap)
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		wantCode(t, err, tillkeep.CodeInvalidRequest)
	}
	if cs, _ := l.CatalogState(ctx); cs.Seq != 1 || cs.Coupons != 6 {
		t.Fatalf("a refused snapshot changed the catalog: %+v", cs)
	}
	// Unsorted codes are fine.
	snap := Snapshot()
	snap.Seq = 2
	for i, j := 0, len(snap.Coupons)-1; i < j; i, j = i+1, j-1 {
		snap.Coupons[i], snap.Coupons[j] = snap.Coupons[j], snap.Coupons[i]
	}
	if err := l.ReplaceCatalog(ctx, snap); err != nil {
		t.Fatal(err)
	}
	for _, c := range Snapshot().Coupons {
		got := lookup(t, l, c.Code, "")
		if got.Coupon.OfferID != c.OfferID || got.Offer.ID != c.OfferID || got.Coupon.CustomerID != c.CustomerID {
			t.Fatalf("%s after an unsorted snapshot: %+v", c.Code, got.Coupon)
		}
	}
}

func testApplyChanges(t *testing.T, open Open) {
	ctx := context.Background()
	l := open(t)
	// Deltas may start from nothing.
	if err := l.ApplyCatalogChanges(ctx, 1, Base, Snapshot().Offers, Snapshot().Coupons, nil, 0); err != nil {
		t.Fatalf("first delta: %v", err)
	}
	mustRecord(t, l, RecordRequest("tx-1", "S1", "", tillkeep.ModeOffline))  // 1
	mustRecord(t, l, RecordRequest("tx-2", "M1", "", tillkeep.ModeOffline))  // 2
	mustRecord(t, l, RecordRequest("tx-3", "S2", "", tillkeep.ModeOffline))  // 3
	mustRecord(t, l, RecordRequest("tx-4", "P1", "x", tillkeep.ModeOffline)) // 4

	snap := Snapshot()
	newOffer := snap.Offers[0]
	newOffer.ID, newOffer.Name = "NEW", "New offer"
	changedMulti := snap.Offers[1]
	changedMulti.Name = "Renamed"
	s1 := snap.Coupons[3]
	s1.Redemptions, s1.Status = 1, tillkeep.CouponRedeemed
	m1 := snap.Coupons[0]
	m1.Redemptions = 1
	fresh := tillkeep.Coupon{Code: "N1", OfferID: "NEW", Status: tillkeep.CouponActive}
	asOf := Base.Add(2 * time.Hour)
	err := l.ApplyCatalogChanges(ctx, 2, asOf, []tillkeep.Offer{newOffer, changedMulti},
		[]tillkeep.Coupon{s1, m1, fresh}, []string{OfferPerson}, 2)
	if err != nil {
		t.Fatalf("ApplyCatalogChanges: %v", err)
	}
	if got := lookup(t, l, "S1", ""); got.Coupon.Redemptions != 1 || got.LocalCouponRedemptions != 0 {
		t.Fatalf("S1 after the delta: %+v", got)
	}
	if got := lookup(t, l, "M1", ""); got.Offer.Name != "Renamed" || got.LocalCouponRedemptions != 0 {
		t.Fatalf("M1 after the delta: %+v", got)
	}
	// S2 is not in the delta and entry 3 is after reflects_till_seq: still local use.
	if got := lookup(t, l, "S2", ""); got.Coupon.Redemptions != 0 || got.LocalCouponRedemptions != 1 {
		t.Fatalf("S2 after the delta: %+v", got)
	}
	if got := lookup(t, l, "N1", ""); got.Offer.ID != "NEW" || got.Offer.Name != "New offer" {
		t.Fatalf("N1 after the delta: %+v", got)
	}
	for _, code := range []string{"P1", "P2"} {
		_, err := l.Lookup(ctx, code, "")
		wantCode(t, err, tillkeep.CodeUnknownCoupon)
	}
	cs, err := l.CatalogState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Seq != 2 || cs.ReflectsTillSeq != 2 || !cs.SyncedAt.Equal(asOf) || cs.Coupons != 5 || cs.Offers != 3 {
		t.Fatalf("catalog state after the delta: %+v", cs)
	}
	if st := status(t, l); st.Coupons != 5 || st.Offers != 3 || !st.SyncedAt.Equal(asOf) {
		t.Fatalf("status after the delta: %+v", st)
	}
	// A removed offer can come back, with its coupons.
	if err := l.ApplyCatalogChanges(ctx, 3, asOf, snap.Offers[2:], snap.Coupons[1:3], nil, 4); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, l, "P2", CustomerAnna); got.Offer.ID != OfferPerson || got.Coupon.CustomerID != CustomerAnna {
		t.Fatalf("P2 after its offer came back: %+v", got)
	}
	if cs, _ := l.CatalogState(ctx); cs.Coupons != 7 || cs.Offers != 4 {
		t.Fatalf("catalog state after re-adding: %+v", cs)
	}
	// Invalid deltas change nothing.
	bad := []struct {
		name    string
		offers  []tillkeep.Offer
		coupons []tillkeep.Coupon
		removed []string
	}{
		{"coupon of an unknown offer", nil, []tillkeep.Coupon{{Code: "X", OfferID: "NOPE"}}, nil},
		{"coupon of a removed offer", nil, []tillkeep.Coupon{{Code: "X", OfferID: OfferMulti}}, []string{OfferMulti}},
		{"offer both changed and removed", snap.Offers[:1], nil, []string{OfferSingle}},
	}
	for _, b := range bad {
		err := l.ApplyCatalogChanges(ctx, 4, asOf, b.offers, b.coupons, b.removed, 4)
		if err == nil {
			t.Fatalf("%s: accepted", b.name)
		}
		wantCode(t, err, tillkeep.CodeInvalidRequest)
	}
	if cs, _ := l.CatalogState(ctx); cs.Seq != 3 || cs.Coupons != 7 {
		t.Fatalf("a refused delta changed the catalog: %+v", cs)
	}
	// Removing an unknown offer is harmless.
	if err := l.ApplyCatalogChanges(ctx, 4, asOf, nil, nil, []string{"NEVER"}, 4); err != nil {
		t.Fatal(err)
	}
}

func testStaleDelta(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	snap := Snapshot()
	snap.Seq = 10
	if err := l.ReplaceCatalog(ctx, snap); err != nil {
		t.Fatal(err)
	}
	wantCode(t, l.ApplyCatalogChanges(ctx, 9, Base, nil, nil, nil, 0), tillkeep.CodeConflict)
	if err := l.ApplyCatalogChanges(ctx, 10, Base, nil, nil, nil, 0); err != nil {
		t.Fatalf("re-applying the current seq: %v", err)
	}
}

// A reversal of a redemption the catalog already counts cannot undo local use it never
// had: until the platform sees the reversal, the till stays conservative.
func testReverseReflected(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	out := mustRecord(t, l, RecordRequest("tx-1", "M1", "", tillkeep.ModeOffline))
	mustRecord(t, l, RecordRequest("tx-2", "M1", "", tillkeep.ModeOffline))
	snap := Snapshot()
	snap.Seq, snap.ReflectsTillSeq = 2, 1
	snap.Coupons[0].Redemptions = 1
	if err := l.ReplaceCatalog(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reverse(ctx, tillkeep.ReverseRequest{RedemptionID: out.RedemptionID, Decide: Reverse(tillkeep.ModeOffline)}); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, l, "M1", ""); got.LocalCouponRedemptions != 1 || got.Coupon.Redemptions != 1 {
		t.Fatalf("M1 after reversing a reflected redemption: %+v", got)
	}
}

// testIntents: an attempt's redemption id is kept until the transaction is journaled
// (Record deletes it in the same transaction) or forgotten.
func testIntents(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	if _, _, ok, err := l.Intent(ctx, "tx-1"); err != nil || ok {
		t.Fatalf("intent before any: ok=%v err=%v", ok, err)
	}
	req := RecordRequest("tx-1", "S1", "", tillkeep.ModeOnline)
	if err := l.RememberIntent(ctx, "tx-1", req.RequestHash, "r-0001"); err != nil {
		t.Fatal(err)
	}
	if err := l.RememberIntent(ctx, "tx-2", "h2", "r-0002"); err != nil {
		t.Fatal(err)
	}
	if h, id, ok, err := l.Intent(ctx, "tx-1"); err != nil || !ok || h != req.RequestHash || id != "r-0001" {
		t.Fatalf("intent = %q %q %v %v", h, id, ok, err)
	}
	if _, _, err := l.Record(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := l.Intent(ctx, "tx-1"); ok {
		t.Fatal("recording the transaction left its intent behind")
	}
	if _, _, ok, _ := l.Intent(ctx, "tx-2"); !ok {
		t.Fatal("recording one transaction dropped another's intent")
	}
	if err := l.ForgetIntent(ctx, "tx-2"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := l.Intent(ctx, "tx-2"); ok {
		t.Fatal("forgotten intent still there")
	}
	if err := l.ForgetIntent(ctx, "tx-never"); err != nil {
		t.Fatalf("forgetting a missing intent: %v", err)
	}
	if err := l.RememberIntent(ctx, "", "h", "r"); tillkeep.ErrorCode(err) != tillkeep.CodeInvalidRequest {
		t.Fatalf("intent without transaction: %v", err)
	}
}

func testCursors(t *testing.T, open Open) {
	l := open(t)
	ctx := context.Background()
	if v, err := l.Cursor(ctx, "feed"); err != nil || v != "" {
		t.Fatalf("unset cursor = %q, %v", v, err)
	}
	for _, v := range []string{"42", "43:epoch-7"} {
		if err := l.SetCursor(ctx, "feed", v); err != nil {
			t.Fatal(err)
		}
		if got, err := l.Cursor(ctx, "feed"); err != nil || got != v {
			t.Fatalf("cursor = %q, %v; want %q", got, err, v)
		}
	}
	if err := l.SetCursor(ctx, "epoch", "e1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Cursor(ctx, "feed"); got != "43:epoch-7" {
		t.Fatalf("another cursor overwrote feed: %q", got)
	}
	if err := l.SetCursor(ctx, "feed", ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Cursor(ctx, "feed"); got != "" {
		t.Fatalf("cleared cursor = %q", got)
	}
	wantCode(t, l.SetCursor(ctx, "", "x"), tillkeep.CodeInvalidRequest)
}

func testStatus(t *testing.T, open Open) {
	l := open(t)
	ctx := context.Background()
	if st := status(t, l); st != (tillkeep.LedgerStatus{}) {
		t.Fatalf("status of an empty ledger: %+v", st)
	}
	if err := l.ReplaceCatalog(ctx, Snapshot()); err != nil {
		t.Fatal(err)
	}
	mustRecord(t, l, RecordRequest("tx-1", "M1", "", tillkeep.ModeOffline))
	mustRecord(t, l, RecordRequest("tx-2", "M1", "", tillkeep.ModeOnline))
	mustRecord(t, l, RecordRequest("tx-3", "S1", "", tillkeep.ModeOffline))
	if err := l.Acknowledge(ctx, 1); err != nil {
		t.Fatal(err)
	}
	mustRecord(t, l, RecordRequest("tx-4", "S2", "", tillkeep.ModeOffline))
	want := tillkeep.LedgerStatus{Coupons: 6, Offers: 3, PendingUploads: 3, LastSeq: 4, AckedSeq: 1, OfflineRedemptions: 1}
	got := status(t, l)
	if !got.SyncedAt.Equal(Base) {
		t.Fatalf("synced at %v, want %v", got.SyncedAt, Base)
	}
	got.SyncedAt = time.Time{}
	if got != want {
		t.Fatalf("status %+v, want %+v", got, want)
	}
}

func testStoreRecord(t *testing.T, open Open) {
	l := open(t)
	ctx := context.Background()
	_, err := l.Store(ctx)
	wantCode(t, err, tillkeep.CodeNotFound)
	if err := l.ReplaceCatalog(ctx, Snapshot()); err != nil {
		t.Fatal(err)
	}
	got, err := l.Store(ctx)
	if err != nil || got != Snapshot().Store {
		t.Fatalf("Store = %+v, %v", got, err)
	}
}

func testClockAndSync(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	mustRecord(t, l, RecordRequest("tx-1", "M1", "", tillkeep.ModeOffline))
	last := journal(t, l, 0)[0].HLC
	if ls := lookup(t, l, "M1", ""); ls.LastHLC != last {
		t.Fatalf("LastHLC %+v, want the entry's %+v", ls.LastHLC, last)
	}
	remote := tillkeep.HLC{WallMS: last.WallMS + 60_000, Logical: 3}
	merged, err := l.MergeHLC(ctx, remote, last.WallMS)
	if err != nil {
		t.Fatal(err)
	}
	if merged != (tillkeep.HLC{WallMS: remote.WallMS, Logical: 4}) {
		t.Fatalf("merged %+v", merged)
	}
	if ls := lookup(t, l, "M1", ""); ls.LastHLC != merged {
		t.Fatalf("LastHLC after merge %+v, want %+v", ls.LastHLC, merged)
	}
	// A local event after the merge orders after the platform's stamp.
	mustRecord(t, l, RecordRequest("tx-2", "M1", "", tillkeep.ModeOffline))
	if e := journal(t, l, 1)[0]; !merged.Less(e.HLC) {
		t.Fatalf("entry stamped %+v, not after the merged %+v", e.HLC, merged)
	}
	later := Base.Add(5 * time.Hour)
	if err := l.MarkSynced(ctx, later); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkSynced(ctx, Base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ls := lookup(t, l, "M1", ""); !ls.CatalogSyncedAt.Equal(later) {
		t.Fatalf("catalog synced at %v, want %v", ls.CatalogSyncedAt, later)
	}
	if cs, _ := l.CatalogState(ctx); !cs.SyncedAt.Equal(later) || cs.Seq != 1 {
		t.Fatalf("catalog state after MarkSynced: %+v", cs)
	}
}

func testCopies(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ls := lookup(t, l, "M1", "")
	ls.Offer.Rules.Stores[0] = "CHANGED"
	ls.Offer.Rules.DaysOfWeek = append(ls.Offer.Rules.DaysOfWeek[:0], "sunday")
	again := lookup(t, l, "M1", "")
	if again.Offer.Rules.Stores[0] != StoreID || again.Offer.Rules.DaysOfWeek[0] != "monday" {
		t.Fatalf("a caller changed the cache through a returned offer: %+v", again.Offer.Rules)
	}
	snap := Snapshot()
	if err := l.ReplaceCatalog(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	snap.Offers[1].Rules.Stores[0] = "CHANGED"
	snap.Coupons[0].Redemptions = 99
	if got := lookup(t, l, "M1", ""); got.Offer.Rules.Stores[0] != StoreID || got.Coupon.Redemptions != 0 {
		t.Fatalf("the cache shares memory with the snapshot: %+v", got)
	}
	mustRecord(t, l, RecordRequest("tx-1", "M1", "", tillkeep.ModeOffline))
	es := journal(t, l, 0)
	es[0].Code = "CHANGED"
	if got := journal(t, l, 0); got[0].Code != "M1" {
		t.Fatal("a caller changed the journal through a returned entry")
	}
}

func testCancelled(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := l.Record(ctx, RecordRequest("tx-1", "M1", "", tillkeep.ModeOffline))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Record with a cancelled context: %v", err)
	}
	if st := status(t, l); st.LastSeq != 0 {
		t.Fatalf("a cancelled Record wrote seq %d", st.LastSeq)
	}
	if _, ok, _ := l.OutcomeByTransaction(context.Background(), "tx-1"); ok {
		t.Fatal("a cancelled Record stored an outcome")
	}
}

func testClosed(t *testing.T, open Open) {
	l := OpenWithCatalog(t, open)
	ctx := context.Background()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, _, err := l.Record(ctx, RecordRequest("tx-1", "M1", "", tillkeep.ModeOffline))
	if !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Record after Close: %v", err)
	}
	if _, err := l.Status(ctx); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Status after Close: %v", err)
	}
	if _, err := l.Lookup(ctx, "M1", ""); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Lookup after Close: %v", err)
	}
	if err := l.Acknowledge(ctx, 0); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Acknowledge after Close: %v", err)
	}
}
