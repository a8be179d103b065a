package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
)

func countGenerations(t *testing.T, db *DB) int {
	t.Helper()
	n := 0
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCatalog).ForEachBucket(func([]byte) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// A load interrupted by a crash (the process ends between chunks) leaves the old
// catalog active and its staged generation is dropped at the next Open.
func TestCatalogLoadLeftoverIsDroppedAtOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{StoreID: "S001", TillID: "T01"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.ReplaceCatalog(ctx, testSnapshot()); err != nil {
		t.Fatal(err)
	}
	snap := testSnapshot()
	load, err := db.BeginCatalog(ctx, snap.Store, snap.Offers)
	if err != nil {
		t.Fatal(err)
	}
	if err := load.Add(ctx, []tillkeep.Coupon{{Code: "NEW", OfferID: "MULTI", Status: tillkeep.CouponActive}}); err != nil {
		t.Fatal(err)
	}
	if got := countGenerations(t, db); got != 2 {
		t.Fatalf("%d catalog generations during a load, want 2", got)
	}
	// No Commit, no Abort: the process "dies" here.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, Options{StoreID: "S001", TillID: "T01"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := countGenerations(t, db); got != 1 {
		t.Fatalf("%d catalog generations after reopening, want 1", got)
	}
	if _, err := db.Lookup(ctx, "M1", ""); err != nil {
		t.Fatalf("the old catalog is gone: %v", err)
	}
	if _, err := db.Lookup(ctx, "NEW", ""); tillkeep.ErrorCode(err) != tillkeep.CodeUnknownCoupon {
		t.Fatalf("a coupon of the unfinished load is visible: %v", err)
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}

// Streaming a catalog in ascending chunks, as the feed delivers it, fills pages
// completely: the footprint stays that of a one-shot load.
func TestCatalogLoadFootprint(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	snap := testSnapshot()
	load, err := db.BeginCatalog(ctx, snap.Store, snap.Offers)
	if err != nil {
		t.Fatal(err)
	}
	defer load.Abort()
	const n, chunk = 40_000, 4_096
	buf := make([]tillkeep.Coupon, 0, chunk)
	for i := range n {
		buf = append(buf, tillkeep.Coupon{Code: fmt.Sprintf("K%011d", i*7), OfferID: "MULTI", Status: tillkeep.CouponActive, Redemptions: i % 3})
		if len(buf) == chunk || i == n-1 {
			if err := load.Add(ctx, buf); err != nil {
				t.Fatal(err)
			}
			buf = buf[:0]
		}
	}
	if err := load.Commit(ctx, 3, testBase, 0); err != nil {
		t.Fatal(err)
	}
	var stats bolt.BucketStats
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		stats = activeCatalog(tx).coupons.Stats()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if stats.KeyN != n {
		t.Fatalf("%d coupons stored, want %d", stats.KeyN, n)
	}
	fill := float64(stats.LeafInuse) / float64(stats.LeafAlloc)
	perCoupon := float64(stats.LeafAlloc+stats.BranchAlloc) / n
	t.Logf("%.1f bytes per coupon, leaf pages %.0f%% full", perCoupon, 100*fill)
	if fill < 0.9 {
		t.Fatalf("leaf pages only %.0f%% full after an ascending load", 100*fill)
	}
	if cs, _ := db.CatalogState(ctx); cs.Coupons != n {
		t.Fatalf("catalog counts %d coupons, want %d", cs.Coupons, n)
	}
}
