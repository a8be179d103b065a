package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tillkeep/tillkeep"
)

// TestWriteFixture rewrites testdata/ledger-<version>.db when TILLKEEP_WRITE_FIXTURES=1.
// Write one whenever SchemaVersion is raised (and keep the old ones): they are the
// files upgrades are tested from.
func TestWriteFixture(t *testing.T) {
	if os.Getenv("TILLKEEP_WRITE_FIXTURES") != "1" {
		t.Skip("set TILLKEEP_WRITE_FIXTURES=1 to rewrite testdata/ledger-v1.db")
	}
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{StoreID: "S001", TillID: "T01"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	snap := testSnapshot()
	snap.Coupons = append(snap.Coupons, tillkeep.Coupon{Code: "P1", OfferID: "PERSON", CustomerID: "cust-1", Status: tillkeep.CouponActive, IssuedAt: testBase})
	if err := db.ReplaceCatalog(ctx, snap); err != nil {
		t.Fatal(err)
	}
	for _, tx := range []string{"tx-1", "tx-2", "tx-3"} {
		if _, _, err := db.Record(ctx, recordReq(tx)); err != nil {
			t.Fatal(err)
		}
	}
	p1 := recordReq("tx-p1")
	p1.Code, p1.CustomerID = "P1", "cust-1"
	out, _, err := db.Record(ctx, p1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Reverse(ctx, tillkeep.ReverseRequest{RedemptionID: out.RedemptionID, Decide: func(o tillkeep.JournalEntry, h tillkeep.HLC) (tillkeep.JournalEntry, error) {
		return tillkeep.JournalEntry{EntryID: "rev-1", Mode: tillkeep.ModeOffline, WallTime: testBase.Add(1e9), HLC: tillkeep.NextHLC(h, testBase.Add(1e9).UnixMilli())}, nil
	}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Acknowledge(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := db.SetCursor(ctx, "feed", "17"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join("testdata", "ledger-v1.db")
	if err := compactTo(path, dst); err != nil {
		t.Fatal(err)
	}
}

// compactTo writes a compacted copy of a closed ledger.
func compactTo(src, dst string) error {
	db, err := Open(src, Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	_ = os.Remove(dst)
	return db.Compact(dst)
}

// checkFixtureContents is what TestWriteFixture put into the file.
func checkFixtureContents(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	st, err := db.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := tillkeep.LedgerStatus{Coupons: 2, Offers: 2, SyncedAt: testBase, PendingUploads: 3, LastSeq: 5, AckedSeq: 2, OfflineRedemptions: 0}
	if st != want {
		t.Fatalf("fixture status %+v, want %+v", st, want)
	}
	if v, _ := db.Cursor(ctx, "feed"); v != "17" {
		t.Fatalf("fixture cursor %q", v)
	}
	es, err := db.Journal(ctx, 0, 0)
	if err != nil || len(es) != 5 || es[4].Kind != tillkeep.EntryReversal || es[4].EntryID != "rev-1" {
		t.Fatalf("fixture journal %+v, %v", es, err)
	}
	out, replayed, err := db.Record(ctx, recordReq("tx-2"))
	if err != nil || !replayed || out.Seq != 2 {
		t.Fatalf("fixture replay %+v %v %v", out, replayed, err)
	}
	if out, ok, _ := db.OutcomeByTransaction(ctx, "tx-p1"); !ok || out.Status != tillkeep.RedemptionReversed {
		t.Fatalf("fixture outcome of the reversed redemption %+v", out)
	}
	m1, err := db.Lookup(ctx, "M1", "")
	if err != nil || m1.LocalCouponRedemptions != 3 {
		t.Fatalf("fixture local use %+v %v", m1, err)
	}
	p1, err := db.Lookup(ctx, "P1", "cust-1")
	if err != nil || p1.Coupon.CustomerID != "cust-1" || p1.LocalCustomerRedemptions != 0 {
		t.Fatalf("fixture P1 %+v %v", p1, err)
	}
}
