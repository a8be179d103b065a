package agent

import (
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/config"
)

// offlinePolicy is the [offline] table of agent.toml: how much risk one till may take
// while it cannot ask the platform, the way card terminals cap store-and-forward.
type offlinePolicy struct {
	enabled        bool
	maxDiscount    int64
	maxRedemptions int
	maxCatalogAge  time.Duration
}

func policyFrom(c config.AgentOffline) offlinePolicy {
	return offlinePolicy{
		enabled:        c.Enabled,
		maxDiscount:    c.MaxDiscount,
		maxRedemptions: c.MaxRedemptions,
		maxCatalogAge:  c.MaxCatalogAge.Duration,
	}
}

// storeView is the cached store record with its resolved time zone, and the catalog
// sync time it was read at: a decision made against another sync time must re-read it.
type storeView struct {
	store    tillkeep.Store
	location *time.Location
	syncedAt time.Time
}

// offlineAttempt is everything an offline judgment needs besides the till's state.
type offlineAttempt struct {
	code       string
	customerID string
	bill       tillkeep.Money
	tillID     string
	now        time.Time
}

// gate applies the till-wide offline limits that do not depend on the coupon, in the
// order a cashier can act on: offline off, catalog too old, outage budget spent.
func (p offlinePolicy) gate(syncedAt time.Time, offlineRedemptions int, now time.Time) *tillkeep.Error {
	if !p.enabled {
		return tillkeep.Errorf(tillkeep.CodeOfflineNotAllowed,
			"the platform cannot be reached and offline redemption is disabled on this till")
	}
	if syncedAt.IsZero() {
		return tillkeep.Errorf(tillkeep.CodeCatalogStale,
			"the till has never received its coupon catalog from the platform")
	}
	if age := now.Sub(syncedAt); age > p.maxCatalogAge {
		return tillkeep.Errorf(tillkeep.CodeCatalogStale,
			"the till's coupon catalog was last synced %s ago, more than the %s allowed offline",
			age.Round(time.Minute), p.maxCatalogAge)
	}
	if offlineRedemptions >= p.maxRedemptions {
		return tillkeep.Errorf(tillkeep.CodeOfflineLimit,
			"the till has made %d offline redemptions since it last reached the platform, the most allowed",
			offlineRedemptions)
	}
	return nil
}

// judgeOffline decides one redemption from the till's own knowledge. It is pure (no
// clock, no I/O, no shared state) because the ledger may call it more than once inside
// one write transaction. The offer's own offline policy is judged by Evaluate
// (Offline: true), in its fixed check order, so that a revoked coupon of an
// online-only offer is still "revoked".
func judgeOffline(p offlinePolicy, view storeView, st tillkeep.LocalState, a offlineAttempt) (tillkeep.Money, *tillkeep.Error) {
	if refusal := p.gate(st.CatalogSyncedAt, st.OfflineRedemptions, a.now); refusal != nil {
		return tillkeep.Money{}, refusal
	}
	if st.Coupon.Code == "" {
		return tillkeep.Money{}, tillkeep.Errorf(tillkeep.CodeUnknownCoupon, "coupon %q is not in this till's catalog", a.code)
	}
	coupon, offer, store := st.Coupon, st.Offer, view.store
	decision := tillkeep.Evaluate(tillkeep.Attempt{
		Offer:      &offer,
		Coupon:     &coupon,
		Store:      &store,
		TillID:     a.tillID,
		CustomerID: a.customerID,
		Bill:       a.bill,
		At:         a.now.UTC(),
		Location:   view.location,
		Usage: tillkeep.Usage{
			CouponRedemptions:      st.Coupon.Redemptions + st.LocalCouponRedemptions,
			CustomerRedemptions:    st.LocalCustomerRedemptions,
			CustomerLastRedemption: st.LocalCustomerLast,
			OfferRedemptions:       st.LocalOfferRedemptions,
		},
		Offline: true,
	})
	if decision.Err != nil {
		return tillkeep.Money{}, decision.Err
	}
	if decision.Discount.Amount > p.maxDiscount {
		return tillkeep.Money{}, tillkeep.Errorf(tillkeep.CodeOfflineLimit,
			"a discount of %s is more than the %d minor units one offline redemption may grant",
			decision.Discount, p.maxDiscount)
	}
	return decision.Discount, nil
}
