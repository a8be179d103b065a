package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
)

// The cache must stay small: a store may hold a million coupons. This measures the
// pages the coupons bucket occupies (bbolt's own accounting, independent of how far
// ahead the file was grown) for realistic coupons.
func TestCouponFootprint(t *testing.T) {
	db := openTest(t)
	const n = 20_000
	snap := testSnapshot()
	snap.Coupons = snap.Coupons[:0]
	issued := testBase.AddDate(0, -1, 0)
	for i := range n {
		snap.Coupons = append(snap.Coupons, tillkeep.Coupon{
			Code:       fmt.Sprintf("SPR%09d", i*37),
			OfferID:    "PERSON",
			CustomerID: fmt.Sprintf("C%08d", i),
			IssuedAt:   issued.Add(time.Duration(i) * time.Second),
			CreatedAt:  issued,
			ExpiresAt:  issued.AddDate(0, 3, 0),
			Status:     tillkeep.CouponActive,
		})
	}
	if err := db.ReplaceCatalog(context.Background(), snap); err != nil {
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
	perCoupon := float64(stats.LeafAlloc+stats.BranchAlloc) / n
	t.Logf("%.1f bytes on disk per coupon (12-char code, customer id, three timestamps); leaf pages %.0f%% full",
		perCoupon, 100*float64(stats.LeafInuse)/float64(stats.LeafAlloc))
	if perCoupon > 80 {
		t.Fatalf("%.1f bytes per coupon, want at most 80", perCoupon)
	}
}
