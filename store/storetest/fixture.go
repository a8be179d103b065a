package storetest

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tillkeep/tillkeep"
)

// The ledger under test must belong to this store and till.
const (
	StoreID = "S001"
	TillID  = "T01"
)

// Offers and coupons of Snapshot.
const (
	OfferSingle  = "SINGLE" // max_redemptions_per_coupon 1 (the default)
	OfferMulti   = "MULTI"  // 1000 redemptions per coupon
	OfferPerson  = "PERSON" // issued to customers
	CustomerAnna = "cust-anna"
)

// Base is the instant the fixtures are built around.
var Base = time.Date(2026, 4, 1, 9, 30, 0, 0, time.UTC)

// Snapshot returns a small catalog at feed seq 1: single-use coupons S1..S3 of
// OfferSingle, multi-use coupon M1 of OfferMulti, and P1, P2 of OfferPerson issued to
// CustomerAnna.
func Snapshot() tillkeep.CatalogSnapshot {
	st := tillkeep.Store{ID: StoreID, Name: "Main Street", Zone: "north", Concept: "grocery", Timezone: "Europe/Amsterdam", Currency: "EUR"}
	offer := func(id string, perCoupon int) tillkeep.Offer {
		return tillkeep.Offer{
			ID:         id,
			Name:       "Offer " + id,
			Discount:   tillkeep.Discount{Type: tillkeep.DiscountFixed, Amount: 500, Currency: "EUR"},
			ValidFrom:  Base.AddDate(0, -1, 0),
			ValidUntil: Base.AddDate(0, 6, 0),
			Expiry:     tillkeep.Expiry{Mode: tillkeep.ExpiryWithOffer},
			Rules: tillkeep.Rules{
				MaxRedemptionsPerCoupon: perCoupon,
				MinBill:                 1000,
				Stores:                  []string{StoreID, "S002"},
				DaysOfWeek:              []string{"monday", "friday"},
			},
			Offline: tillkeep.OfflinePolicy{Allowed: true},
		}
	}
	coupon := func(code, offerID, customer string) tillkeep.Coupon {
		c := tillkeep.Coupon{Code: code, OfferID: offerID, Status: tillkeep.CouponActive, CreatedAt: Base.AddDate(0, 0, -10)}
		if customer != "" {
			c.CustomerID = customer
			c.IssuedAt = Base.AddDate(0, 0, -9).Add(1234 * time.Millisecond)
			c.ExpiresAt = Base.AddDate(0, 1, 0)
		}
		return c
	}
	return tillkeep.CatalogSnapshot{
		StoreID: StoreID,
		Seq:     1,
		Store:   st,
		Offers:  []tillkeep.Offer{offer(OfferSingle, 0), offer(OfferMulti, 1000), offer(OfferPerson, 2)},
		Coupons: []tillkeep.Coupon{
			coupon("M1", OfferMulti, ""),
			coupon("P1", OfferPerson, CustomerAnna),
			coupon("P2", OfferPerson, CustomerAnna),
			coupon("S1", OfferSingle, ""),
			coupon("S2", OfferSingle, ""),
			coupon("S3", OfferSingle, ""),
		},
		AsOf: Base,
	}
}

// clock hands out strictly increasing wall times, so that entries are ordered even
// when the machine's clock is coarse.
var clockTicks atomic.Int64

func wallTime() time.Time {
	return Base.Add(time.Duration(clockTicks.Add(1)) * time.Millisecond)
}

// Redeem returns a Decide callback that enforces the per-coupon limit (cached count
// plus local use) and accepts otherwise with a fresh UUIDv7 redemption id. It stands in
// for the agent's rule engine: the ledger must behave the same whatever Decide decides.
func Redeem(mode string) func(tillkeep.LocalState) (tillkeep.JournalEntry, error) {
	return func(st tillkeep.LocalState) (tillkeep.JournalEntry, error) {
		limit := st.Offer.Rules.MaxRedemptionsPerCoupon
		if limit == 0 {
			limit = 1
		}
		if st.Coupon.Redemptions+st.LocalCouponRedemptions >= limit {
			return tillkeep.JournalEntry{}, tillkeep.Errorf(tillkeep.CodeAlreadyRedeemed, "coupon %s has no redemptions left", st.Coupon.Code)
		}
		id, err := uuid.NewV7()
		if err != nil {
			return tillkeep.JournalEntry{}, fmt.Errorf("make redemption id: %w", err)
		}
		at := wallTime()
		return tillkeep.JournalEntry{
			RedemptionID: id.String(),
			Bill:         tillkeep.NewMoney(2500, "EUR"),
			Discount:     tillkeep.NewMoney(500, "EUR"),
			Mode:         mode,
			WallTime:     at,
			HLC:          tillkeep.NextHLC(st.LastHLC, at.UnixMilli()),
		}, nil
	}
}

// Reverse returns a reversal callback that accepts.
func Reverse(mode string) func(tillkeep.JournalEntry, tillkeep.HLC) (tillkeep.JournalEntry, error) {
	return func(orig tillkeep.JournalEntry, last tillkeep.HLC) (tillkeep.JournalEntry, error) {
		id, err := uuid.NewV7()
		if err != nil {
			return tillkeep.JournalEntry{}, fmt.Errorf("make entry id: %w", err)
		}
		at := wallTime()
		return tillkeep.JournalEntry{
			EntryID:  id.String(),
			Kind:     tillkeep.EntryReversal,
			Bill:     orig.Bill,
			Discount: orig.Discount,
			Mode:     mode,
			WallTime: at,
			HLC:      tillkeep.NextHLC(last, at.UnixMilli()),
		}, nil
	}
}

// RecordRequest builds a request for code under transaction txID, with a request hash
// derived from both (so a different code under the same txID is a different body).
func RecordRequest(txID, code, customerID, mode string) tillkeep.RecordRequest {
	return tillkeep.RecordRequest{
		TransactionID: txID,
		RequestHash:   "h:" + code + ":" + customerID,
		Code:          code,
		CustomerID:    customerID,
		Decide:        Redeem(mode),
	}
}
