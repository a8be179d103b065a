package tillkeep

import (
	"testing"
	"time"
)

func TestCouponExpiry(t *testing.T) {
	ny := zoneForTest(t, "America/New_York")
	berlin := zoneForTest(t, "Europe/Berlin")
	havana := zoneForTest(t, "America/Havana")
	santiago := zoneForTest(t, "America/Santiago")
	daysFromIssue := func(n int) Expiry { return Expiry{Mode: ExpiryDaysFromIssue, Days: n} }
	monthEnds := func(n int) Expiry { return Expiry{Mode: ExpiryMonthEndsFromIssue, Months: n} }
	cases := []struct {
		name   string
		expiry Expiry
		loc    *time.Location
		issued string
		until  string // offer end; "" keeps 2099
		want   string // "" is the zero time
	}{
		{"with offer follows the offer", Expiry{Mode: ExpiryWithOffer}, ny, "2026-06-10T15:00:00Z", "", ""},
		{"empty mode is with offer", Expiry{}, ny, "2026-06-10T15:00:00Z", "", ""},
		{"no issue time expires with the offer", daysFromIssue(3), ny, "", "", ""},

		{"0 days: end of the issue day, UTC", daysFromIssue(0), time.UTC, "2026-06-10T15:00:00Z", "", "2026-06-10T23:59:59.999999999Z"},
		{"nil location is UTC", daysFromIssue(0), nil, "2026-06-10T15:00:00Z", "", "2026-06-10T23:59:59.999999999Z"},
		{"10 days in New York (EDT)", daysFromIssue(10), ny, "2026-06-10T15:00:00Z", "", "2026-06-21T03:59:59.999999999Z"},
		{"issue day is the store's day, not UTC's", daysFromIssue(0), ny, "2026-06-10T02:00:00Z", "", "2026-06-10T03:59:59.999999999Z"},
		{"capped by the offer end", daysFromIssue(30), ny, "2026-06-10T15:00:00Z", "2026-06-20T12:00:00Z", "2026-06-20T12:00:00Z"},
		{"offer end later than the day end", daysFromIssue(1), ny, "2026-06-10T15:00:00Z", "2026-06-20T12:00:00Z", "2026-06-12T03:59:59.999999999Z"},

		// DST: the day ends at the next local midnight, whatever its offset.
		{"NY: into the spring-forward day", daysFromIssue(1), ny, "2026-03-07T15:00:00Z", "", "2026-03-09T03:59:59.999999999Z"},
		{"NY: the day before spring forward", daysFromIssue(0), ny, "2026-03-07T15:00:00Z", "", "2026-03-08T04:59:59.999999999Z"},
		{"NY: into the fall-back day", daysFromIssue(1), ny, "2026-10-31T16:00:00Z", "", "2026-11-02T04:59:59.999999999Z"},
		{"NY: the day before fall back", daysFromIssue(0), ny, "2026-10-31T16:00:00Z", "", "2026-11-01T03:59:59.999999999Z"},
		{"Berlin: spring-forward day", daysFromIssue(1), berlin, "2026-03-28T12:00:00Z", "", "2026-03-29T21:59:59.999999999Z"},
		{"Berlin: fall-back day", daysFromIssue(1), berlin, "2026-10-24T12:00:00Z", "", "2026-10-25T22:59:59.999999999Z"},
		// Zones whose clocks change at midnight: the day ends at the first instant of
		// the next day, even when that midnight is skipped or happens twice.
		{"Havana: next midnight happens twice, the first counts", daysFromIssue(0), havana, "2026-10-31T16:00:00Z", "", "2026-11-01T03:59:59.999999999Z"},
		{"Havana: next midnight is skipped", daysFromIssue(0), havana, "2026-03-07T16:00:00Z", "", "2026-03-08T04:59:59.999999999Z"},
		{"Santiago: next midnight is skipped", daysFromIssue(0), santiago, "2026-09-05T16:00:00Z", "", "2026-09-06T03:59:59.999999999Z"},
		{"Santiago: 25-hour day", daysFromIssue(0), santiago, "2026-04-04T12:00:00Z", "", "2026-04-05T03:59:59.999999999Z"},

		// Leap days.
		{"days across Feb 29", daysFromIssue(3), time.UTC, "2028-02-27T12:00:00Z", "", "2028-03-01T23:59:59.999999999Z"},
		{"days across Feb 28 in a common year", daysFromIssue(3), time.UTC, "2026-02-27T12:00:00Z", "", "2026-03-02T23:59:59.999999999Z"},
		{"one day onto Feb 29", daysFromIssue(1), time.UTC, "2028-02-28T12:00:00Z", "", "2028-02-29T23:59:59.999999999Z"},
		{"issued on Feb 29", daysFromIssue(1), time.UTC, "2028-02-29T12:00:00Z", "", "2028-03-01T23:59:59.999999999Z"},
		{"365 days from Feb 29", daysFromIssue(365), time.UTC, "2028-02-29T12:00:00Z", "", "2029-02-28T23:59:59.999999999Z"},

		// Month ends.
		{"0 months: end of the issue month", monthEnds(0), time.UTC, "2026-03-31T12:00:00Z", "", "2026-03-31T23:59:59.999999999Z"},
		{"Jan 31 + 1 month: end of February", monthEnds(1), time.UTC, "2026-01-31T12:00:00Z", "", "2026-02-28T23:59:59.999999999Z"},
		{"Jan 31 + 1 month in a leap year", monthEnds(1), time.UTC, "2028-01-31T12:00:00Z", "", "2028-02-29T23:59:59.999999999Z"},
		{"issued on Feb 29, 0 months", monthEnds(0), time.UTC, "2028-02-29T12:00:00Z", "", "2028-02-29T23:59:59.999999999Z"},
		{"issued on Feb 29, 12 months", monthEnds(12), time.UTC, "2028-02-29T12:00:00Z", "", "2029-02-28T23:59:59.999999999Z"},
		{"Oct 31 + 1 month: November has 30 days", monthEnds(1), time.UTC, "2026-10-31T12:00:00Z", "", "2026-11-30T23:59:59.999999999Z"},
		{"over the year end", monthEnds(1), time.UTC, "2026-12-15T12:00:00Z", "", "2027-01-31T23:59:59.999999999Z"},
		{"14 months", monthEnds(14), time.UTC, "2026-12-15T12:00:00Z", "", "2028-02-29T23:59:59.999999999Z"},
		{"month of the store, not UTC", monthEnds(0), ny, "2026-06-01T02:00:00Z", "", "2026-06-01T03:59:59.999999999Z"},
		{"month end in Berlin (CET)", monthEnds(1), berlin, "2026-01-15T12:00:00Z", "", "2026-02-28T22:59:59.999999999Z"},
		{"month end capped", monthEnds(3), time.UTC, "2026-01-15T12:00:00Z", "2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := ruleTestOffer()
			o.Expiry = tc.expiry
			o.ValidUntil = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
			if tc.until != "" {
				o.ValidUntil = timeForTest(t, tc.until)
			}
			var issued time.Time
			if tc.issued != "" {
				issued = timeForTest(t, tc.issued)
			}
			got := CouponExpiry(o, issued, tc.loc)
			var want time.Time
			if tc.want != "" {
				want = timeForTest(t, tc.want)
			}
			if !got.Equal(want) {
				t.Fatalf("expiry %s, want %s", got.UTC().Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano))
			}
		})
	}
}

// TestDayLengthsOnDSTDays checks the building blocks: a spring-forward day has 23 hours,
// a fall-back day 25, and days start where the previous one ended.
func TestDayLengthsOnDSTDays(t *testing.T) {
	cases := []struct {
		zone  string
		day   civilDate
		hours time.Duration
	}{
		{"America/New_York", civilDate{2026, 3, 8}, 23},
		{"America/New_York", civilDate{2026, 11, 1}, 25},
		{"America/New_York", civilDate{2026, 6, 10}, 24},
		{"Europe/Berlin", civilDate{2026, 3, 29}, 23},
		{"Europe/Berlin", civilDate{2026, 10, 25}, 25},
		{"America/Havana", civilDate{2026, 3, 8}, 23},
		{"America/Havana", civilDate{2026, 11, 1}, 25},
		{"America/Santiago", civilDate{2026, 9, 6}, 23},
		{"America/Santiago", civilDate{2026, 4, 4}, 25},
		{"Australia/Lord_Howe", civilDate{2026, 10, 4}, 23}, // a 30-minute shift
	}
	for _, tc := range cases {
		t.Run(tc.zone+"/"+time.Date(tc.day.year, tc.day.month, tc.day.day, 0, 0, 0, 0, time.UTC).Format(time.DateOnly), func(t *testing.T) {
			loc := zoneForTest(t, tc.zone)
			start, end := startOfDay(tc.day, loc), endOfDay(tc.day, loc)
			if got := dateIn(start, loc); got != tc.day {
				t.Errorf("start %v is on %v", start, got)
			}
			if got := dateIn(start.Add(-time.Nanosecond), loc); got == tc.day {
				t.Errorf("the instant before the start %v is still on the day", start)
			}
			if got := dateIn(end, loc); got != tc.day {
				t.Errorf("end %v is on %v", end, got)
			}
			if got := dateIn(end.Add(time.Nanosecond), loc); got == tc.day {
				t.Errorf("the instant after the end %v is still on the day", end)
			}
			length := end.Sub(start) + time.Nanosecond
			want := tc.hours * time.Hour
			if tc.zone == "Australia/Lord_Howe" {
				want = 23*time.Hour + 30*time.Minute
			}
			if length != want {
				t.Errorf("day lasts %v, want %v", length, want)
			}
		})
	}
}

// TestStartOfDayEveryDay walks ten years of days in zones with unusual transitions and
// checks the defining property: the start is on the day and the instant before is not.
func TestStartOfDayEveryDay(t *testing.T) {
	for _, zone := range []string{"America/New_York", "Europe/Berlin", "America/Havana", "America/Santiago",
		"Atlantic/Azores", "America/Asuncion", "Asia/Amman", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham"} {
		loc := zoneForTest(t, zone)
		for d := (civilDate{2020, 1, 1}); d.year < 2030; d = d.addDays(1) {
			s := startOfDay(d, loc)
			if dateIn(s, loc) != d || dateIn(s.Add(-time.Nanosecond), loc) == d {
				t.Fatalf("%s %v: start %v is not the first instant of the day", zone, d, s)
			}
		}
	}
}

func TestCivilDate(t *testing.T) {
	if got := (civilDate{2028, 2, 29}).addDays(365); got != (civilDate{2029, 2, 28}) {
		t.Errorf("2028-02-29 + 365 days = %v", got)
	}
	if got := (civilDate{2026, 1, 31}).lastOfMonthAfter(1); got != (civilDate{2026, 2, 28}) {
		t.Errorf("end of the month after January 31: %v", got)
	}
	if got := (civilDate{2026, 12, 31}).lastOfMonthAfter(2); got != (civilDate{2027, 2, 28}) {
		t.Errorf("end of the second month after December: %v", got)
	}
	if got := (civilDate{2028, 2, 28}).daysUntil(civilDate{2028, 3, 1}); got != 2 {
		t.Errorf("days from 2028-02-28 to 2028-03-01 = %d", got)
	}
	if got := (civilDate{2026, 3, 1}).daysUntil(civilDate{2026, 2, 28}); got != -1 {
		t.Errorf("days backwards = %d", got)
	}
}

// TestEvaluateEndOfDayExpiry redeems a days_from_issue coupon around the end of its last
// day, on a DST day.
func TestEvaluateEndOfDayExpiry(t *testing.T) {
	ny := zoneForTest(t, "America/New_York")
	a := ruleTestAttempt()
	a.Location = ny
	a.Offer.Expiry = Expiry{Mode: ExpiryDaysFromIssue, Days: 1}
	a.Coupon.IssuedAt = wallClock(ny, 2026, 3, 7, 10, 0)
	a.Coupon.ExpiresAt = CouponExpiry(*a.Offer, a.Coupon.IssuedAt, ny)

	for _, tc := range []struct {
		name string
		at   time.Time
		code Code
	}{
		{"last minute of the last day", wallClock(ny, 2026, 3, 8, 23, 59), ""},
		{"the expiry instant itself", a.Coupon.ExpiresAt, ""},
		{"one nanosecond later", a.Coupon.ExpiresAt.Add(time.Nanosecond), CodeExpired},
		{"next local midnight", wallClock(ny, 2026, 3, 9, 0, 0), CodeExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := a
			b.At = tc.at
			checkDecision(t, Evaluate(b), tc.code, "", 4000, b.Bill)
		})
	}
}

func TestRedemptionStartsAt(t *testing.T) {
	ny := zoneForTest(t, "America/New_York")
	berlin := zoneForTest(t, "Europe/Berlin")
	santiago := zoneForTest(t, "America/Santiago")
	daysAfter := func(n int) RedemptionStart { return RedemptionStart{Mode: StartDaysAfterIssue, Days: n} }
	from := timeForTest(t, "2026-07-01T10:00:00Z")
	cases := []struct {
		name    string
		start   RedemptionStart
		loc     *time.Location
		issued  time.Time
		created time.Time
		want    time.Time
	}{
		{"immediate is the issue time", RedemptionStart{Mode: StartImmediate}, ny, from, time.Time{}, from},
		{"empty mode is immediate", RedemptionStart{}, ny, from, time.Time{}, from},
		{"from date", RedemptionStart{Mode: StartFromDate, Date: from}, ny, time.Time{}, time.Time{}, from},
		{"2 days after 23:50 on the 1st: 00:00 on the 3rd", daysAfter(2), ny, wallClock(ny, 2026, 6, 1, 23, 50), time.Time{}, wallClock(ny, 2026, 6, 3, 0, 0)},
		{"created, never issued", daysAfter(2), ny, time.Time{}, wallClock(ny, 2026, 6, 1, 23, 50), wallClock(ny, 2026, 6, 3, 0, 0)},
		{"0 days: start of the issue day", daysAfter(0), ny, wallClock(ny, 2026, 6, 1, 23, 50), time.Time{}, wallClock(ny, 2026, 6, 1, 0, 0)},
		{"onto a spring-forward day", daysAfter(1), berlin, wallClock(berlin, 2026, 3, 28, 12, 0), time.Time{}, timeForTest(t, "2026-03-28T23:00:00Z")},
		{"day after a fall-back day", daysAfter(1), berlin, wallClock(berlin, 2026, 10, 25, 12, 0), time.Time{}, timeForTest(t, "2026-10-25T23:00:00Z")},
		{"onto a day whose midnight is skipped", daysAfter(1), santiago, timeForTest(t, "2026-09-05T16:00:00Z"), time.Time{}, timeForTest(t, "2026-09-06T04:00:00Z")},
		{"across Feb 29", daysAfter(2), time.UTC, timeForTest(t, "2028-02-28T09:00:00Z"), time.Time{}, timeForTest(t, "2028-03-01T00:00:00Z")},
		{"no issue time", daysAfter(2), ny, time.Time{}, time.Time{}, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := ruleTestOffer()
			o.Rules.RedemptionStart = tc.start
			c := ruleTestCoupon()
			c.IssuedAt, c.CreatedAt = tc.issued, tc.created
			if got := RedemptionStartsAt(o, c, tc.loc); !got.Equal(tc.want) {
				t.Fatalf("start %s, want %s", got.UTC().Format(time.RFC3339Nano), tc.want.UTC().Format(time.RFC3339Nano))
			}
		})
	}
}

// TestEvaluateStartOnSkippedMidnight: in Santiago, 2026-09-06 starts at 01:00 local
// because midnight is skipped; a coupon starting that day opens at that instant.
func TestEvaluateStartOnSkippedMidnight(t *testing.T) {
	santiago := zoneForTest(t, "America/Santiago")
	a := ruleTestAttempt()
	a.Location = santiago
	a.Store.Timezone = "America/Santiago"
	a.Offer.Rules.RedemptionStart = RedemptionStart{Mode: StartDaysAfterIssue, Days: 1}
	a.Coupon.IssuedAt = timeForTest(t, "2026-09-05T16:00:00Z")

	a.At = timeForTest(t, "2026-09-06T03:59:59.999999999Z")
	checkDecision(t, Evaluate(a), CodeRuleViolation, RuleRedemptionStart, -1, a.Bill)
	a.At = timeForTest(t, "2026-09-06T04:00:00Z")
	checkDecision(t, Evaluate(a), "", "", 4000, a.Bill)
}

func TestEffectiveStatus(t *testing.T) {
	o := ruleTestOffer()
	inside := timeForTest(t, "2026-06-10T12:00:00Z")
	after := o.ValidUntil.Add(time.Second)
	cases := []struct {
		name string
		edit func(c *Coupon, o *Offer)
		now  time.Time
		want string
	}{
		{"active", nil, inside, CouponActive},
		{"empty status is active", func(c *Coupon, _ *Offer) { c.Status = "" }, inside, CouponActive},
		{"revoked", func(c *Coupon, _ *Offer) { c.Status = CouponRevoked }, inside, CouponRevoked},
		{"revoked beats expired", func(c *Coupon, _ *Offer) { c.Status = CouponRevoked }, after, CouponRevoked},
		{"stored redeemed", func(c *Coupon, _ *Offer) { c.Status = CouponRedeemed }, inside, CouponRedeemed},
		{"used up by count", func(c *Coupon, _ *Offer) { c.Redemptions = 1 }, inside, CouponRedeemed},
		{"not used up with a limit of 2", func(c *Coupon, o *Offer) {
			c.Redemptions = 1
			o.Rules.MaxRedemptionsPerCoupon = 2
		}, inside, CouponActive},
		{"redeemed beats expired", func(c *Coupon, _ *Offer) { c.Status = CouponRedeemed }, after, CouponRedeemed},
		{"expired with the offer", nil, after, CouponExpired},
		{"at the offer's end", nil, o.ValidUntil, CouponActive},
		{"expired by its own expiry", func(c *Coupon, _ *Offer) { c.ExpiresAt = inside.Add(-time.Nanosecond) }, inside, CouponExpired},
		{"at its own expiry", func(c *Coupon, _ *Offer) { c.ExpiresAt = inside }, inside, CouponActive},
		{"stored expired", func(c *Coupon, _ *Offer) { c.Status = CouponExpired }, inside, CouponExpired},
		{"before the offer starts is active", nil, o.ValidFrom.Add(-time.Hour), CouponActive},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, o := ruleTestCoupon(), ruleTestOffer()
			if tc.edit != nil {
				tc.edit(&c, &o)
			}
			if got := EffectiveStatus(c, o, tc.now); got != tc.want {
				t.Fatalf("status %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEffectiveExpiry(t *testing.T) {
	o := ruleTestOffer()
	c := ruleTestCoupon()
	if got := EffectiveExpiry(c, o); !got.Equal(o.ValidUntil) {
		t.Errorf("with the offer: %v", got)
	}
	c.ExpiresAt = o.ValidUntil.Add(-time.Hour)
	if got := EffectiveExpiry(c, o); !got.Equal(c.ExpiresAt) {
		t.Errorf("own expiry first: %v", got)
	}
	c.ExpiresAt = o.ValidUntil.Add(time.Hour)
	if got := EffectiveExpiry(c, o); !got.Equal(o.ValidUntil) {
		t.Errorf("offer end first: %v", got)
	}
	o.ValidUntil = time.Time{}
	if got := EffectiveExpiry(c, o); !got.Equal(c.ExpiresAt) {
		t.Errorf("offer without end: %v", got)
	}
}
