package tillkeep

import (
	"strings"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	o := Offer{
		Discount: Discount{Type: DiscountFixed, Amount: 100, Currency: " usd "},
		Rules:    Rules{DaysOfWeek: []string{"Monday", " SUNDAY"}},
	}
	shared := o.Rules.DaysOfWeek
	o.Normalize()
	if o.Rules.MaxRedemptionsPerCoupon != 1 {
		t.Errorf("max_redemptions_per_coupon = %d, want 1", o.Rules.MaxRedemptionsPerCoupon)
	}
	if o.CodeKind != CodeKindUnique {
		t.Errorf("code_kind = %q", o.CodeKind)
	}
	if o.Expiry.Mode != ExpiryWithOffer {
		t.Errorf("expiry.mode = %q", o.Expiry.Mode)
	}
	if o.Rules.RedemptionStart.Mode != StartImmediate {
		t.Errorf("redemption_start.mode = %q", o.Rules.RedemptionStart.Mode)
	}
	if o.Discount.Currency != "USD" {
		t.Errorf("currency = %q", o.Discount.Currency)
	}
	if got := strings.Join(o.Rules.DaysOfWeek, ","); got != "monday,sunday" {
		t.Errorf("days_of_week = %q", got)
	}
	if shared[0] != "Monday" {
		t.Errorf("Normalize rewrote a slice it shares with its caller: %q", shared)
	}

	// Explicit settings are kept.
	o = Offer{CodeKind: CodeKindCommon, Expiry: Expiry{Mode: ExpiryDaysFromIssue, Days: 3},
		Rules: Rules{MaxRedemptionsPerCoupon: 5, RedemptionStart: RedemptionStart{Mode: StartFromDate}}}
	o.Normalize()
	if o.CodeKind != CodeKindCommon || o.Expiry.Mode != ExpiryDaysFromIssue || o.Rules.MaxRedemptionsPerCoupon != 5 ||
		o.Rules.RedemptionStart.Mode != StartFromDate {
		t.Errorf("Normalize overrode explicit settings: %+v", o)
	}
}

func TestCheckOfferAcceptsValidOffers(t *testing.T) {
	zero := int64(0)
	full := ruleTestOffer()
	full.Discount = Discount{Type: DiscountPercent, Percent: 1250, MaxAmount: 2000, Currency: "usd"}
	full.Expiry = Expiry{Mode: ExpiryMonthEndsFromIssue, Months: 0}
	full.CodeKind = CodeKindRandomizedCommon
	full.Rules = Rules{
		AllowAnyone:               true,
		RedemptionStart:           RedemptionStart{Mode: StartDaysAfterIssue, Days: 2},
		MaxRedemptionsPerCoupon:   3,
		MaxRedemptionsPerCustomer: 2,
		MaxRedemptionsPerOffer:    1000,
		MinDaysBetweenRedemptions: 7,
		Stores:                    []string{"S001"},
		Zones:                     []string{"north"},
		Concepts:                  []string{"grocery"},
		Tills:                     []string{"T01"},
		MinBill:                   1000,
		MaxBill:                   1000,
		DaysOfWeek:                []string{"Saturday", "sunday"},
		DaysOfMonth:               []int{1, 31},
		HoursOfDay:                []int{0, 23},
		NewCustomersOnly:          &NewCustomerRule{RegisteredWithinDays: 30, MaxTransactions: &zero},
	}
	full.Issuance = IssuanceRules{MaxPerCustomer: 1, MinDaysBetweenIssues: 30, SeriesLimit: 1e6}
	// CONTRACT.md's percent example carries no currency: max_amount is then in the
	// bill's currency.
	contractPercent := ruleTestOffer()
	contractPercent.Discount = Discount{Type: DiscountPercent, Percent: 1500, MaxAmount: 2000}
	for name, o := range map[string]Offer{"contract example": ruleTestOffer(), "every setting": full, "contract percent example": contractPercent} {
		if err := CheckOffer(o); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if full.Discount.Currency != "usd" || full.Rules.DaysOfWeek[0] != "Saturday" {
		t.Errorf("CheckOffer changed its argument's data")
	}
}

func TestCheckOfferRefusals(t *testing.T) {
	neg := int64(-1)
	cases := []struct {
		field string // the JSON path the message must name
		edit  func(o *Offer)
	}{
		{"id", func(o *Offer) { o.ID = "" }},
		{"id", func(o *Offer) { o.ID = "SPRING 40" }},
		{"id", func(o *Offer) { o.ID = strings.Repeat("A", 65) }},
		{"name", func(o *Offer) { o.Name = "  " }},
		{"name", func(o *Offer) { o.Name = "bad\nname" }},
		{"name", func(o *Offer) { o.Name = strings.Repeat("n", 201) }},
		{"name", func(o *Offer) { o.Name = "\xff" }},
		{"code_kind", func(o *Offer) { o.CodeKind = "shared" }},
		{"discount.type", func(o *Offer) { o.Discount.Type = "bogo" }},
		{"discount.amount", func(o *Offer) { o.Discount.Amount = 0 }},
		{"discount.currency", func(o *Offer) { o.Discount.Currency = "" }},
		{"discount.currency", func(o *Offer) { o.Discount.Currency = "US" }},
		{"discount.type", func(o *Offer) { o.Discount.Percent = 1000 }},
		{"discount.percent", func(o *Offer) { o.Discount = Discount{Type: DiscountPercent} }},
		{"discount.percent", func(o *Offer) { o.Discount = Discount{Type: DiscountPercent, Percent: 10001} }},
		{"discount.percent", func(o *Offer) { o.Discount = Discount{Type: DiscountPercent, Percent: -5} }},
		{"discount.max_amount", func(o *Offer) { o.Discount = Discount{Type: DiscountPercent, Percent: 100, MaxAmount: -1} }},
		{"discount.type", func(o *Offer) { o.Discount = Discount{Type: DiscountPercent, Percent: 100, Amount: 10} }},
		{"valid_from", func(o *Offer) { o.ValidFrom = time.Time{} }},
		{"valid_until", func(o *Offer) { o.ValidUntil = time.Time{} }},
		{"valid_until", func(o *Offer) { o.ValidUntil = o.ValidFrom }},
		{"expiry.mode", func(o *Offer) { o.Expiry.Mode = "never" }},
		{"expiry.mode", func(o *Offer) { o.Expiry.Days = 3 }},
		{"expiry.days", func(o *Offer) { o.Expiry = Expiry{Mode: ExpiryDaysFromIssue, Days: -1} }},
		{"expiry.days", func(o *Offer) { o.Expiry = Expiry{Mode: ExpiryDaysFromIssue, Days: 40000} }},
		{"expiry.months", func(o *Offer) { o.Expiry = Expiry{Mode: ExpiryMonthEndsFromIssue, Months: -1} }},
		{"expiry.months", func(o *Offer) { o.Expiry = Expiry{Mode: ExpiryDaysFromIssue, Months: 1} }},
		{"expiry.days", func(o *Offer) { o.Expiry = Expiry{Mode: ExpiryMonthEndsFromIssue, Days: 1} }},
		{"rules.redemption_start.mode", func(o *Offer) { o.Rules.RedemptionStart.Mode = "later" }},
		{"rules.redemption_start.mode", func(o *Offer) { o.Rules.RedemptionStart.Days = 2 }},
		{"rules.redemption_start.days", func(o *Offer) {
			o.Rules.RedemptionStart = RedemptionStart{Mode: StartDaysAfterIssue, Days: -1}
		}},
		{"rules.redemption_start.date", func(o *Offer) { o.Rules.RedemptionStart = RedemptionStart{Mode: StartFromDate} }},
		{"rules.redemption_start.date", func(o *Offer) {
			o.Rules.RedemptionStart = RedemptionStart{Mode: StartFromDate, Date: o.ValidUntil}
		}},
		{"rules.redemption_start.date", func(o *Offer) {
			o.Rules.RedemptionStart = RedemptionStart{Mode: StartDaysAfterIssue, Days: 1, Date: o.ValidFrom}
		}},
		{"rules.stores", func(o *Offer) { o.Rules.Stores = []string{"S1", ""} }},
		{"rules.zones", func(o *Offer) { o.Rules.Zones = []string{""} }},
		{"rules.concepts", func(o *Offer) { o.Rules.Concepts = []string{""} }},
		{"rules.tills", func(o *Offer) { o.Rules.Tills = []string{""} }},
		{"rules.days_of_week", func(o *Offer) { o.Rules.DaysOfWeek = []string{"monday", "funday"} }},
		{"rules.days_of_week", func(o *Offer) { o.Rules.DaysOfWeek = []string{"mon"} }},
		{"rules.days_of_month", func(o *Offer) { o.Rules.DaysOfMonth = []int{0} }},
		{"rules.days_of_month", func(o *Offer) { o.Rules.DaysOfMonth = []int{32} }},
		{"rules.hours_of_day", func(o *Offer) { o.Rules.HoursOfDay = []int{24} }},
		{"rules.hours_of_day", func(o *Offer) { o.Rules.HoursOfDay = []int{-1} }},
		{"rules.min_bill", func(o *Offer) { o.Rules.MinBill = -1 }},
		{"rules.max_bill", func(o *Offer) { o.Rules.MaxBill = -1 }},
		{"rules.min_bill", func(o *Offer) { o.Rules.MinBill, o.Rules.MaxBill = 2000, 1000 }},
		{"rules.max_redemptions_per_coupon", func(o *Offer) { o.Rules.MaxRedemptionsPerCoupon = -1 }},
		{"rules.max_redemptions_per_customer", func(o *Offer) { o.Rules.MaxRedemptionsPerCustomer = -1 }},
		{"rules.max_redemptions_per_offer", func(o *Offer) { o.Rules.MaxRedemptionsPerOffer = -1 }},
		{"rules.min_days_between_redemptions", func(o *Offer) { o.Rules.MinDaysBetweenRedemptions = -1 }},
		{"rules.new_customers_only", func(o *Offer) { o.Rules.NewCustomersOnly = &NewCustomerRule{} }},
		{"rules.new_customers_only.registered_until", func(o *Offer) {
			o.Rules.NewCustomersOnly = &NewCustomerRule{RegisteredFrom: o.ValidUntil, RegisteredUntil: o.ValidFrom}
		}},
		{"rules.new_customers_only.registered_within_days", func(o *Offer) {
			o.Rules.NewCustomersOnly = &NewCustomerRule{RegisteredWithinDays: -3}
		}},
		{"rules.new_customers_only.max_transactions", func(o *Offer) {
			o.Rules.NewCustomersOnly = &NewCustomerRule{MaxTransactions: &neg}
		}},
		{"issuance.max_per_customer", func(o *Offer) { o.Issuance.MaxPerCustomer = -1 }},
		{"issuance.min_days_between_issues", func(o *Offer) { o.Issuance.MinDaysBetweenIssues = -1 }},
		{"issuance.series_limit", func(o *Offer) { o.Issuance.SeriesLimit = -1 }},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			o := ruleTestOffer()
			tc.edit(&o)
			err := CheckOffer(o)
			if err == nil {
				t.Fatalf("accepted an offer with a bad %s", tc.field)
			}
			if ErrorCode(err) != CodeInvalidRequest {
				t.Fatalf("code %s, want invalid_request", ErrorCode(err))
			}
			if msg := ErrorMessage(err); !strings.Contains(msg, "field "+tc.field+" ") {
				t.Fatalf("message %q does not name field %s", msg, tc.field)
			}
		})
	}
}

func TestCheckCode(t *testing.T) {
	for _, ok := range []string{"A", "C0001", "spring-40_x", strings.Repeat("Z", 64)} {
		if err := CheckCode(ok); err != nil {
			t.Errorf("CheckCode(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", " ", "A B", "A/B", "A.B", "é", "A\x00", "+1", strings.Repeat("Z", 65)} {
		err := CheckCode(bad)
		if err == nil || ErrorCode(err) != CodeInvalidRequest {
			t.Errorf("CheckCode(%q) = %v, want invalid_request", bad, err)
		}
	}
}
