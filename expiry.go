package tillkeep

import "time"

// Store-local calendar arithmetic, shared by expiry, the redemption start and the rules
// that count days.
//
// Every "until" instant in tillkeep is inclusive: an offer is valid up to and including
// ValidUntil, and a coupon may be redeemed up to and including ExpiresAt. The end of a
// store-local day is therefore the last representable instant before the next local
// midnight (that midnight minus 1ns), and a moment is expired only when it is after the
// expiry instant. Starts are inclusive too: a coupon whose redemption starts on the 3rd
// may be redeemed from the first instant of the 3rd.
//
// Days are calendar days of the store's time zone, never multiples of 24 hours: a DST day
// has 23 or 25 hours and still counts as one day.

// civilDate is a calendar date without a time zone.
type civilDate struct {
	year  int
	month time.Month
	day   int
}

// dateIn returns the calendar date of t in loc.
func dateIn(t time.Time, loc *time.Location) civilDate {
	y, m, d := t.In(loc).Date()
	return civilDate{y, m, d}
}

// normalized turns an out-of-range date such as February 30 into a real one.
func (d civilDate) normalized() civilDate {
	y, m, dd := time.Date(d.year, d.month, d.day, 12, 0, 0, 0, time.UTC).Date()
	return civilDate{y, m, dd}
}

// addDays returns the date n calendar days after d.
func (d civilDate) addDays(n int) civilDate {
	return civilDate{d.year, d.month, d.day + n}.normalized()
}

// lastOfMonthAfter returns the last day of the month n months after d's month.
func (d civilDate) lastOfMonthAfter(n int) civilDate {
	// Day 0 of the following month is the last day of the wanted month; starting from
	// day 1 keeps January 31 + 1 month from spilling into March.
	return civilDate{d.year, d.month + time.Month(n) + 1, 0}.normalized()
}

// daysUntil returns how many calendar days lie from d to e (negative when e is earlier).
func (d civilDate) daysUntil(e civilDate) int64 {
	from := time.Date(d.year, d.month, d.day, 0, 0, 0, 0, time.UTC).Unix()
	to := time.Date(e.year, e.month, e.day, 0, 0, 0, 0, time.UTC).Unix()
	return (to - from) / 86400
}

func (d civilDate) before(e civilDate) bool {
	if d.year != e.year {
		return d.year < e.year
	}
	if d.month != e.month {
		return d.month < e.month
	}
	return d.day < e.day
}

// startOfDay returns the first instant of date d in loc. Where a DST change happens at
// midnight (Santiago, Havana, Beirut), local midnight is missing or happens twice;
// time.Date may then pick an instant of the previous day or the second midnight, so the
// zone's transition bounds are used to find the real first instant of the day.
func startOfDay(d civilDate, loc *time.Location) time.Time {
	t := time.Date(d.year, d.month, d.day, 0, 0, 0, 0, loc)
	if dateIn(t, loc).before(d) {
		// Midnight was skipped: the day begins at the transition that skipped it.
		if _, end := t.ZoneBounds(); !end.IsZero() {
			t = end
		}
	}
	// Midnight repeated: step back into the previous zone period while that period
	// still holds a midnight of the same date.
	for range 4 {
		start, _ := t.ZoneBounds()
		if start.IsZero() {
			break
		}
		prev := start.Add(-time.Nanosecond)
		if dateIn(prev, loc) != d {
			break
		}
		_, offset := prev.Zone()
		earlier := time.Date(d.year, d.month, d.day, 0, 0, 0, 0, time.FixedZone("", offset)).In(loc)
		if !earlier.Before(t) || dateIn(earlier, loc) != d {
			break
		}
		t = earlier
	}
	return t
}

// endOfDay returns the last instant of date d in loc (the next local midnight - 1ns).
func endOfDay(d civilDate, loc *time.Location) time.Time {
	return startOfDay(d.addDays(1), loc).Add(-time.Nanosecond)
}

// orUTC returns loc, or UTC when loc is nil.
func orUTC(loc *time.Location) *time.Location {
	if loc == nil {
		return time.UTC
	}
	return loc
}

// capAt returns t, or limit when limit is set and earlier.
func capAt(t, limit time.Time) time.Time {
	if !limit.IsZero() && limit.Before(t) {
		return limit
	}
	return t
}

// CouponExpiry returns the instant a coupon of offer o issued at issuedAt stops being
// redeemable, for Coupon.ExpiresAt; loc is the time zone of the issuing store's calendar
// (nil: UTC). The instant is inclusive: the coupon may still be redeemed at it.
//
//   - with_offer (and an empty or unknown mode): the zero time. Coupon.ExpiresAt zero
//     means "with the offer", so such coupons follow the offer's end even when it is
//     moved later.
//   - days_from_issue: the end of the store-local day Days after the issue day (Days 0:
//     the end of the issue day), capped by the offer's ValidUntil.
//   - month_ends_from_issue: the end of the last day of the month Months after the issue
//     month (Months 0: the end of the issue month), capped by the offer's ValidUntil.
//
// A zero issuedAt has no day to count from; the coupon then expires with the offer (the
// zero time).
func CouponExpiry(o Offer, issuedAt time.Time, loc *time.Location) time.Time {
	if issuedAt.IsZero() {
		return time.Time{}
	}
	loc = orUTC(loc)
	issued := dateIn(issuedAt, loc)
	switch o.Expiry.Mode {
	case ExpiryDaysFromIssue:
		return capAt(endOfDay(issued.addDays(o.Expiry.Days), loc), o.ValidUntil)
	case ExpiryMonthEndsFromIssue:
		return capAt(endOfDay(issued.lastOfMonthAfter(o.Expiry.Months), loc), o.ValidUntil)
	default:
		return time.Time{}
	}
}

// EffectiveExpiry returns the last instant at which coupon c of offer o may be redeemed:
// the earlier of c.ExpiresAt and o.ValidUntil, ignoring zero values. The zero time means
// the coupon never expires (only an unchecked offer without ValidUntil allows that).
func EffectiveExpiry(c Coupon, o Offer) time.Time {
	if c.ExpiresAt.IsZero() {
		return o.ValidUntil
	}
	return capAt(c.ExpiresAt, o.ValidUntil)
}

// EffectiveStatus returns the status of coupon c at now: revoked, redeemed, expired or
// active, in that order of precedence (the same order Evaluate refuses in). A coupon
// whose redemptions reached the offer's max_redemptions_per_coupon is redeemed even when
// its stored status has not caught up. A stored status Evaluate does not know counts as
// active here; Evaluate refuses it.
func EffectiveStatus(c Coupon, o Offer, now time.Time) string {
	switch {
	case c.Status == CouponRevoked:
		return CouponRevoked
	case c.Status == CouponRedeemed || c.Redemptions >= maxRedemptionsPerCoupon(o.Rules):
		return CouponRedeemed
	case c.Status == CouponExpired:
		return CouponExpired
	}
	if exp := EffectiveExpiry(c, o); !exp.IsZero() && now.After(exp) {
		return CouponExpired
	}
	return CouponActive
}

// issueTime returns when c was issued: IssuedAt, or CreatedAt for a coupon that was
// created ready to use (bearer codes uploaded in bulk). Zero when neither is known.
func issueTime(c Coupon) time.Time {
	if !c.IssuedAt.IsZero() {
		return c.IssuedAt
	}
	return c.CreatedAt
}

// redemptionStart returns the first instant coupon c may be redeemed by its offer's
// redemption_start rule, and false when that cannot be known (days_after_issue on a
// coupon without an issue time).
func redemptionStart(o Offer, c Coupon, loc *time.Location) (time.Time, bool) {
	switch o.Rules.RedemptionStart.Mode {
	case StartDaysAfterIssue:
		issued := issueTime(c)
		if issued.IsZero() {
			return time.Time{}, false
		}
		loc = orUTC(loc)
		return startOfDay(dateIn(issued, loc).addDays(o.Rules.RedemptionStart.Days), loc), true
	case StartFromDate:
		return o.Rules.RedemptionStart.Date, true
	default: // immediate
		return issueTime(c), true
	}
}

// RedemptionStartsAt returns the first instant coupon c of offer o may be redeemed by
// the offer's redemption_start rule, in loc's calendar (nil: UTC):
//
//   - immediate (or empty): the issue time (IssuedAt, else CreatedAt; zero if neither),
//     although Evaluate does not refuse a coupon redeemed before its recorded issue time,
//     since till and platform clocks differ;
//   - days_after_issue: the first instant of the store-local day Days after the issue
//     day: with 2, a coupon issued at 23:50 on the 1st starts at 00:00 on the 3rd;
//   - from_date: RedemptionStart.Date.
//
// The offer's own ValidFrom applies in addition. For days_after_issue on a coupon with
// no issue time the start cannot be counted: the result is the zero time, and Evaluate
// refuses such a coupon with rule redemption_start rather than guess.
func RedemptionStartsAt(o Offer, c Coupon, loc *time.Location) time.Time {
	start, _ := redemptionStart(o, c, loc)
	return start
}
