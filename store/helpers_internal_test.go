package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
)

// Internal tests cannot import storetest (it imports this package), so they carry a
// minimal fixture of their own.

var testBase = time.Date(2026, 4, 1, 9, 30, 0, 0, time.UTC)

func testSnapshot() tillkeep.CatalogSnapshot {
	return tillkeep.CatalogSnapshot{
		StoreID: "S001",
		Seq:     1,
		Store:   tillkeep.Store{ID: "S001", Timezone: "UTC", Currency: "EUR"},
		Offers: []tillkeep.Offer{
			{ID: "MULTI", Rules: tillkeep.Rules{MaxRedemptionsPerCoupon: 1 << 30}},
			{ID: "PERSON", Rules: tillkeep.Rules{MaxRedemptionsPerCoupon: 1}},
		},
		Coupons: []tillkeep.Coupon{{Code: "M1", OfferID: "MULTI", Status: tillkeep.CouponActive}},
		AsOf:    testBase,
	}
}

func openTest(t testing.TB) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), FileName), Options{StoreID: "S001", TillID: "T01"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func openTestWithCatalog(t testing.TB) *DB {
	t.Helper()
	db := openTest(t)
	if err := db.ReplaceCatalog(context.Background(), testSnapshot()); err != nil {
		t.Fatal(err)
	}
	return db
}

var testIDs atomic.Uint64

// acceptAll is a Decide callback that accepts every redemption offline.
func acceptAll(st tillkeep.LocalState) (tillkeep.JournalEntry, error) {
	n := testIDs.Add(1)
	at := testBase.Add(time.Duration(n) * time.Millisecond)
	return tillkeep.JournalEntry{
		RedemptionID: fmt.Sprintf("red-%d-%d", time.Now().UnixNano(), n),
		Mode:         tillkeep.ModeOffline,
		Discount:     tillkeep.NewMoney(100, "EUR"),
		Bill:         tillkeep.NewMoney(1000, "EUR"),
		WallTime:     at,
		HLC:          tillkeep.NextHLC(st.LastHLC, at.UnixMilli()),
	}, nil
}

func recordReq(txID string) tillkeep.RecordRequest {
	return tillkeep.RecordRequest{TransactionID: txID, RequestHash: "h", Code: "M1", Decide: acceptAll}
}
