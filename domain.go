package tillkeep

import (
	"time"
)

// Store is a shop. Its time zone decides every store-local rule (days, hours, the end
// of an expiry day); its currency is the currency of its bills.
type Store struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Zone     string `json:"zone"`
	Concept  string `json:"concept"`
	Timezone string `json:"timezone"` // IANA name, e.g. "America/New_York"
	Currency string `json:"currency"` // ISO 4217
}

// Customer is a loyalty customer as far as coupon rules need to know them.
type Customer struct {
	ID           string    `json:"id"`
	Mobile       string    `json:"mobile,omitempty"`
	Email        string    `json:"email,omitempty"`
	RegisteredAt time.Time `json:"registered_at,omitzero"`
	// Transactions is how many purchases the customer has made, for new-customer rules.
	Transactions int64 `json:"transactions"`
}

// Discount types.
const (
	DiscountFixed   = "fixed"
	DiscountPercent = "percent"
)

// Discount is what a coupon takes off a bill.
type Discount struct {
	Type string `json:"type"` // "fixed" or "percent"
	// Amount is the fixed discount in minor units (type fixed).
	Amount int64 `json:"amount,omitempty"`
	// Currency of Amount and MaxAmount. Required for fixed discounts. A percent
	// discount without one applies in the bill's currency, MaxAmount included; with one,
	// bills in other currencies are refused.
	Currency string `json:"currency,omitempty"`
	// Percent is the percentage off the bill (type percent), exact to 1/100 of a
	// percent: 15 and 12.5 are both valid.
	Percent Percent `json:"percent,omitempty"`
	// MaxAmount caps a percent discount, in minor units; 0 means no cap.
	MaxAmount int64 `json:"max_amount,omitempty"`
}

// Expiry modes of a coupon.
const (
	ExpiryWithOffer          = "with_offer"
	ExpiryDaysFromIssue      = "days_from_issue"
	ExpiryMonthEndsFromIssue = "month_ends_from_issue"
)

// Expiry says when an issued coupon stops being redeemable.
type Expiry struct {
	Mode string `json:"mode"`
	// Days after the issue day (days_from_issue): the coupon expires at the end of the
	// issue day plus Days, in store-local time, and never after the offer ends.
	Days int `json:"days,omitempty"`
	// Months after the issue month (month_ends_from_issue): the coupon expires at the end
	// of that month; 0 means the end of the issue month.
	Months int `json:"months,omitempty"`
}

// Redemption start modes.
const (
	StartImmediate      = "immediate"
	StartDaysAfterIssue = "days_after_issue"
	StartFromDate       = "from_date"
)

// RedemptionStart says from when an issued coupon may be redeemed.
type RedemptionStart struct {
	Mode string `json:"mode"` // "immediate" (default), "days_after_issue", "from_date"
	// Days after the issue date, counted in store-local calendar days: with 2, a coupon
	// issued at 23:50 on the 1st is redeemable from 00:00 on the 3rd.
	Days int `json:"days,omitempty"`
	// Date from which redemption is allowed (from_date).
	Date time.Time `json:"date,omitzero"`
}

// NewCustomerRule limits an offer to new customers.
type NewCustomerRule struct {
	// RegisteredFrom and RegisteredUntil bound the registration time (either may be zero).
	RegisteredFrom  time.Time `json:"registered_from,omitzero"`
	RegisteredUntil time.Time `json:"registered_until,omitzero"`
	// RegisteredWithinDays requires registration at most this many days before the
	// redemption (0: no such limit).
	RegisteredWithinDays int `json:"registered_within_days,omitempty"`
	// MaxTransactions is the largest transaction count a customer may have (nil: no limit;
	// 0 means only customers who have never bought).
	MaxTransactions *int64 `json:"max_transactions,omitempty"`
}

// Rules holds every redemption rule of an offer. A zero or empty field means "no
// restriction", except MaxRedemptionsPerCoupon, where 0 means the default of 1.
//
// Rule names, used in refusals (error.rule), are the JSON names of these fields.
type Rules struct {
	// AllowAnyone lets anyone redeem a coupon issued to a customer; without it only the
	// recipient may. Coupons not issued to anyone are bearer coupons.
	AllowAnyone bool `json:"allow_anyone"`
	// RedemptionStart says when redemption may begin.
	RedemptionStart RedemptionStart `json:"redemption_start"`
	// MaxRedemptionsPerCoupon is how often one coupon may be redeemed (default 1).
	MaxRedemptionsPerCoupon int `json:"max_redemptions_per_coupon"`
	// MaxRedemptionsPerCustomer is how often one customer may redeem this offer.
	MaxRedemptionsPerCustomer int `json:"max_redemptions_per_customer,omitempty"`
	// MaxRedemptionsPerOffer is how often the offer may be redeemed in total.
	MaxRedemptionsPerOffer int64 `json:"max_redemptions_per_offer,omitempty"`
	// MinDaysBetweenRedemptions is the minimum number of days between two redemptions
	// of this offer by one customer.
	MinDaysBetweenRedemptions int      `json:"min_days_between_redemptions,omitempty"`
	Stores                    []string `json:"stores,omitempty"`
	Zones                     []string `json:"zones,omitempty"`
	Concepts                  []string `json:"concepts,omitempty"`
	Tills                     []string `json:"tills,omitempty"`
	MinBill                   int64    `json:"min_bill,omitempty"`
	MaxBill                   int64    `json:"max_bill,omitempty"`
	// DaysOfWeek are lower-case English day names: "monday" ... "sunday".
	DaysOfWeek []string `json:"days_of_week,omitempty"`
	// DaysOfMonth are 1..31.
	DaysOfMonth []int `json:"days_of_month,omitempty"`
	// HoursOfDay are 0..23: redemption is allowed during these store-local hours.
	HoursOfDay []int `json:"hours_of_day,omitempty"`
	// NewCustomersOnly restricts the offer to new customers.
	NewCustomersOnly *NewCustomerRule `json:"new_customers_only,omitempty"`
}

// OfflinePolicy says whether tills may redeem the offer's coupons without the platform.
type OfflinePolicy struct {
	Allowed bool `json:"allowed"`
}

// IssuanceRules limit how coupons of an offer are issued to customers.
type IssuanceRules struct {
	// MaxPerCustomer is how many coupons of the offer one customer may hold (0: no limit).
	MaxPerCustomer int `json:"max_per_customer,omitempty"`
	// MinDaysBetweenIssues is the minimum gap between two issues to one customer.
	MinDaysBetweenIssues int `json:"min_days_between_issues,omitempty"`
	// SeriesLimit is how many coupons of the offer may be issued in total (0: no limit).
	SeriesLimit int64 `json:"series_limit,omitempty"`
}

// Offer is a coupon series: what it grants, when, where and to whom.
type Offer struct {
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Discount   Discount      `json:"discount"`
	ValidFrom  time.Time     `json:"valid_from"`
	ValidUntil time.Time     `json:"valid_until"`
	Expiry     Expiry        `json:"expiry"`
	Rules      Rules         `json:"rules"`
	Offline    OfflinePolicy `json:"offline"`
	Issuance   IssuanceRules `json:"issuance"`
	// CodeKind is how the offer's codes are made: "unique" (default), "common" (one code
	// for everyone) or "randomized_common".
	CodeKind  string    `json:"code_kind,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Coupon statuses.
const (
	CouponActive   = "active"
	CouponRedeemed = "redeemed"
	CouponRevoked  = "revoked"
	CouponExpired  = "expired"
)

// Coupon is one code of an offer.
type Coupon struct {
	Code    string `json:"code"`
	OfferID string `json:"offer_id"`
	// CustomerID is the recipient, once issued; "" for a coupon not issued to anyone.
	CustomerID string    `json:"customer_id,omitempty"`
	IssuedAt   time.Time `json:"issued_at,omitzero"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	// Status is the stored status: active, redeemed (no redemptions left) or revoked.
	// "expired" is derived from the clock by EffectiveStatus and never stored.
	Status string `json:"status"`
	// Redemptions counts accepted, not reversed redemptions.
	Redemptions int `json:"redemptions"`
	// ExpiresAt is fixed at issue time by the offer's expiry mode; zero means the coupon
	// expires with the offer.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Redemption modes and statuses.
const (
	ModeOnline  = "online"
	ModeOffline = "offline"

	RedemptionAccepted = "accepted"
	RedemptionReversed = "reversed"
	RedemptionConflict = "conflict"
)

// Redemption is one use of a coupon at a till.
type Redemption struct {
	// ID is a UUIDv7 made once by the till and reused on every retry.
	ID            string    `json:"id"`
	Code          string    `json:"code"`
	OfferID       string    `json:"offer_id"`
	StoreID       string    `json:"store_id"`
	TillID        string    `json:"till_id"`
	TransactionID string    `json:"transaction_id"`
	CustomerID    string    `json:"customer_id,omitempty"`
	Bill          Money     `json:"bill"`
	Discount      Money     `json:"discount"`
	Mode          string    `json:"mode"`
	Status        string    `json:"status"`
	At            time.Time `json:"at"` // when the till says it happened (its wall clock)
}

// Attempt is everything the rule engine needs to judge one redemption. The caller
// gathers it from its own storage; Evaluate does no I/O.
type Attempt struct {
	Offer  *Offer
	Coupon *Coupon
	Store  *Store
	TillID string
	// CustomerID is who is redeeming, as the POS says ("" when unknown).
	CustomerID string
	// Customer is the profile of CustomerID, when the judge has it. Offline tills do not
	// hold profiles; rules that need one then refuse instead of guessing.
	Customer *Customer
	Bill     Money
	// At is the moment of redemption (UTC).
	At time.Time
	// Location is the store's time zone, for every store-local rule (days, hours, the
	// redemption start, days between redemptions). The caller resolves Store.Timezone
	// with time.LoadLocation, because loading zone data is I/O; nil means UTC.
	Location *time.Location
	// Usage is what the judge knows of prior use at the moment of the attempt.
	Usage Usage
	// Offline is true when a till judges without the platform.
	Offline bool
}

// Usage is the prior use that the limits count.
type Usage struct {
	// CouponRedemptions is how often this coupon has been redeemed (accepted, not reversed).
	CouponRedemptions int
	// CustomerRedemptions is how often the customer has redeemed this offer.
	CustomerRedemptions int
	// CustomerLastRedemption is when the customer last redeemed this offer (zero: never).
	CustomerLastRedemption time.Time
	// OfferRedemptions is how often the offer has been redeemed in total.
	OfferRedemptions int64
}

// Decision is the rule engine's verdict.
type Decision struct {
	Discount Money
	// Err is nil when the redemption may go ahead, else a coded refusal (*Error).
	Err *Error
}
