package platform_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/codegen"
)

// benchService is a service on fresh storage (bolt, or PostgreSQL with
// TILLKEEP_TEST_BACKEND=postgres) with a store, an offer and n codes.
func benchService(b *testing.B, n int) (*platform.Service, []string) {
	b.Helper()
	st := testBackend.open(b, testBackend.newPath(b))
	clk := &clock{now: start}
	svc := platform.NewService(st, platform.Config{AutoRevoke: true, Now: clk.Now, TempDir: b.TempDir()})
	ctx := context.Background()
	if _, err := svc.PutStore(ctx, tillkeep.Store{ID: "S001", Timezone: "America/New_York", Currency: "USD"}); err != nil {
		b.Fatal(err)
	}
	o := tillkeep.Offer{
		ID: "BENCH", Name: "bench", Discount: tillkeep.Discount{Type: tillkeep.DiscountFixed, Amount: 4000, Currency: "USD"},
		ValidFrom: start.AddDate(0, -1, 0), ValidUntil: start.AddDate(1, 0, 0),
		Rules:   tillkeep.Rules{MinBill: 10000, MaxRedemptionsPerCoupon: 1, Stores: []string{"S001"}},
		Offline: tillkeep.OfflinePolicy{Allowed: true},
	}
	if _, err := svc.CreateOffer(ctx, o); err != nil {
		b.Fatal(err)
	}
	codes := make([]string, n)
	for i := range codes {
		codes[i] = fmt.Sprintf("B%08d", i)
	}
	for i := 0; i < n; i += 10_000 {
		if _, err := svc.CreateCoupons(ctx, "BENCH", platform.CouponsRequest{Codes: codes[i:min(i+10_000, n)]}, nil); err != nil {
			b.Fatal(err)
		}
	}
	return svc, codes
}

// BenchmarkOnlineRedeem measures online redemptions (each a durable commit) from
// concurrent tills; concurrent requests share commits.
func BenchmarkOnlineRedeem(b *testing.B) {
	svc, codes := benchService(b, b.N)
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(8) // several tills at once, as in a store at rush hour
	b.ResetTimer()
	began := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			till := platform.TillRef{StoreID: "S001", TillID: fmt.Sprintf("T%02d", i%16)}
			_, err := svc.Redeem(ctx, till, platform.RedeemRequest{
				RedemptionID: fmt.Sprintf("R%08d", i), TransactionID: fmt.Sprintf("X%08d", i),
				Code: codes[i], Bill: usd(12000),
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "redemptions/s")
}

// BenchmarkIngest measures offline-journal ingest with reconciliation: batches of 5,000
// entries in one transaction each, one in ten a double use that opens or joins a case.
func BenchmarkIngest(b *testing.B) {
	const batch = 5000
	svc, codes := benchService(b, b.N)
	ctx := context.Background()
	tills := []platform.TillRef{{StoreID: "S001", TillID: "T01"}, {StoreID: "S001", TillID: "T02"}}
	seqs := map[string]uint64{}
	err := svc.Storage().Update(ctx, func(tx platform.Tx) error {
		for _, t := range tills {
			if err := tx.PutTill(platform.Till{StoreID: t.StoreID, TillID: t.TillID, TokenHash: "h-" + t.TillID}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	entry := func(t platform.TillRef, code string, i int) tillkeep.JournalEntry {
		seqs[t.TillID]++
		id := fmt.Sprintf("%s-%08d", t.TillID, seqs[t.TillID])
		at := start.Add(time.Duration(i) * time.Second)
		return tillkeep.JournalEntry{
			Seq: seqs[t.TillID], EntryID: id, Kind: tillkeep.EntryRedemption, RedemptionID: id,
			StoreID: t.StoreID, TillID: t.TillID, TransactionID: "x" + id, Code: code, OfferID: "BENCH",
			Bill: usd(12000), Discount: usd(4000), Mode: tillkeep.ModeOffline,
			WallTime: at, HLC: tillkeep.HLC{WallMS: at.UnixMilli()},
		}
	}
	b.ResetTimer()
	began := time.Now()
	conflicts := 0
	for i := 0; i < b.N; {
		n := min(batch, b.N-i)
		// Till T01 uploads n entries; one in ten of its codes was also used by T02.
		var mine, theirs []tillkeep.JournalEntry
		for j := range n {
			mine = append(mine, entry(tills[0], codes[i+j], i+j))
		}
		for j := 0; j < n; j += 10 {
			theirs = append(theirs, entry(tills[1], codes[i+j], i+j))
		}
		ack, err := svc.Ingest(ctx, tills[0], platform.JournalUpload{Entries: mine})
		if err != nil || len(ack.Results) != n {
			b.Fatalf("ingest: %v (%d results)", err, len(ack.Results))
		}
		ack, err = svc.Ingest(ctx, tills[1], platform.JournalUpload{Entries: theirs})
		if err != nil {
			b.Fatalf("ingest: %v", err)
		}
		for _, r := range ack.Results {
			if r.ConflictKind != "" {
				conflicts++
			}
		}
		i += n
	}
	elapsed := time.Since(began)
	total := b.N + (b.N+9)/10
	b.ReportMetric(float64(total)/elapsed.Seconds(), "entries/s")
	if conflicts == 0 && b.N >= 10 {
		b.Fatal("no conflict was flagged: the benchmark does not reconcile")
	}
}

// BenchmarkGenerateCoupons measures generating unique codes and storing them as
// coupons (10,000 per transaction, each code with its indexes and change-log entry).
func BenchmarkGenerateCoupons(b *testing.B) {
	svc, _ := benchService(b, 0)
	ctx := context.Background()
	b.ResetTimer()
	began := time.Now()
	res, err := svc.CreateCoupons(ctx, "BENCH", platform.CouponsRequest{
		Generate: &codegen.Spec{Count: int64(b.N), Length: 12, Charset: codegen.CharsetAlphanumeric},
	}, nil)
	if err != nil || res.Created != int64(b.N) {
		b.Fatalf("generate: %v (%d created)", err, res.Created)
	}
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "coupons/s")
}
