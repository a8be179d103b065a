package tillkeep

// The rule engine: Evaluate judges one redemption attempt.
//
// Check order. Evaluate runs the checks below in this fixed order and answers with the
// first refusal, so an attempt that breaks several rules always gets the same code (a
// coupon that is both revoked and expired is always "revoked"):
//
//  1. request: the bill is a non-negative amount in an ISO 4217 currency and the attempt
//     has a time                                                  → invalid_request
//  2. existence: the coupon and its offer are known               → unknown_coupon
//  3. coupon status, most final first: revoked                    → revoked;
//     stored status redeemed, or max_redemptions_per_coupon used  → already_redeemed
//  4. validity: after the coupon's expiry or the offer's end      → expired;
//     before the offer's start                                    → not_yet_valid
//  5. offline policy: judged offline, offer not allowed offline   → offline_not_allowed
//  6. currency: bill vs. the offer's discount and the store       → currency_mismatch
//  7. place: stores, zones, concepts, tills                       → rule_violation
//  8. time of redemption: redemption_start, days_of_week, days_of_month, hours_of_day
//  9. customer: allow_anyone (the recipient), new_customers_only
//  10. bill: min_bill, max_bill
//  11. limits: max_redemptions_per_customer, min_days_between_redemptions,
//     max_redemptions_per_offer
//  12. the discount itself (a malformed discount                 → invalid_request)
//
// Refusals of steps 7 to 11 are rule_violation with Rule set to the rule's JSON name;
// already_redeemed names max_redemptions_per_coupon, and offline_not_allowed names the
// rule the till could not judge offline, if one was the cause.
//
// The order puts facts that no longer change (revoked, used, expired) before facts of
// this particular attempt, and cheap checks on the coupon before checks that need the
// customer, so the cashier hears the most useful reason.
//
// Store-local rules use Attempt.Location (nil: UTC); "days" are calendar days of that
// zone (see expiry.go). A rule that needs the customer refuses when no customer is
// identified, and a rule that needs the customer's profile refuses when the judge does
// not hold it: offline that is offline_not_allowed (the platform could decide), online a
// rule_violation (the customer is unknown). Where data is missing the engine refuses
// rather than guess.

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Rule names, as used in Error.Rule: the JSON names of the fields of Rules.
const (
	RuleAllowAnyone               = "allow_anyone"
	RuleRedemptionStart           = "redemption_start"
	RuleMaxRedemptionsPerCoupon   = "max_redemptions_per_coupon"
	RuleMaxRedemptionsPerCustomer = "max_redemptions_per_customer"
	RuleMaxRedemptionsPerOffer    = "max_redemptions_per_offer"
	RuleMinDaysBetween            = "min_days_between_redemptions"
	RuleStores                    = "stores"
	RuleZones                     = "zones"
	RuleConcepts                  = "concepts"
	RuleTills                     = "tills"
	RuleMinBill                   = "min_bill"
	RuleMaxBill                   = "max_bill"
	RuleDaysOfWeek                = "days_of_week"
	RuleDaysOfMonth               = "days_of_month"
	RuleHoursOfDay                = "hours_of_day"
	RuleNewCustomersOnly          = "new_customers_only"
)

// Evaluate decides whether the attempt's coupon may be redeemed and, if so, what
// discount it grants (in the bill's currency). It reads no clock and does no I/O: the
// caller supplies the moment, the store's time zone and the prior use it knows of. The
// till offline and the platform online judge with this same function.
func Evaluate(a Attempt) Decision {
	j := judgement{a: a, loc: orUTC(a.Location)}
	checks := []func(*judgement) *Error{
		(*judgement).checkRequest,
		(*judgement).checkExists,
		(*judgement).checkStatus,
		(*judgement).checkValidity,
		(*judgement).checkOffline,
		(*judgement).checkCurrency,
		(*judgement).checkPlace,
		(*judgement).checkStart,
		(*judgement).checkCalendar,
		(*judgement).checkCustomer,
		(*judgement).checkBill,
		(*judgement).checkLimits,
	}
	for _, check := range checks {
		if err := check(&j); err != nil {
			return Decision{Err: err}
		}
	}
	discount, err := ComputeDiscount(a.Offer.Discount, a.Bill)
	if err != nil {
		return Decision{Err: err}
	}
	return Decision{Discount: discount}
}

// judgement is one run of Evaluate.
type judgement struct {
	a   Attempt
	loc *time.Location
}

func (j *judgement) offer() *Offer   { return j.a.Offer }
func (j *judgement) coupon() *Coupon { return j.a.Coupon }
func (j *judgement) rules() *Rules   { return &j.a.Offer.Rules }
func (j *judgement) local() time.Time {
	return j.a.At.In(j.loc)
}

// maxRedemptionsPerCoupon applies the default: 0 means once.
func maxRedemptionsPerCoupon(r Rules) int {
	if r.MaxRedemptionsPerCoupon <= 0 {
		return 1
	}
	return r.MaxRedemptionsPerCoupon
}

func (j *judgement) checkRequest() *Error {
	if !ValidCurrency(j.a.Bill.Currency) {
		return Errorf(CodeInvalidRequest, "The bill's currency %q is not an ISO 4217 code.", j.a.Bill.Currency)
	}
	if j.a.Bill.Amount < 0 {
		return Errorf(CodeInvalidRequest, "The bill amount is negative.")
	}
	if j.a.At.IsZero() {
		return Errorf(CodeInvalidRequest, "The redemption has no time.")
	}
	return nil
}

func (j *judgement) checkExists() *Error {
	if j.a.Coupon == nil {
		return Errorf(CodeUnknownCoupon, "This coupon code is not known.")
	}
	if j.a.Offer == nil || (j.a.Coupon.OfferID != "" && j.a.Coupon.OfferID != j.a.Offer.ID) {
		return Errorf(CodeUnknownCoupon, "The offer of this coupon is not known.")
	}
	return nil
}

func (j *judgement) checkStatus() *Error {
	c := j.coupon()
	switch c.Status {
	case CouponRevoked:
		return Errorf(CodeRevoked, "This coupon has been revoked.")
	case CouponRedeemed:
		return usedUp("This coupon has already been redeemed.")
	case CouponActive, CouponExpired, "":
		// Expired is judged from the clock in checkValidity.
	default:
		return Errorf(CodeInternal, "The coupon has an unknown stored status.")
	}
	// Usage.CouponRedemptions is what the caller counted (its cache plus its own use not
	// yet synced); the coupon's own count is a floor, so a caller that leaves Usage
	// empty can never make a used coupon look fresh.
	used := max(c.Redemptions, j.a.Usage.CouponRedemptions)
	if limit := maxRedemptionsPerCoupon(*j.rules()); used >= limit {
		if limit == 1 {
			return usedUp("This coupon has already been redeemed.")
		}
		return usedUp(fmt.Sprintf("This coupon has already been redeemed %d times, its limit.", used))
	}
	return nil
}

// usedUp is already_redeemed, naming the limit that is used up.
func usedUp(message string) *Error {
	return &Error{Code: CodeAlreadyRedeemed, Rule: RuleMaxRedemptionsPerCoupon, Message: message}
}

func (j *judgement) checkValidity() *Error {
	o, c := j.offer(), j.coupon()
	if c.Status == CouponExpired {
		return Errorf(CodeExpired, "This coupon has expired.")
	}
	if exp := EffectiveExpiry(*c, *o); !exp.IsZero() && j.a.At.After(exp) {
		return Errorf(CodeExpired, "This coupon expired on %s.", exp.In(j.loc).Format(time.DateOnly))
	}
	if !o.ValidFrom.IsZero() && j.a.At.Before(o.ValidFrom) {
		return Errorf(CodeNotYetValid, "This offer starts on %s.", o.ValidFrom.In(j.loc).Format(time.DateOnly))
	}
	return nil
}

func (j *judgement) checkOffline() *Error {
	if j.a.Offline && !j.offer().Offline.Allowed {
		return Errorf(CodeOfflineNotAllowed, "This offer can only be redeemed while the till is online.")
	}
	return nil
}

func (j *judgement) checkCurrency() *Error {
	bill := j.a.Bill.Currency
	if cur := j.offer().Discount.Currency; cur != "" && !strings.EqualFold(cur, bill) {
		return Errorf(CodeCurrencyMismatch, "The bill is in %s but the offer is in %s.", bill, strings.ToUpper(cur))
	}
	if s := j.a.Store; s != nil && s.Currency != "" && !strings.EqualFold(s.Currency, bill) {
		return Errorf(CodeCurrencyMismatch, "The bill is in %s but the store sells in %s.", bill, strings.ToUpper(s.Currency))
	}
	return nil
}

func (j *judgement) checkPlace() *Error {
	r, s := j.rules(), j.a.Store
	storeField := func(rule string, allowed []string, field func(*Store) string, what string) *Error {
		if len(allowed) == 0 {
			return nil
		}
		if s == nil {
			return RuleError(rule, "The offer is limited to certain %s and the store is not known.", what)
		}
		if !slices.Contains(allowed, field(s)) {
			return RuleError(rule, "The offer is not valid in this %s.", strings.TrimSuffix(what, "s"))
		}
		return nil
	}
	if err := storeField(RuleStores, r.Stores, func(s *Store) string { return s.ID }, "stores"); err != nil {
		return err
	}
	if err := storeField(RuleZones, r.Zones, func(s *Store) string { return s.Zone }, "zones"); err != nil {
		return err
	}
	if err := storeField(RuleConcepts, r.Concepts, func(s *Store) string { return s.Concept }, "concepts"); err != nil {
		return err
	}
	if len(r.Tills) > 0 && !slices.Contains(r.Tills, j.a.TillID) {
		return RuleError(RuleTills, "The offer is not valid at this till.")
	}
	return nil
}

func (j *judgement) checkStart() *Error {
	rs := j.rules().RedemptionStart
	switch rs.Mode {
	case "", StartImmediate:
		// The start is the issue time itself. Till and platform clocks differ, so a
		// coupon is never refused for being redeemed "before" it was issued.
		return nil
	case StartDaysAfterIssue, StartFromDate:
	default:
		return RuleError(RuleRedemptionStart, "The offer's redemption start rule is not understood, so the coupon cannot be redeemed.")
	}
	start, known := redemptionStart(*j.offer(), *j.coupon(), j.loc)
	if !known {
		return RuleError(RuleRedemptionStart, "The coupon has no issue date, so the days before it may be redeemed cannot be counted.")
	}
	if j.a.At.Before(start) {
		return RuleError(RuleRedemptionStart, "This coupon may be redeemed from %s.", start.In(j.loc).Format("2006-01-02 15:04 MST"))
	}
	return nil
}

func (j *judgement) checkCalendar() *Error {
	r, now := j.rules(), j.local()
	if len(r.DaysOfWeek) > 0 {
		today := strings.ToLower(now.Weekday().String())
		if !slices.ContainsFunc(r.DaysOfWeek, func(d string) bool { return strings.EqualFold(strings.TrimSpace(d), today) }) {
			return RuleError(RuleDaysOfWeek, "The offer is not valid on a %s.", now.Weekday())
		}
	}
	if len(r.DaysOfMonth) > 0 && !slices.Contains(r.DaysOfMonth, now.Day()) {
		return RuleError(RuleDaysOfMonth, "The offer is not valid on day %d of the month.", now.Day())
	}
	if len(r.HoursOfDay) > 0 && !slices.Contains(r.HoursOfDay, now.Hour()) {
		return RuleError(RuleHoursOfDay, "The offer is not valid between %02d:00 and %02d:00.", now.Hour(), (now.Hour()+1)%24)
	}
	return nil
}

func (j *judgement) checkCustomer() *Error {
	if err := j.checkRecipient(); err != nil {
		return err
	}
	return j.checkNewCustomer()
}

// checkRecipient enforces that a coupon issued to a customer is redeemed by that
// customer, unless the offer allows anyone. Coupons issued to nobody are bearer coupons.
func (j *judgement) checkRecipient() *Error {
	owner := j.coupon().CustomerID
	if owner == "" || j.rules().AllowAnyone {
		return nil
	}
	if j.a.CustomerID == "" {
		return RuleError(RuleAllowAnyone, "This coupon belongs to a customer: identify the customer to redeem it.")
	}
	if j.a.CustomerID != owner {
		return RuleError(RuleAllowAnyone, "This coupon was issued to another customer.")
	}
	return nil
}

// customerNeeded refuses a per-customer rule when no customer is identified.
func (j *judgement) customerNeeded(rule string) *Error {
	if j.a.CustomerID == "" {
		return RuleError(rule, "This offer has a per-customer rule: identify the customer to redeem it.")
	}
	return nil
}

// profile returns the customer's profile when the judge holds it. A profile of another
// customer than the one redeeming is never used.
func (j *judgement) profile() *Customer {
	if c := j.a.Customer; c != nil && c.ID == j.a.CustomerID {
		return c
	}
	return nil
}

func (j *judgement) checkNewCustomer() *Error {
	rule := j.rules().NewCustomersOnly
	if rule == nil {
		return nil
	}
	if err := j.customerNeeded(RuleNewCustomersOnly); err != nil {
		return err
	}
	cust := j.profile()
	if cust == nil {
		if j.a.Offline {
			return &Error{Code: CodeOfflineNotAllowed, Rule: RuleNewCustomersOnly,
				Message: "This offer is for new customers only, which the till cannot check offline."}
		}
		return RuleError(RuleNewCustomersOnly, "This offer is for new customers only and the customer is not known.")
	}
	needsRegistration := !rule.RegisteredFrom.IsZero() || !rule.RegisteredUntil.IsZero() || rule.RegisteredWithinDays > 0
	if needsRegistration && cust.RegisteredAt.IsZero() {
		return RuleError(RuleNewCustomersOnly, "This offer is for new customers only and the customer has no registration date.")
	}
	if !rule.RegisteredFrom.IsZero() && cust.RegisteredAt.Before(rule.RegisteredFrom) {
		return RuleError(RuleNewCustomersOnly, "This offer is for customers registered from %s.", rule.RegisteredFrom.In(j.loc).Format(time.DateOnly))
	}
	if !rule.RegisteredUntil.IsZero() && cust.RegisteredAt.After(rule.RegisteredUntil) {
		return RuleError(RuleNewCustomersOnly, "This offer is for customers registered until %s.", rule.RegisteredUntil.In(j.loc).Format(time.DateOnly))
	}
	if n := rule.RegisteredWithinDays; n > 0 {
		// Calendar days in the store's zone, like every other day count.
		if dateIn(cust.RegisteredAt, j.loc).daysUntil(dateIn(j.a.At, j.loc)) > int64(n) {
			return RuleError(RuleNewCustomersOnly, "This offer is for customers registered within the last %d days.", n)
		}
	}
	if limit := rule.MaxTransactions; limit != nil && cust.Transactions > *limit {
		if *limit == 0 {
			return RuleError(RuleNewCustomersOnly, "This offer is for customers making their first purchase.")
		}
		return RuleError(RuleNewCustomersOnly, "This offer is for customers with at most %d purchases.", *limit)
	}
	return nil
}

func (j *judgement) checkBill() *Error {
	r, bill := j.rules(), j.a.Bill
	if r.MinBill > 0 && bill.Amount < r.MinBill {
		return RuleError(RuleMinBill, "The bill must be at least %s.", Money{r.MinBill, bill.Currency})
	}
	if r.MaxBill > 0 && bill.Amount > r.MaxBill {
		return RuleError(RuleMaxBill, "The bill must be at most %s.", Money{r.MaxBill, bill.Currency})
	}
	return nil
}

func (j *judgement) checkLimits() *Error {
	r, u := j.rules(), j.a.Usage
	if limit := r.MaxRedemptionsPerCustomer; limit > 0 {
		if err := j.customerNeeded(RuleMaxRedemptionsPerCustomer); err != nil {
			return err
		}
		if u.CustomerRedemptions >= limit {
			return RuleError(RuleMaxRedemptionsPerCustomer, "The customer has already used this offer %d times, its limit.", u.CustomerRedemptions)
		}
	}
	if gap := r.MinDaysBetweenRedemptions; gap > 0 {
		if err := j.customerNeeded(RuleMinDaysBetween); err != nil {
			return err
		}
		// Calendar days of this store's zone, both dates taken there (a last redemption
		// at a store in another zone is placed on this store's calendar).
		if last := u.CustomerLastRedemption; !last.IsZero() {
			days := dateIn(last, j.loc).daysUntil(dateIn(j.a.At, j.loc))
			if days < int64(gap) {
				next := dateIn(last, j.loc).addDays(gap)
				return RuleError(RuleMinDaysBetween, "The customer used this offer recently and may use it again from %04d-%02d-%02d.", next.year, next.month, next.day)
			}
		}
	}
	if limit := r.MaxRedemptionsPerOffer; limit > 0 && u.OfferRedemptions >= limit {
		return RuleError(RuleMaxRedemptionsPerOffer, "This offer has been fully used.")
	}
	return nil
}
