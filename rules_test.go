package tillkeep

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// zoneForTest loads an IANA zone for a test (tests may do I/O; the engine may not).
func zoneForTest(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load time zone %s: %v", name, err)
	}
	return loc
}

// timeForTest parses an RFC 3339 time.
func timeForTest(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("parse time %q: %v", s, err)
	}
	return v
}

// wallClock builds a wall-clock time in loc.
func wallClock(loc *time.Location, y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, loc)
}

// ruleTestOffer is the contract's example offer: 40 USD off, valid through 2026.
func ruleTestOffer() Offer {
	return Offer{
		ID:         "SPRING40",
		Name:       "Spring: 40 USD off 100 USD",
		Discount:   Discount{Type: DiscountFixed, Amount: 4000, Currency: "USD"},
		ValidFrom:  time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		ValidUntil: time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC),
		Expiry:     Expiry{Mode: ExpiryWithOffer},
		Offline:    OfflinePolicy{Allowed: true},
	}
}

func ruleTestCoupon() Coupon {
	return Coupon{
		Code:      "C0001",
		OfferID:   "SPRING40",
		Status:    CouponActive,
		IssuedAt:  time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
		CreatedAt: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
	}
}

// ruleTestAttempt redeems the test coupon with a 100 USD bill at store S001, till T01, on
// Wednesday 2026-06-10 at 15:00 UTC.
func ruleTestAttempt() Attempt {
	o, c := ruleTestOffer(), ruleTestCoupon()
	return Attempt{
		Offer:  &o,
		Coupon: &c,
		Store:  &Store{ID: "S001", Name: "Main St", Zone: "north", Concept: "grocery", Timezone: "UTC", Currency: "USD"},
		TillID: "T01",
		Bill:   Money{Amount: 10000, Currency: "USD"},
		At:     time.Date(2026, 6, 10, 15, 0, 0, 0, time.UTC),
	}
}

type evalCase struct {
	name   string
	modify func(a *Attempt)
	code   Code   // "" means accepted
	rule   string // expected Error.Rule
	want   int64  // expected discount when accepted (-1: don't care)
}

func runEvalCases(t *testing.T, cases []evalCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := ruleTestAttempt()
			if tc.modify != nil {
				tc.modify(&a)
			}
			d := Evaluate(a)
			checkDecision(t, d, tc.code, tc.rule, tc.want, a.Bill)
		})
	}
}

func checkDecision(t *testing.T, d Decision, code Code, rule string, want int64, bill Money) {
	t.Helper()
	if code == "" {
		if d.Err != nil {
			t.Fatalf("refused with %v (rule %q), want accepted", d.Err, d.Err.Rule)
		}
		if d.Discount.Currency != bill.Currency {
			t.Errorf("discount currency %q, want the bill's %q", d.Discount.Currency, bill.Currency)
		}
		if want >= 0 && d.Discount.Amount != want {
			t.Errorf("discount %d, want %d", d.Discount.Amount, want)
		}
		return
	}
	if d.Err == nil {
		t.Fatalf("accepted with discount %v, want refusal %s (rule %q)", d.Discount, code, rule)
	}
	if d.Err.Code != code || d.Err.Rule != rule {
		t.Fatalf("refused with %s rule %q (%q), want %s rule %q", d.Err.Code, d.Err.Rule, d.Err.Message, code, rule)
	}
	if d.Discount != (Money{}) {
		t.Errorf("refusal carries a discount %v", d.Discount)
	}
	if d.Err.Message == "" || !strings.HasSuffix(d.Err.Message, ".") {
		t.Errorf("message %q is not a sentence", d.Err.Message)
	}
}

func TestEvaluateStatusAndValidity(t *testing.T) {
	runEvalCases(t, []evalCase{
		{name: "accepted", want: 4000},
		{name: "bill currency malformed", modify: func(a *Attempt) { a.Bill.Currency = "usd" }, code: CodeInvalidRequest},
		{name: "bill negative", modify: func(a *Attempt) { a.Bill.Amount = -1 }, code: CodeInvalidRequest},
		{name: "no time", modify: func(a *Attempt) { a.At = time.Time{} }, code: CodeInvalidRequest},
		{name: "no coupon", modify: func(a *Attempt) { a.Coupon = nil }, code: CodeUnknownCoupon},
		{name: "no offer", modify: func(a *Attempt) { a.Offer = nil }, code: CodeUnknownCoupon},
		{name: "coupon of another offer", modify: func(a *Attempt) { a.Coupon.OfferID = "OTHER" }, code: CodeUnknownCoupon},
		{name: "revoked", modify: func(a *Attempt) { a.Coupon.Status = CouponRevoked }, code: CodeRevoked},
		{name: "revoked and expired is revoked", modify: func(a *Attempt) {
			a.Coupon.Status = CouponRevoked
			a.At = a.Offer.ValidUntil.Add(time.Hour)
		}, code: CodeRevoked},
		{name: "revoked and used up is revoked", modify: func(a *Attempt) {
			a.Coupon.Status = CouponRevoked
			a.Coupon.Redemptions = 1
		}, code: CodeRevoked},
		{name: "stored redeemed", modify: func(a *Attempt) { a.Coupon.Status = CouponRedeemed }, code: CodeAlreadyRedeemed, rule: RuleMaxRedemptionsPerCoupon},
		{name: "default limit of one used (cached count)", modify: func(a *Attempt) { a.Coupon.Redemptions = 1 }, code: CodeAlreadyRedeemed, rule: RuleMaxRedemptionsPerCoupon},
		{name: "default limit of one used (usage)", modify: func(a *Attempt) { a.Usage.CouponRedemptions = 1 }, code: CodeAlreadyRedeemed, rule: RuleMaxRedemptionsPerCoupon},
		{name: "limit three, two used", modify: func(a *Attempt) {
			a.Offer.Rules.MaxRedemptionsPerCoupon = 3
			a.Usage.CouponRedemptions = 2
		}, want: 4000},
		{name: "limit three, three used", modify: func(a *Attempt) {
			a.Offer.Rules.MaxRedemptionsPerCoupon = 3
			a.Usage.CouponRedemptions = 3
		}, code: CodeAlreadyRedeemed, rule: RuleMaxRedemptionsPerCoupon},
		{name: "redeemed and expired is already_redeemed", modify: func(a *Attempt) {
			a.Coupon.Status = CouponRedeemed
			a.At = a.Offer.ValidUntil.Add(time.Hour)
		}, code: CodeAlreadyRedeemed, rule: RuleMaxRedemptionsPerCoupon},
		{name: "unknown stored status", modify: func(a *Attempt) { a.Coupon.Status = "lost" }, code: CodeInternal},
		{name: "at the offer's last second", modify: func(a *Attempt) { a.At = a.Offer.ValidUntil }, want: 4000},
		{name: "after the offer", modify: func(a *Attempt) { a.At = a.Offer.ValidUntil.Add(time.Nanosecond) }, code: CodeExpired},
		{name: "after the coupon's expiry", modify: func(a *Attempt) {
			a.Coupon.ExpiresAt = a.At.Add(-time.Nanosecond)
		}, code: CodeExpired},
		{name: "at the coupon's expiry", modify: func(a *Attempt) { a.Coupon.ExpiresAt = a.At }, want: 4000},
		{name: "coupon expiry beyond the offer end", modify: func(a *Attempt) {
			a.Coupon.ExpiresAt = a.Offer.ValidUntil.AddDate(1, 0, 0)
			a.At = a.Offer.ValidUntil.Add(time.Second)
		}, code: CodeExpired},
		{name: "stored expired", modify: func(a *Attempt) { a.Coupon.Status = CouponExpired }, code: CodeExpired},
		{name: "before the offer", modify: func(a *Attempt) { a.At = a.Offer.ValidFrom.Add(-time.Nanosecond) }, code: CodeNotYetValid},
		{name: "at the offer's start", modify: func(a *Attempt) { a.At = a.Offer.ValidFrom }, want: 4000},
		{name: "expired before not_yet_valid", modify: func(a *Attempt) {
			a.Coupon.ExpiresAt = a.Offer.ValidFrom.Add(-time.Hour)
			a.At = a.Offer.ValidFrom.Add(-time.Minute)
		}, code: CodeExpired},
	})
}

func TestEvaluateOfflineAndCurrency(t *testing.T) {
	runEvalCases(t, []evalCase{
		{name: "offline allowed", modify: func(a *Attempt) { a.Offline = true }, want: 4000},
		{name: "offline not allowed", modify: func(a *Attempt) {
			a.Offline = true
			a.Offer.Offline.Allowed = false
		}, code: CodeOfflineNotAllowed},
		{name: "online when offline is not allowed", modify: func(a *Attempt) { a.Offer.Offline.Allowed = false }, want: 4000},
		{name: "revoked beats offline_not_allowed", modify: func(a *Attempt) {
			a.Offline = true
			a.Offer.Offline.Allowed = false
			a.Coupon.Status = CouponRevoked
		}, code: CodeRevoked},
		{name: "offline_not_allowed beats a rule", modify: func(a *Attempt) {
			a.Offline = true
			a.Offer.Offline.Allowed = false
			a.Offer.Rules.MinBill = 20000
		}, code: CodeOfflineNotAllowed},
		{name: "bill in another currency than the offer", modify: func(a *Attempt) {
			a.Bill.Currency = "EUR"
			a.Store.Currency = "EUR"
		}, code: CodeCurrencyMismatch},
		{name: "bill in another currency than the store", modify: func(a *Attempt) {
			a.Offer.Discount = Discount{Type: DiscountPercent, Percent: 1000}
			a.Store.Currency = "EUR"
		}, code: CodeCurrencyMismatch},
		{name: "percent offer without currency takes the bill's", modify: func(a *Attempt) {
			a.Offer.Discount = Discount{Type: DiscountPercent, Percent: 1000}
			a.Bill.Currency = "EUR"
			a.Store.Currency = "EUR"
		}, want: 1000},
		{name: "store without currency", modify: func(a *Attempt) { a.Store.Currency = "" }, want: 4000},
		{name: "lower-case offer currency is the same currency", modify: func(a *Attempt) { a.Offer.Discount.Currency = "usd" }, want: 4000},
	})
}

func TestEvaluatePlace(t *testing.T) {
	runEvalCases(t, []evalCase{
		{name: "store listed", modify: func(a *Attempt) { a.Offer.Rules.Stores = []string{"S002", "S001"} }, want: 4000},
		{name: "store not listed", modify: func(a *Attempt) { a.Offer.Rules.Stores = []string{"S002"} }, code: CodeRuleViolation, rule: RuleStores},
		{name: "store unknown", modify: func(a *Attempt) {
			a.Offer.Rules.Stores = []string{"S001"}
			a.Store = nil
		}, code: CodeRuleViolation, rule: RuleStores},
		{name: "no store and no place rule", modify: func(a *Attempt) { a.Store = nil }, want: 4000},
		{name: "zone listed", modify: func(a *Attempt) { a.Offer.Rules.Zones = []string{"north"} }, want: 4000},
		{name: "zone not listed", modify: func(a *Attempt) { a.Offer.Rules.Zones = []string{"south"} }, code: CodeRuleViolation, rule: RuleZones},
		{name: "zone unknown", modify: func(a *Attempt) {
			a.Offer.Rules.Zones = []string{"north"}
			a.Store = nil
		}, code: CodeRuleViolation, rule: RuleZones},
		{name: "concept listed", modify: func(a *Attempt) { a.Offer.Rules.Concepts = []string{"grocery"} }, want: 4000},
		{name: "concept not listed", modify: func(a *Attempt) { a.Offer.Rules.Concepts = []string{"fashion"} }, code: CodeRuleViolation, rule: RuleConcepts},
		{name: "till listed", modify: func(a *Attempt) { a.Offer.Rules.Tills = []string{"T01"} }, want: 4000},
		{name: "till not listed", modify: func(a *Attempt) { a.Offer.Rules.Tills = []string{"T02"} }, code: CodeRuleViolation, rule: RuleTills},
		{name: "stores checked before zones", modify: func(a *Attempt) {
			a.Offer.Rules.Stores = []string{"S002"}
			a.Offer.Rules.Zones = []string{"south"}
		}, code: CodeRuleViolation, rule: RuleStores},
	})
}

func TestEvaluateBill(t *testing.T) {
	runEvalCases(t, []evalCase{
		{name: "min bill met exactly", modify: func(a *Attempt) { a.Offer.Rules.MinBill = 10000 }, want: 4000},
		{name: "below min bill", modify: func(a *Attempt) { a.Offer.Rules.MinBill = 10001 }, code: CodeRuleViolation, rule: RuleMinBill},
		{name: "max bill met exactly", modify: func(a *Attempt) { a.Offer.Rules.MaxBill = 10000 }, want: 4000},
		{name: "above max bill", modify: func(a *Attempt) { a.Offer.Rules.MaxBill = 9999 }, code: CodeRuleViolation, rule: RuleMaxBill},
		{name: "fixed discount never above the bill", modify: func(a *Attempt) { a.Bill.Amount = 2500 }, want: 2500},
		{name: "zero bill", modify: func(a *Attempt) { a.Bill.Amount = 0 }, want: 0},
		{name: "percent with cap", modify: func(a *Attempt) {
			a.Offer.Discount = Discount{Type: DiscountPercent, Percent: 1500, MaxAmount: 1000, Currency: "USD"}
		}, want: 1000},
		{name: "percent rounded up", modify: func(a *Attempt) {
			a.Offer.Discount = Discount{Type: DiscountPercent, Percent: 1250}
			a.Bill.Amount = 999 // 124.875
		}, want: 125},
		{name: "malformed discount", modify: func(a *Attempt) { a.Offer.Discount.Type = "bogo" }, code: CodeInvalidRequest},
	})
}

func TestEvaluateRedemptionStart(t *testing.T) {
	ny := zoneForTest(t, "America/New_York")
	issued := wallClock(ny, 2026, 6, 1, 23, 50) // 2026-06-02T03:50Z, already June 2 in UTC
	daysAfter := func(n int) func(a *Attempt) {
		return func(a *Attempt) {
			a.Location = ny
			a.Coupon.IssuedAt = issued
			a.Offer.Rules.RedemptionStart = RedemptionStart{Mode: StartDaysAfterIssue, Days: n}
		}
	}
	with := func(f func(*Attempt), g func(*Attempt)) func(*Attempt) {
		return func(a *Attempt) { f(a); g(a) }
	}
	runEvalCases(t, []evalCase{
		{name: "immediate", modify: func(a *Attempt) { a.Offer.Rules.RedemptionStart.Mode = StartImmediate }, want: 4000},
		{name: "immediate before the recorded issue time (clock skew)", modify: func(a *Attempt) {
			a.Coupon.IssuedAt = a.At.Add(time.Minute)
		}, want: 4000},
		{name: "two days after issue: last minute of the 2nd", modify: with(daysAfter(2), func(a *Attempt) {
			a.At = wallClock(ny, 2026, 6, 2, 23, 59)
		}), code: CodeRuleViolation, rule: RuleRedemptionStart},
		{name: "two days after issue: first instant of the 3rd", modify: with(daysAfter(2), func(a *Attempt) {
			a.At = wallClock(ny, 2026, 6, 3, 0, 0)
		}), want: 4000},
		{name: "two days after issue: counted in store days, not UTC days", modify: with(daysAfter(2), func(a *Attempt) {
			a.At = time.Date(2026, 6, 3, 3, 59, 0, 0, time.UTC) // 23:59 on the 2nd in New York
		}), code: CodeRuleViolation, rule: RuleRedemptionStart},
		{name: "zero days after issue is the issue day", modify: with(daysAfter(0), func(a *Attempt) {
			a.At = issued.Add(time.Minute)
		}), want: 4000},
		{name: "days after issue from CreatedAt when never issued", modify: with(daysAfter(1), func(a *Attempt) {
			a.Coupon.IssuedAt = time.Time{}
			a.Coupon.CreatedAt = issued
			a.At = wallClock(ny, 2026, 6, 1, 23, 59)
		}), code: CodeRuleViolation, rule: RuleRedemptionStart},
		{name: "days after issue without any issue time", modify: with(daysAfter(1), func(a *Attempt) {
			a.Coupon.IssuedAt = time.Time{}
			a.Coupon.CreatedAt = time.Time{}
		}), code: CodeRuleViolation, rule: RuleRedemptionStart},
		{name: "from date: before", modify: func(a *Attempt) {
			a.Offer.Rules.RedemptionStart = RedemptionStart{Mode: StartFromDate, Date: a.At.Add(time.Second)}
		}, code: CodeRuleViolation, rule: RuleRedemptionStart},
		{name: "from date: at", modify: func(a *Attempt) {
			a.Offer.Rules.RedemptionStart = RedemptionStart{Mode: StartFromDate, Date: a.At}
		}, want: 4000},
		{name: "unknown start mode fails closed", modify: func(a *Attempt) {
			a.Offer.Rules.RedemptionStart.Mode = "weekly"
		}, code: CodeRuleViolation, rule: RuleRedemptionStart},
	})
}

func TestEvaluateCalendar(t *testing.T) {
	ny := zoneForTest(t, "America/New_York")
	at := func(loc *time.Location, t time.Time) func(a *Attempt) {
		return func(a *Attempt) { a.Location, a.At = loc, t }
	}
	rules := func(f func(r *Rules), more func(a *Attempt)) func(a *Attempt) {
		return func(a *Attempt) { f(&a.Offer.Rules); more(a) }
	}
	// 2026-06-10 is a Wednesday; 02:00Z on the 11th is still Wednesday the 10th, 22:00,
	// in New York.
	lateWednesdayNY := at(ny, time.Date(2026, 6, 11, 2, 0, 0, 0, time.UTC))
	runEvalCases(t, []evalCase{
		{name: "day of week allowed", modify: rules(func(r *Rules) { r.DaysOfWeek = []string{"wednesday"} }, func(*Attempt) {}), want: 4000},
		{name: "day of week, any case", modify: rules(func(r *Rules) { r.DaysOfWeek = []string{"Wednesday"} }, func(*Attempt) {}), want: 4000},
		{name: "day of week refused", modify: rules(func(r *Rules) { r.DaysOfWeek = []string{"saturday", "sunday"} }, func(*Attempt) {}),
			code: CodeRuleViolation, rule: RuleDaysOfWeek},
		{name: "day of week in store time", modify: rules(func(r *Rules) { r.DaysOfWeek = []string{"wednesday"} }, lateWednesdayNY), want: 4000},
		{name: "day of week in store time, not UTC", modify: rules(func(r *Rules) { r.DaysOfWeek = []string{"thursday"} }, lateWednesdayNY),
			code: CodeRuleViolation, rule: RuleDaysOfWeek},
		{name: "day of month allowed", modify: rules(func(r *Rules) { r.DaysOfMonth = []int{1, 10} }, func(*Attempt) {}), want: 4000},
		{name: "day of month refused", modify: rules(func(r *Rules) { r.DaysOfMonth = []int{11} }, func(*Attempt) {}),
			code: CodeRuleViolation, rule: RuleDaysOfMonth},
		{name: "day of month in store time", modify: rules(func(r *Rules) { r.DaysOfMonth = []int{11} }, lateWednesdayNY),
			code: CodeRuleViolation, rule: RuleDaysOfMonth},
		{name: "31 never matches in a 30-day month", modify: rules(func(r *Rules) { r.DaysOfMonth = []int{31} },
			at(time.UTC, time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC))), code: CodeRuleViolation, rule: RuleDaysOfMonth},
		{name: "leap day", modify: rules(func(r *Rules) { r.DaysOfMonth = []int{29} }, func(a *Attempt) {
			a.Offer.ValidFrom = time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)
			a.Offer.ValidUntil = time.Date(2028, 12, 31, 0, 0, 0, 0, time.UTC)
			a.At = time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC)
		}), want: 4000},
		{name: "hour allowed", modify: rules(func(r *Rules) { r.HoursOfDay = []int{15} }, func(*Attempt) {}), want: 4000},
		{name: "hour refused", modify: rules(func(r *Rules) { r.HoursOfDay = []int{9, 10, 11} }, func(*Attempt) {}),
			code: CodeRuleViolation, rule: RuleHoursOfDay},
		{name: "hour in store time", modify: rules(func(r *Rules) { r.HoursOfDay = []int{22} }, lateWednesdayNY), want: 4000},
		{name: "days of week checked before hours", modify: rules(func(r *Rules) {
			r.DaysOfWeek = []string{"monday"}
			r.HoursOfDay = []int{3}
		}, func(*Attempt) {}), code: CodeRuleViolation, rule: RuleDaysOfWeek},
	})
}

// TestEvaluateHoursOnDSTDays checks hours_of_day on the days clocks change: the skipped
// hour never matches, the repeated hour matches both times.
func TestEvaluateHoursOnDSTDays(t *testing.T) {
	ny := zoneForTest(t, "America/New_York")
	berlin := zoneForTest(t, "Europe/Berlin")
	cases := []struct {
		name  string
		loc   *time.Location
		at    string // UTC
		hours []int
		ok    bool
	}{
		// New York, spring forward 2026-03-08 02:00 EST → 03:00 EDT.
		{"NY 01:59 EST is hour 1", ny, "2026-03-08T06:59:59Z", []int{1}, true},
		{"NY one second later is hour 3", ny, "2026-03-08T07:00:00Z", []int{3}, true},
		{"NY hour 2 does not exist", ny, "2026-03-08T07:00:00Z", []int{2}, false},
		{"NY 03:30 EDT is not hour 2", ny, "2026-03-08T07:30:00Z", []int{2}, false},
		// New York, fall back 2026-11-01 02:00 EDT → 01:00 EST: hour 1 happens twice.
		{"NY first 01:30 (EDT)", ny, "2026-11-01T05:30:00Z", []int{1}, true},
		{"NY second 01:30 (EST)", ny, "2026-11-01T06:30:00Z", []int{1}, true},
		{"NY 02:30 EST", ny, "2026-11-01T07:30:00Z", []int{1}, false},
		{"NY 02:30 EST is hour 2", ny, "2026-11-01T07:30:00Z", []int{2}, true},
		// Berlin, spring forward 2026-03-29 02:00 CET → 03:00 CEST.
		{"Berlin 01:59 CET", berlin, "2026-03-29T00:59:00Z", []int{1}, true},
		{"Berlin 03:00 CEST", berlin, "2026-03-29T01:00:00Z", []int{3}, true},
		{"Berlin hour 2 does not exist", berlin, "2026-03-29T01:00:00Z", []int{2}, false},
		// Berlin, fall back 2026-10-25 03:00 CEST → 02:00 CET: hour 2 happens twice.
		{"Berlin first 02:30 (CEST)", berlin, "2026-10-25T00:30:00Z", []int{2}, true},
		{"Berlin second 02:30 (CET)", berlin, "2026-10-25T01:30:00Z", []int{2}, true},
		{"Berlin 03:30 CET", berlin, "2026-10-25T02:30:00Z", []int{2}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := ruleTestAttempt()
			a.Location = tc.loc
			a.At = timeForTest(t, tc.at)
			a.Offer.Rules.HoursOfDay = tc.hours
			if tc.ok {
				checkDecision(t, Evaluate(a), "", "", 4000, a.Bill)
			} else {
				checkDecision(t, Evaluate(a), CodeRuleViolation, RuleHoursOfDay, -1, a.Bill)
			}
		})
	}
}

func TestEvaluateCustomer(t *testing.T) {
	ownedBy := func(owner, redeemer string) func(a *Attempt) {
		return func(a *Attempt) {
			a.Coupon.CustomerID = owner
			a.CustomerID = redeemer
		}
	}
	runEvalCases(t, []evalCase{
		{name: "bearer coupon, anonymous", want: 4000},
		{name: "bearer coupon, any customer", modify: ownedBy("", "K9"), want: 4000},
		{name: "recipient redeems", modify: ownedBy("K1", "K1"), want: 4000},
		{name: "another customer", modify: ownedBy("K1", "K2"), code: CodeRuleViolation, rule: RuleAllowAnyone},
		{name: "customer not identified", modify: ownedBy("K1", ""), code: CodeRuleViolation, rule: RuleAllowAnyone},
		{name: "allow anyone", modify: func(a *Attempt) {
			ownedBy("K1", "K2")(a)
			a.Offer.Rules.AllowAnyone = true
		}, want: 4000},
		{name: "allow anyone, anonymous", modify: func(a *Attempt) {
			ownedBy("K1", "")(a)
			a.Offer.Rules.AllowAnyone = true
		}, want: 4000},
	})
}

func TestEvaluateNewCustomers(t *testing.T) {
	zero := int64(0)
	regFrom := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	newOnly := func(rule NewCustomerRule, cust *Customer) func(a *Attempt) {
		return func(a *Attempt) {
			a.Offer.Rules.NewCustomersOnly = &rule
			a.CustomerID = "K1"
			a.Customer = cust
		}
	}
	fresh := &Customer{ID: "K1", RegisteredAt: time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC), Transactions: 0}
	regular := &Customer{ID: "K1", RegisteredAt: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Transactions: 40}
	noDate := &Customer{ID: "K1", Transactions: 0}
	window := NewCustomerRule{RegisteredFrom: regFrom, RegisteredUntil: time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)}
	runEvalCases(t, []evalCase{
		{name: "fresh customer in window", modify: newOnly(window, fresh), want: 4000},
		{name: "registered before window", modify: newOnly(window, regular), code: CodeRuleViolation, rule: RuleNewCustomersOnly},
		{name: "registered after window", modify: newOnly(NewCustomerRule{RegisteredUntil: regFrom}, fresh), code: CodeRuleViolation, rule: RuleNewCustomersOnly},
		{name: "registered at the window's end", modify: newOnly(NewCustomerRule{RegisteredUntil: fresh.RegisteredAt}, fresh), want: 4000},
		{name: "no registration date", modify: newOnly(window, noDate), code: CodeRuleViolation, rule: RuleNewCustomersOnly},
		{name: "first purchase only, none yet", modify: newOnly(NewCustomerRule{MaxTransactions: &zero}, fresh), want: 4000},
		{name: "first purchase only, has bought", modify: newOnly(NewCustomerRule{MaxTransactions: &zero}, regular), code: CodeRuleViolation, rule: RuleNewCustomersOnly},
		{name: "transactions only, no date needed", modify: newOnly(NewCustomerRule{MaxTransactions: &zero}, noDate), want: 4000},
		// fresh registered 2026-06-01, the attempt is 2026-06-10: 9 calendar days.
		{name: "registered within 9 days", modify: newOnly(NewCustomerRule{RegisteredWithinDays: 9}, fresh), want: 4000},
		{name: "not registered within 8 days", modify: newOnly(NewCustomerRule{RegisteredWithinDays: 8}, fresh), code: CodeRuleViolation, rule: RuleNewCustomersOnly},
		{name: "no customer id", modify: func(a *Attempt) {
			newOnly(window, fresh)(a)
			a.CustomerID = ""
		}, code: CodeRuleViolation, rule: RuleNewCustomersOnly},
		{name: "no customer id offline is still a rule violation", modify: func(a *Attempt) {
			newOnly(window, nil)(a)
			a.CustomerID = ""
			a.Offline = true
		}, code: CodeRuleViolation, rule: RuleNewCustomersOnly},
		{name: "customer unknown online", modify: newOnly(window, nil), code: CodeRuleViolation, rule: RuleNewCustomersOnly},
		{name: "customer profile not held offline", modify: func(a *Attempt) {
			newOnly(window, nil)(a)
			a.Offline = true
		}, code: CodeOfflineNotAllowed, rule: RuleNewCustomersOnly},
		{name: "profile held offline is used", modify: func(a *Attempt) {
			newOnly(window, fresh)(a)
			a.Offline = true
		}, want: 4000},
		{name: "profile of another customer is not used", modify: func(a *Attempt) {
			newOnly(window, &Customer{ID: "K2", RegisteredAt: fresh.RegisteredAt})(a)
		}, code: CodeRuleViolation, rule: RuleNewCustomersOnly},
		{name: "recipient checked before new customers", modify: func(a *Attempt) {
			newOnly(window, regular)(a)
			a.Coupon.CustomerID = "K7"
		}, code: CodeRuleViolation, rule: RuleAllowAnyone},
	})
}

func TestEvaluateLimits(t *testing.T) {
	ny := zoneForTest(t, "America/New_York")
	perCustomer := func(limit, used int) func(a *Attempt) {
		return func(a *Attempt) {
			a.CustomerID = "K1"
			a.Offer.Rules.MaxRedemptionsPerCustomer = limit
			a.Usage.CustomerRedemptions = used
		}
	}
	gap := func(days int, last time.Time) func(a *Attempt) {
		return func(a *Attempt) {
			a.CustomerID = "K1"
			a.Offer.Rules.MinDaysBetweenRedemptions = days
			a.Usage.CustomerLastRedemption = last
		}
	}
	at := func(f func(*Attempt), loc *time.Location, when time.Time) func(*Attempt) {
		return func(a *Attempt) { f(a); a.Location, a.At = loc, when }
	}
	runEvalCases(t, []evalCase{
		{name: "per customer below limit", modify: perCustomer(2, 1), want: 4000},
		{name: "per customer at limit", modify: perCustomer(2, 2), code: CodeRuleViolation, rule: RuleMaxRedemptionsPerCustomer},
		{name: "per customer without customer", modify: func(a *Attempt) {
			perCustomer(2, 0)(a)
			a.CustomerID = ""
		}, code: CodeRuleViolation, rule: RuleMaxRedemptionsPerCustomer},
		{name: "gap: never redeemed", modify: gap(7, time.Time{}), want: 4000},
		{name: "gap: without customer", modify: func(a *Attempt) {
			gap(7, time.Time{})(a)
			a.CustomerID = ""
		}, code: CodeRuleViolation, rule: RuleMinDaysBetween},
		{name: "gap: 7 days later", modify: gap(7, time.Date(2026, 6, 3, 23, 0, 0, 0, time.UTC)), want: 4000},
		{name: "gap: 6 days later", modify: gap(7, time.Date(2026, 6, 4, 0, 0, 0, 0, time.UTC)), code: CodeRuleViolation, rule: RuleMinDaysBetween},
		{name: "gap: same day", modify: gap(1, time.Date(2026, 6, 10, 8, 0, 0, 0, time.UTC)), code: CodeRuleViolation, rule: RuleMinDaysBetween},
		// 23:30 and 00:10 the next store day are one calendar day apart, though only 40
		// minutes: days are calendar days.
		{name: "gap: next store day after 40 minutes", modify: at(gap(1, wallClock(ny, 2026, 6, 9, 23, 30)), ny, wallClock(ny, 2026, 6, 10, 0, 10)), want: 4000},
		{name: "gap: same store day, different UTC days", modify: at(gap(1, wallClock(ny, 2026, 6, 9, 19, 30)), ny, wallClock(ny, 2026, 6, 9, 20, 30)),
			code: CodeRuleViolation, rule: RuleMinDaysBetween},
		{name: "gap: last redemption in the future (clock skew)", modify: gap(1, time.Date(2026, 6, 12, 0, 0, 0, 0, time.UTC)), code: CodeRuleViolation, rule: RuleMinDaysBetween},
		{name: "offer limit not reached", modify: func(a *Attempt) {
			a.Offer.Rules.MaxRedemptionsPerOffer = 1000
			a.Usage.OfferRedemptions = 999
		}, want: 4000},
		{name: "offer limit reached", modify: func(a *Attempt) {
			a.Offer.Rules.MaxRedemptionsPerOffer = 1000
			a.Usage.OfferRedemptions = 1000
		}, code: CodeRuleViolation, rule: RuleMaxRedemptionsPerOffer},
		{name: "bill checked before limits", modify: func(a *Attempt) {
			perCustomer(1, 1)(a)
			a.Offer.Rules.MinBill = 50000
		}, code: CodeRuleViolation, rule: RuleMinBill},
	})
}

// TestEvaluateOrderIsStable breaks every rule at once and removes the reported one
// after the other: the refusals must come in the documented order.
func TestEvaluateOrderIsStable(t *testing.T) {
	a := ruleTestAttempt()
	zero := int64(0)
	breakers := []struct {
		code Code
		rule string
		fix  func(a *Attempt)
	}{}
	add := func(code Code, rule string, fix func(a *Attempt)) {
		breakers = append(breakers, struct {
			code Code
			rule string
			fix  func(a *Attempt)
		}{code, rule, fix})
	}
	// Break everything.
	a.Bill.Amount = -5
	offer, coupon := a.Offer, a.Coupon
	a.Coupon = nil
	coupon.Status = CouponRevoked
	coupon.Redemptions = 1
	coupon.ExpiresAt = a.At.Add(-time.Hour)
	offer.Offline.Allowed = false
	a.Offline = true
	a.Store.Currency = "EUR"
	r := &offer.Rules
	r.Stores, r.Zones, r.Concepts, r.Tills = []string{"X"}, []string{"X"}, []string{"X"}, []string{"X"}
	r.RedemptionStart = RedemptionStart{Mode: StartFromDate, Date: a.At.Add(time.Hour)}
	r.DaysOfWeek, r.DaysOfMonth, r.HoursOfDay = []string{"sunday"}, []int{1}, []int{1}
	coupon.CustomerID = "OWNER"
	a.CustomerID = "K1"
	r.NewCustomersOnly = &NewCustomerRule{MaxTransactions: &zero}
	a.Customer = &Customer{ID: "K1", Transactions: 5}
	r.MinBill, r.MaxBill = 20000, 5000 // contradictory, so each can be seen alone
	r.MaxRedemptionsPerCustomer = 1
	a.Usage.CustomerRedemptions = 1
	r.MinDaysBetweenRedemptions = 3
	a.Usage.CustomerLastRedemption = a.At
	r.MaxRedemptionsPerOffer = 5
	a.Usage.OfferRedemptions = 5

	add(CodeInvalidRequest, "", func(a *Attempt) { a.Bill.Amount = 10000 })
	add(CodeUnknownCoupon, "", func(a *Attempt) { a.Coupon = coupon })
	add(CodeRevoked, "", func(a *Attempt) { a.Coupon.Status = CouponActive })
	add(CodeAlreadyRedeemed, RuleMaxRedemptionsPerCoupon, func(a *Attempt) { a.Coupon.Redemptions = 0 })
	add(CodeExpired, "", func(a *Attempt) { a.Coupon.ExpiresAt = time.Time{} })
	add(CodeOfflineNotAllowed, "", func(a *Attempt) { a.Offline = false })
	add(CodeCurrencyMismatch, "", func(a *Attempt) { a.Store.Currency = "USD" })
	add(CodeRuleViolation, RuleStores, func(a *Attempt) { r.Stores = nil })
	add(CodeRuleViolation, RuleZones, func(a *Attempt) { r.Zones = nil })
	add(CodeRuleViolation, RuleConcepts, func(a *Attempt) { r.Concepts = nil })
	add(CodeRuleViolation, RuleTills, func(a *Attempt) { r.Tills = nil })
	add(CodeRuleViolation, RuleRedemptionStart, func(a *Attempt) { r.RedemptionStart = RedemptionStart{} })
	add(CodeRuleViolation, RuleDaysOfWeek, func(a *Attempt) { r.DaysOfWeek = nil })
	add(CodeRuleViolation, RuleDaysOfMonth, func(a *Attempt) { r.DaysOfMonth = nil })
	add(CodeRuleViolation, RuleHoursOfDay, func(a *Attempt) { r.HoursOfDay = nil })
	add(CodeRuleViolation, RuleAllowAnyone, func(a *Attempt) { r.AllowAnyone = true })
	add(CodeRuleViolation, RuleNewCustomersOnly, func(a *Attempt) { r.NewCustomersOnly = nil })
	add(CodeRuleViolation, RuleMinBill, func(a *Attempt) { r.MinBill = 0 })
	add(CodeRuleViolation, RuleMaxBill, func(a *Attempt) { r.MaxBill = 0 })
	add(CodeRuleViolation, RuleMaxRedemptionsPerCustomer, func(a *Attempt) { r.MaxRedemptionsPerCustomer = 0 })
	add(CodeRuleViolation, RuleMinDaysBetween, func(a *Attempt) { r.MinDaysBetweenRedemptions = 0 })
	add(CodeRuleViolation, RuleMaxRedemptionsPerOffer, func(a *Attempt) { r.MaxRedemptionsPerOffer = 0 })

	for _, b := range breakers {
		d := Evaluate(a)
		if d.Err == nil || d.Err.Code != b.code || d.Err.Rule != b.rule {
			got := "accepted"
			if d.Err != nil {
				got = fmt.Sprintf("%s rule %q", d.Err.Code, d.Err.Rule)
			}
			t.Fatalf("got %s, want %s rule %q", got, b.code, b.rule)
		}
		b.fix(&a)
	}
	if d := Evaluate(a); d.Err != nil || d.Discount.Amount != 4000 {
		t.Fatalf("after fixing every rule: %+v", d)
	}
}

func TestEvaluateDoesNotModifyItsInput(t *testing.T) {
	a := ruleTestAttempt()
	a.Offer.Rules.DaysOfWeek = []string{"Wednesday"}
	before := *a.Offer
	Evaluate(a)
	if a.Offer.Rules.DaysOfWeek[0] != "Wednesday" || a.Offer.Rules.MaxRedemptionsPerCoupon != before.Rules.MaxRedemptionsPerCoupon {
		t.Fatalf("Evaluate changed the offer: %+v", a.Offer.Rules)
	}
}
