package tillkeep

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Code kinds of an offer.
const (
	CodeKindUnique           = "unique"
	CodeKindCommon           = "common"
	CodeKindRandomizedCommon = "randomized_common"
)

// Bounds of offer settings. They keep calendar arithmetic far from overflow and catch
// typos (36500 days where 365 was meant is still allowed; 10 million is not).
const (
	maxIDLength      = 64
	maxNameLength    = 200
	maxSettingDays   = 36_600 // about 100 years
	maxSettingMonths = 1_200
)

// Normalize fills in defaults and canonical spellings, in place:
// max_redemptions_per_coupon 0 → 1, code_kind "" → unique, expiry mode "" → with_offer,
// redemption_start mode "" → immediate, the discount currency in upper case and day
// names in lower case. It never changes ids. Slices it rewrites are copied first, so an
// Offer sharing them is not changed behind its back.
func (o *Offer) Normalize() {
	if o.Rules.MaxRedemptionsPerCoupon == 0 {
		o.Rules.MaxRedemptionsPerCoupon = 1
	}
	if o.CodeKind == "" {
		o.CodeKind = CodeKindUnique
	}
	if o.Expiry.Mode == "" {
		o.Expiry.Mode = ExpiryWithOffer
	}
	if o.Rules.RedemptionStart.Mode == "" {
		o.Rules.RedemptionStart.Mode = StartImmediate
	}
	o.Discount.Currency = strings.ToUpper(strings.TrimSpace(o.Discount.Currency))
	if len(o.Rules.DaysOfWeek) > 0 {
		days := make([]string, len(o.Rules.DaysOfWeek))
		for i, d := range o.Rules.DaysOfWeek {
			days[i] = strings.ToLower(strings.TrimSpace(d))
		}
		o.Rules.DaysOfWeek = days
	}
}

// CheckOffer validates an offer as Normalize would leave it (o itself is not changed).
// The first problem found is returned as an *Error with CodeInvalidRequest whose message
// names the offer field, with its JSON path such as "discount.percent".
func CheckOffer(o Offer) error {
	o.Normalize()
	checks := []func(*Offer) *Error{
		checkOfferIdentity,
		checkOfferDiscount,
		checkOfferWindow,
		checkOfferExpiry,
		checkOfferStart,
		checkOfferPlaceAndTime,
		checkOfferLimits,
		checkOfferNewCustomers,
		checkOfferIssuance,
	}
	for _, check := range checks {
		if err := check(&o); err != nil {
			return err
		}
	}
	return nil
}

// fieldError refuses an offer field.
func fieldError(field, format string, args ...any) *Error {
	return Errorf(CodeInvalidRequest, "Offer field %s %s.", field, fmt.Sprintf(format, args...))
}

// CheckCode checks the syntax of a coupon code: 1 to 64 characters, each an ASCII letter,
// digit, '-' or '_'. Codes are compared exactly (case matters), so the alphabet is kept
// to what barcodes, keyboards and URLs carry unchanged. Offer ids follow the same rule.
func CheckCode(code string) error {
	if !validIdentifier(code) {
		return Errorf(CodeInvalidRequest, "A coupon code must be 1 to %d letters, digits, '-' or '_'.", maxIDLength)
	}
	return nil
}

func validIdentifier(s string) bool {
	if len(s) == 0 || len(s) > maxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func checkOfferIdentity(o *Offer) *Error {
	if !validIdentifier(o.ID) {
		return fieldError("id", "must be 1 to %d letters, digits, '-' or '_'", maxIDLength)
	}
	name := strings.TrimSpace(o.Name)
	if name == "" {
		return fieldError("name", "must not be empty")
	}
	if !utf8.ValidString(o.Name) || utf8.RuneCountInString(o.Name) > maxNameLength {
		return fieldError("name", "must be UTF-8 text of at most %d characters", maxNameLength)
	}
	if strings.ContainsFunc(o.Name, unicode.IsControl) {
		return fieldError("name", "must not contain control characters")
	}
	switch o.CodeKind {
	case CodeKindUnique, CodeKindCommon, CodeKindRandomizedCommon:
	default:
		return fieldError("code_kind", "must be %q, %q or %q", CodeKindUnique, CodeKindCommon, CodeKindRandomizedCommon)
	}
	return nil
}

func checkOfferDiscount(o *Offer) *Error {
	d := o.Discount
	if d.Currency != "" && !ValidCurrency(d.Currency) {
		return fieldError("discount.currency", "must be an ISO 4217 code such as USD")
	}
	switch d.Type {
	case DiscountFixed:
		if d.Amount <= 0 {
			return fieldError("discount.amount", "must be a positive number of minor units")
		}
		if d.Currency == "" {
			return fieldError("discount.currency", "is required for a fixed discount")
		}
		if d.Percent != 0 || d.MaxAmount != 0 {
			return fieldError("discount.type", "is fixed, so percent and max_amount must not be set")
		}
	case DiscountPercent:
		if bp := d.Percent.BasisPoints(); bp <= 0 || bp > maxBasisPoints {
			return fieldError("discount.percent", "must be more than 0 and at most 100")
		}
		if d.MaxAmount < 0 {
			return fieldError("discount.max_amount", "must not be negative")
		}
		// Without a currency, max_amount counts in the bill's currency, which the
		// store's currency already pins (the contract's own example has none).
		if d.Amount != 0 {
			return fieldError("discount.type", "is percent, so amount must not be set")
		}
	default:
		return fieldError("discount.type", "must be %q or %q", DiscountFixed, DiscountPercent)
	}
	return nil
}

func checkOfferWindow(o *Offer) *Error {
	switch {
	case o.ValidFrom.IsZero():
		return fieldError("valid_from", "is required")
	case o.ValidUntil.IsZero():
		return fieldError("valid_until", "is required")
	case !o.ValidFrom.Before(o.ValidUntil):
		return fieldError("valid_until", "must be after valid_from")
	}
	return nil
}

func checkOfferExpiry(o *Offer) *Error {
	e := o.Expiry
	if e.Days < 0 || e.Days > maxSettingDays {
		return fieldError("expiry.days", "must be between 0 and %d", maxSettingDays)
	}
	if e.Months < 0 || e.Months > maxSettingMonths {
		return fieldError("expiry.months", "must be between 0 and %d", maxSettingMonths)
	}
	switch e.Mode {
	case ExpiryWithOffer:
		if e.Days != 0 || e.Months != 0 {
			return fieldError("expiry.mode", "is with_offer, so days and months must not be set")
		}
	case ExpiryDaysFromIssue:
		if e.Months != 0 {
			return fieldError("expiry.months", "must not be set with mode days_from_issue")
		}
	case ExpiryMonthEndsFromIssue:
		if e.Days != 0 {
			return fieldError("expiry.days", "must not be set with mode month_ends_from_issue")
		}
	default:
		return fieldError("expiry.mode", "must be %q, %q or %q", ExpiryWithOffer, ExpiryDaysFromIssue, ExpiryMonthEndsFromIssue)
	}
	return nil
}

func checkOfferStart(o *Offer) *Error {
	rs := o.Rules.RedemptionStart
	if rs.Days < 0 || rs.Days > maxSettingDays {
		return fieldError("rules.redemption_start.days", "must be between 0 and %d", maxSettingDays)
	}
	switch rs.Mode {
	case StartImmediate:
		if rs.Days != 0 || !rs.Date.IsZero() {
			return fieldError("rules.redemption_start.mode", "is immediate, so days and date must not be set")
		}
	case StartDaysAfterIssue:
		if !rs.Date.IsZero() {
			return fieldError("rules.redemption_start.date", "must not be set with mode days_after_issue")
		}
	case StartFromDate:
		if rs.Date.IsZero() {
			return fieldError("rules.redemption_start.date", "is required with mode from_date")
		}
		if rs.Days != 0 {
			return fieldError("rules.redemption_start.days", "must not be set with mode from_date")
		}
		if !rs.Date.Before(o.ValidUntil) {
			return fieldError("rules.redemption_start.date", "must be before valid_until")
		}
	default:
		return fieldError("rules.redemption_start.mode", "must be %q, %q or %q", StartImmediate, StartDaysAfterIssue, StartFromDate)
	}
	return nil
}

func checkOfferPlaceAndTime(o *Offer) *Error {
	r := o.Rules
	lists := []struct {
		field string
		ids   []string
	}{{"rules.stores", r.Stores}, {"rules.zones", r.Zones}, {"rules.concepts", r.Concepts}, {"rules.tills", r.Tills}}
	for _, l := range lists {
		if slices.Contains(l.ids, "") {
			return fieldError(l.field, "must not contain an empty id")
		}
	}
	for _, d := range r.DaysOfWeek {
		if !validDayName(d) {
			return fieldError("rules.days_of_week", "holds %q, which is not a day name such as \"monday\"", d)
		}
	}
	for _, d := range r.DaysOfMonth {
		if d < 1 || d > 31 {
			return fieldError("rules.days_of_month", "holds %d, outside 1 to 31", d)
		}
	}
	for _, h := range r.HoursOfDay {
		if h < 0 || h > 23 {
			return fieldError("rules.hours_of_day", "holds %d, outside 0 to 23", h)
		}
	}
	return nil
}

func validDayName(name string) bool {
	for d := time.Sunday; d <= time.Saturday; d++ {
		if name == strings.ToLower(d.String()) {
			return true
		}
	}
	return false
}

func checkOfferLimits(o *Offer) *Error {
	r := o.Rules
	switch {
	case r.MinBill < 0:
		return fieldError("rules.min_bill", "must not be negative")
	case r.MaxBill < 0:
		return fieldError("rules.max_bill", "must not be negative")
	case r.MaxBill > 0 && r.MinBill > r.MaxBill:
		return fieldError("rules.min_bill", "must not be more than rules.max_bill")
	case r.MaxRedemptionsPerCoupon < 0:
		return fieldError("rules.max_redemptions_per_coupon", "must not be negative")
	case r.MaxRedemptionsPerCustomer < 0:
		return fieldError("rules.max_redemptions_per_customer", "must not be negative")
	case r.MaxRedemptionsPerOffer < 0:
		return fieldError("rules.max_redemptions_per_offer", "must not be negative")
	case r.MinDaysBetweenRedemptions < 0 || r.MinDaysBetweenRedemptions > maxSettingDays:
		return fieldError("rules.min_days_between_redemptions", "must be between 0 and %d", maxSettingDays)
	}
	return nil
}

func checkOfferNewCustomers(o *Offer) *Error {
	n := o.Rules.NewCustomersOnly
	if n == nil {
		return nil
	}
	const field = "rules.new_customers_only"
	switch {
	case n.RegisteredFrom.IsZero() && n.RegisteredUntil.IsZero() && n.RegisteredWithinDays == 0 && n.MaxTransactions == nil:
		return fieldError(field, "needs at least one of registered_from, registered_until, registered_within_days or max_transactions")
	case !n.RegisteredFrom.IsZero() && !n.RegisteredUntil.IsZero() && n.RegisteredUntil.Before(n.RegisteredFrom):
		return fieldError(field+".registered_until", "must not be before registered_from")
	case n.RegisteredWithinDays < 0 || n.RegisteredWithinDays > maxSettingDays:
		return fieldError(field+".registered_within_days", "must be between 0 and %d", maxSettingDays)
	case n.MaxTransactions != nil && *n.MaxTransactions < 0:
		return fieldError(field+".max_transactions", "must not be negative")
	}
	return nil
}

func checkOfferIssuance(o *Offer) *Error {
	i := o.Issuance
	switch {
	case i.MaxPerCustomer < 0:
		return fieldError("issuance.max_per_customer", "must not be negative")
	case i.MinDaysBetweenIssues < 0 || i.MinDaysBetweenIssues > maxSettingDays:
		return fieldError("issuance.min_days_between_issues", "must be between 0 and %d", maxSettingDays)
	case i.SeriesLimit < 0:
		return fieldError("issuance.series_limit", "must not be negative")
	}
	return nil
}
