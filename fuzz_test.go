package tillkeep

import (
	"encoding/binary"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// fuzzInput turns fuzz bytes into choices; once the bytes run out every choice is 0,
// so short inputs still build complete attempts.
type fuzzInput struct{ b []byte }

func (f *fuzzInput) byte() byte {
	if len(f.b) == 0 {
		return 0
	}
	v := f.b[0]
	f.b = f.b[1:]
	return v
}

func (f *fuzzInput) bool() bool { return f.byte()&1 == 1 }

// intn returns a value in [0, n).
func (f *fuzzInput) intn(n int) int { return int(f.byte()) % n }

// int64 returns 8 bytes as an int64, sign included.
func (f *fuzzInput) int64() int64 {
	var buf [8]byte
	for i := range buf {
		buf[i] = f.byte()
	}
	return int64(binary.LittleEndian.Uint64(buf[:]))
}

// small returns a signed value in roughly [-16, 240), weighted towards small limits.
func (f *fuzzInput) small() int { return int(f.byte()) - 16 }

func (f *fuzzInput) pick(options ...string) string { return options[f.intn(len(options))] }

// duration returns up to about ±4 years, in seconds.
func (f *fuzzInput) duration() time.Duration {
	v := int64(int32(binary.LittleEndian.Uint32([]byte{f.byte(), f.byte(), f.byte(), f.byte()})))
	return time.Duration(v%(4*366*86400)) * time.Second
}

// money amounts: mostly ordinary, sometimes extreme.
func (f *fuzzInput) amount() int64 {
	switch f.intn(4) {
	case 0:
		return f.int64()
	case 1:
		return int64(f.byte())
	default:
		return int64(binary.LittleEndian.Uint32([]byte{f.byte(), f.byte(), f.byte(), 0}))
	}
}

// rarely is true for about one choice in eight: the builder keeps most of an attempt
// plausible, so that inputs reach the later rules and the discount instead of stopping
// at the first malformed field.
func (f *fuzzInput) rarely() bool { return f.byte()%8 == 0 }

// sometimes is true for about one choice in four.
func (f *fuzzInput) sometimes() bool { return f.byte()%4 == 0 }

// buildAttempt makes an attempt from fuzz bytes. It is deterministic, so building twice
// from the same bytes gives two equal, independent attempts.
func buildAttempt(data []byte, zones []*time.Location) (Attempt, time.Time) {
	f := &fuzzInput{b: data}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	loc := zones[f.intn(len(zones))]
	usual := func(good string, odd ...string) string {
		if f.rarely() {
			return f.pick(odd...)
		}
		return good
	}

	o := Offer{ID: usual("SPRING40", "OTHER", ""), Name: "fuzz"}
	o.Discount = Discount{Type: usual(f.pick(DiscountFixed, DiscountPercent), "bogo", "")}
	switch {
	case f.rarely():
		o.Discount.Amount, o.Discount.Percent, o.Discount.MaxAmount = f.int64(), Percent(f.int64()), f.int64()
	case o.Discount.Type == DiscountFixed:
		o.Discount.Amount = f.amount()
	default:
		o.Discount.Percent = Percent(1 + int(binary.LittleEndian.Uint16([]byte{f.byte(), f.byte()}))%maxBasisPoints)
		if f.sometimes() {
			o.Discount.MaxAmount = f.amount()
		}
	}
	o.Discount.Currency = usual(f.pick("USD", ""), "EUR", "usd")
	o.ValidFrom = base.Add(f.duration())
	o.ValidUntil = o.ValidFrom.Add(absDuration(f.duration()))
	if f.rarely() {
		o.ValidUntil = time.Time{}
	}
	o.Expiry = Expiry{Mode: f.pick(ExpiryWithOffer, ExpiryDaysFromIssue, ExpiryMonthEndsFromIssue, "")}
	o.Expiry.Days, o.Expiry.Months = f.intn(400), f.intn(30)
	if f.rarely() {
		o.Expiry.Days, o.Expiry.Months = f.small(), f.small()
	}
	o.Offline.Allowed = !f.rarely()
	r := &o.Rules
	r.AllowAnyone = f.bool()
	if f.sometimes() {
		r.RedemptionStart = RedemptionStart{Mode: usual(f.pick(StartImmediate, StartDaysAfterIssue, StartFromDate), "", "x"), Days: f.intn(10)}
		if f.bool() {
			r.RedemptionStart.Date = base.Add(f.duration())
		}
	}
	r.MaxRedemptionsPerCoupon = f.intn(4)
	if f.sometimes() {
		r.MaxRedemptionsPerCustomer = f.intn(4)
	}
	if f.sometimes() {
		r.MaxRedemptionsPerOffer = int64(f.small())
	}
	if f.sometimes() {
		r.MinDaysBetweenRedemptions = f.intn(10)
	}
	if f.sometimes() {
		r.Stores = []string{f.pick("S001", "S002")}
	}
	if f.sometimes() {
		r.Zones = []string{f.pick("north", "south")}
	}
	if f.sometimes() {
		r.Concepts = []string{f.pick("grocery", "fashion")}
	}
	if f.sometimes() {
		r.Tills = []string{f.pick("T01", "T02")}
	}
	if f.sometimes() {
		r.MinBill = f.amount() % 20000
	}
	if f.sometimes() {
		r.MaxBill = f.amount() % 50000
	}
	if f.sometimes() {
		r.DaysOfWeek = []string{f.pick("monday", "Tuesday", "wednesday", "THURSDAY", "friday", "saturday", "sunday", "funday"),
			f.pick("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
	}
	if f.sometimes() {
		r.DaysOfMonth = []int{f.intn(33), f.intn(33), f.intn(33)}
	}
	if f.sometimes() {
		r.HoursOfDay = []int{f.intn(25), f.intn(25), f.intn(25), f.intn(25)}
	}
	if f.sometimes() {
		n := &NewCustomerRule{RegisteredWithinDays: f.small()}
		if f.bool() {
			n.RegisteredFrom = base.Add(f.duration())
		}
		if f.bool() {
			n.RegisteredUntil = base.Add(f.duration())
		}
		if f.bool() {
			max := int64(f.small())
			n.MaxTransactions = &max
		}
		r.NewCustomersOnly = n
	}

	c := Coupon{
		Code:       "C1",
		OfferID:    usual(f.pick("SPRING40", ""), "OTHER"),
		CustomerID: f.pick("", "K1", "K2"),
		Status:     usual(f.pick(CouponActive, ""), CouponRedeemed, CouponRevoked, CouponExpired, "weird"),
	}
	if f.rarely() {
		c.Redemptions = f.small()
	}
	if !f.rarely() {
		c.IssuedAt = o.ValidFrom.Add(f.duration())
	}
	if f.bool() {
		c.CreatedAt = base.Add(f.duration())
	}
	issued := issueTime(c)
	if f.bool() {
		c.ExpiresAt = CouponExpiry(o, issued, loc)
	}

	// Mostly inside the offer's window, sometimes anywhere.
	at := o.ValidFrom.Add(time.Duration(float64(o.ValidUntil.Sub(o.ValidFrom)) * float64(f.byte()) / 255))
	if f.rarely() || o.ValidUntil.IsZero() {
		at = base.Add(f.duration())
	}
	bill := Money{Amount: f.amount(), Currency: usual("USD", "EUR", "usd", "")}
	if bill.Amount < 0 && !f.rarely() {
		bill.Amount = -(bill.Amount + 1)
	}
	a := Attempt{
		TillID:     f.pick("T01", "T02", ""),
		CustomerID: f.pick("", "K1", "K2"),
		Bill:       bill,
		At:         at,
		Location:   loc,
		Offline:    f.bool(),
	}
	if f.sometimes() {
		a.Usage = Usage{CouponRedemptions: f.small() % 4, CustomerRedemptions: f.small() % 4, OfferRedemptions: int64(f.small())}
	}
	if f.bool() {
		a.Usage.CustomerLastRedemption = at.Add(-absDuration(f.duration()) / 16)
	}
	if !f.rarely() {
		a.Offer = &o
	}
	if !f.rarely() {
		a.Coupon = &c
	}
	if !f.rarely() {
		a.Store = &Store{ID: f.pick("S001", "S002"), Zone: f.pick("north", "south"), Concept: f.pick("grocery", "fashion"),
			Currency: usual(f.pick("USD", ""), "EUR")}
	}
	if f.bool() {
		a.Customer = &Customer{ID: f.pick("K1", "K2"), Transactions: int64(f.small())}
		if f.bool() {
			a.Customer.RegisteredAt = at.Add(-absDuration(f.duration()) / 8)
		}
	}
	// Two draws: a missing time should be much rarer than other oddities.
	if first, second := f.rarely(), f.rarely(); first && second {
		a.At = time.Time{}
	}
	return a, issued
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// knownCodes are all codes a refusal may carry.
func knownCodes() map[Code]bool {
	m := map[Code]bool{}
	for _, c := range []Code{CodeUnknownCoupon, CodeAlreadyRedeemed, CodeRevoked, CodeExpired, CodeNotYetValid,
		CodeRuleViolation, CodeOfflineNotAllowed, CodeOfflineLimit, CodeCatalogStale, CodeCurrencyMismatch,
		CodeNotReversible, CodeIssuanceLimit, CodeNothingCreated, CodeInvalidRequest, CodeInternal} {
		m[c] = true
	}
	return m
}

func knownRules() map[string]bool {
	m := map[string]bool{}
	for _, r := range []string{RuleAllowAnyone, RuleRedemptionStart, RuleMaxRedemptionsPerCoupon,
		RuleMaxRedemptionsPerCustomer, RuleMaxRedemptionsPerOffer, RuleMinDaysBetween, RuleStores, RuleZones,
		RuleConcepts, RuleTills, RuleMinBill, RuleMaxBill, RuleDaysOfWeek, RuleDaysOfMonth, RuleHoursOfDay,
		RuleNewCustomersOnly} {
		m[r] = true
	}
	return m
}

func FuzzEvaluate(f *testing.F) {
	zones := []*time.Location{nil, time.UTC}
	for _, name := range []string{"America/New_York", "Europe/Berlin", "America/Havana", "America/Santiago", "Australia/Lord_Howe"} {
		zones = append(zones, zoneForTest(f, name))
	}
	codes, rules := knownCodes(), knownRules()

	f.Add([]byte{})
	f.Add([]byte("an ordinary attempt with some bytes in it"))
	f.Add([]byte{1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x80, 0, 0, 0, 1, 2, 3})

	f.Fuzz(func(t *testing.T, data []byte) {
		a, issued := buildAttempt(data, zones)
		pristine, _ := buildAttempt(data, zones)
		d := Evaluate(a)

		if again := Evaluate(a); !reflect.DeepEqual(d, again) {
			t.Fatalf("not deterministic: %+v then %+v", d, again)
		}
		if !reflect.DeepEqual(a, pristine) {
			t.Fatalf("Evaluate changed its input")
		}
		if d.Err != nil {
			if !codes[d.Err.Code] {
				t.Fatalf("unknown code %q", d.Err.Code)
			}
			if d.Err.Code == CodeRuleViolation && !rules[d.Err.Rule] {
				t.Fatalf("rule_violation names rule %q", d.Err.Rule)
			}
			if d.Err.Message == "" {
				t.Fatalf("refusal %s without a message", d.Err.Code)
			}
			if d.Discount != (Money{}) {
				t.Fatalf("refusal with a discount %v", d.Discount)
			}
		} else {
			if d.Discount.Amount < 0 || d.Discount.Amount > a.Bill.Amount {
				t.Fatalf("discount %d outside [0, bill %d]", d.Discount.Amount, a.Bill.Amount)
			}
			if d.Discount.Currency != a.Bill.Currency {
				t.Fatalf("discount in %q, bill in %q", d.Discount.Currency, a.Bill.Currency)
			}
			if a.Offline && !a.Offer.Offline.Allowed {
				t.Fatalf("accepted offline an offer that forbids it")
			}
			if exp := EffectiveExpiry(*a.Coupon, *a.Offer); !exp.IsZero() && a.At.After(exp) {
				t.Fatalf("accepted after the expiry %v", exp)
			}
			if EffectiveStatus(*a.Coupon, *a.Offer, a.At) != CouponActive {
				t.Fatalf("accepted a coupon whose status is %s", EffectiveStatus(*a.Coupon, *a.Offer, a.At))
			}
			revoked := a
			c := *a.Coupon
			c.Status = CouponRevoked
			revoked.Coupon = &c
			if d := Evaluate(revoked); d.Err == nil || d.Err.Code != CodeRevoked {
				t.Fatalf("the same attempt on a revoked coupon gave %+v", d)
			}
		}

		// A computed expiry is the offer's end or the last instant of a store-local day,
		// never before the issue day.
		if a.Coupon != nil && a.Offer != nil && !issued.IsZero() {
			loc := orUTC(a.Location)
			exp := CouponExpiry(*a.Offer, issued, loc)
			if !exp.IsZero() && !exp.Equal(a.Offer.ValidUntil) {
				if dateIn(exp, loc) == dateIn(exp.Add(time.Nanosecond), loc) {
					t.Fatalf("expiry %v is not the end of a local day", exp)
				}
				if a.Offer.Expiry.Days >= 0 && a.Offer.Expiry.Months >= 0 && dateIn(exp, loc).before(dateIn(issued, loc)) {
					t.Fatalf("expiry %v before the issue day of %v", exp, issued)
				}
			}
		}
	})
}

func FuzzParsePercent(f *testing.F) {
	for _, s := range []string{"15", "12.5", "0.01", "100", "0", "-0.5", "-1.25", " 7 ", "1e2", "1.", ".5", "+3.1", "1.234", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePercent(s)
		if err != nil {
			return
		}
		if bp := p.BasisPoints(); bp > 100_000_099 || bp < -100_000_099 {
			t.Fatalf("ParsePercent(%q) = %d basis points, beyond the accepted range", s, bp)
		}
		back, err := ParsePercent(p.String())
		if err != nil || back != p {
			t.Fatalf("ParsePercent(%q) = %d bp, formatted %q, parsed back %d bp (%v)", s, p.BasisPoints(), p.String(), back.BasisPoints(), err)
		}
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("marshal %d bp: %v", p.BasisPoints(), err)
		}
		var decoded Percent
		if err := json.Unmarshal(raw, &decoded); err != nil || decoded != p {
			t.Fatalf("JSON round trip of %d bp via %s gave %d (%v)", p.BasisPoints(), raw, decoded.BasisPoints(), err)
		}
	})
}
