package store

import (
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
)

func TestCouponCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 2, 28, 23, 59, 59, 999_999_999, time.FixedZone("X", 3600))
	cases := []tillkeep.Coupon{
		{Code: "A", Status: tillkeep.CouponActive},
		{Code: "B", Status: tillkeep.CouponRedeemed, Redemptions: 3, CustomerID: "cust-ü-1"},
		{Code: "C", Status: tillkeep.CouponRevoked, RevokedAt: at, IssuedAt: at.Add(-time.Hour), CreatedAt: at.Add(-2 * time.Hour), ExpiresAt: at.AddDate(1, 0, 0)},
		{Code: "D", Status: tillkeep.CouponExpired, Redemptions: 1 << 20},
		{Code: "E", Status: "some_future_status", IssuedAt: time.Date(1969, 12, 31, 23, 0, 0, 1, time.UTC)},
		{Code: "F", Status: ""},
	}
	for i, c := range cases {
		num := uint32(i * 1_000_003)
		v := encodeCoupon(&c, num)
		got, gotNum, err := decodeCoupon([]byte(c.Code), v)
		if err != nil {
			t.Fatalf("%s: %v", c.Code, err)
		}
		if gotNum != num {
			t.Fatalf("%s: offer number %d, want %d", c.Code, gotNum, num)
		}
		if n, ok := couponOfferNum(v); !ok || n != num {
			t.Fatalf("%s: couponOfferNum = %d, %v", c.Code, n, ok)
		}
		want := c
		want.OfferID = ""
		for _, p := range []*time.Time{&want.IssuedAt, &want.CreatedAt, &want.ExpiresAt, &want.RevokedAt} {
			if !p.IsZero() {
				*p = p.UTC()
			}
		}
		if got != want {
			t.Fatalf("%s: round trip\n got %+v\nwant %+v", c.Code, got, want)
		}
		// Every truncation is an error, never a panic or a silent partial coupon.
		for n := range len(v) {
			if _, _, err := decodeCoupon([]byte(c.Code), v[:n]); err == nil {
				t.Fatalf("%s: truncated to %d of %d bytes decoded without error", c.Code, n, len(v))
			}
		}
	}
}

func FuzzDecodeCoupon(f *testing.F) {
	f.Add(encodeCoupon(&tillkeep.Coupon{Code: "A", Status: tillkeep.CouponActive, CustomerID: "c", IssuedAt: time.Unix(1e9, 5)}, 7))
	f.Add([]byte{1, 0xff, 0x80})
	f.Fuzz(func(t *testing.T, v []byte) {
		c, num, err := decodeCoupon([]byte("K"), v)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same bytes when it came from the
		// encoder's canonical form, and must always re-decode to the same coupon.
		again, num2, err := decodeCoupon([]byte("K"), encodeCoupon(&c, num))
		if err != nil || num2 != num || again != c {
			t.Fatalf("re-encoding changed the coupon: %+v/%d vs %+v/%d (%v)", c, num, again, num2, err)
		}
	})
}
