package wire

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
)

// reference encodes a coupon line the slow, obvious way.
func reference(c tillkeep.Coupon) []byte {
	sc := CompactCoupon(c)
	b, err := json.Marshal(SnapshotLine{Type: LineCoupon, Coupon: &sc})
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// referenceParse decodes a coupon line the slow, obvious way.
func referenceParse(line []byte) (tillkeep.Coupon, bool) {
	var l SnapshotLine
	if err := json.Unmarshal(line, &l); err != nil || l.Type != LineCoupon || l.Coupon == nil {
		return tillkeep.Coupon{}, false
	}
	return l.Coupon.Coupon(), true
}

func randomCoupon(r *rand.Rand) tillkeep.Coupon {
	strs := []string{"", "K1", "SPRING-2026_x", "with space", `quo"te`, `back\slash`, "<b>&</b>", "tab\there", "ünïcödé", "日本", "\x01ctl"}
	pick := func() string { return strs[r.IntN(len(strs))] }
	at := func() time.Time {
		switch r.IntN(4) {
		case 0:
			return time.Time{}
		case 1:
			return time.Unix(r.Int64N(4e9), 0).UTC()
		case 2:
			return time.Unix(r.Int64N(4e9), r.Int64N(1e9)).UTC()
		default:
			return time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(time.FixedZone("x", 3600*(r.IntN(25)-12)))
		}
	}
	c := tillkeep.Coupon{Code: pick(), OfferID: pick(), CustomerID: pick(), Status: pick(), IssuedAt: at(), ExpiresAt: at(), RevokedAt: at()}
	if r.IntN(2) == 0 {
		c.Redemptions = r.IntN(1 << 20)
	}
	return c
}

func TestCouponLineMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var p couponParser
	fast := 0
	for i := range 20_000 {
		c := randomCoupon(r)
		want := reference(c)
		got := appendCouponLine(nil, &c)
		if !bytes.Equal(got, want) {
			t.Fatalf("coupon %d %+v:\n got %s\nwant %s", i, c, got, want)
		}
		slow, ok := referenceParse(want)
		if !ok {
			t.Fatalf("encoding/json cannot read its own line %s", want)
		}
		parsed, ok := p.parse(want)
		if !ok {
			continue
		}
		fast++
		if !reflect.DeepEqual(parsed, slow) {
			t.Fatalf("line %s:\nfast %#v\nslow %#v", want, parsed, slow)
		}
	}
	if fast < 200 {
		t.Fatalf("only %d of 20000 lines took the fast path", fast)
	}
}

func TestCouponLineFallsBack(t *testing.T) {
	var p couponParser
	for _, line := range []string{
		`{"t":"coupon","c":{"k":"A\u0042","o":"O","s":"active"}}` + "\n",
		`{"t":"coupon","c":{"o":"O","k":"A","s":"active","extra":1}}` + "\n",
		`{"t":"coupon","c":{"k":"A","o":"O","s":"active","r":-1}}` + "\n",
		`{"t":"coupon","c":{"k":"A","o":"O","s":"active","r":01}}` + "\n",
		`{"t":"coupon","c":{"k":"A","o":"O","s":"active","r":1.5}}` + "\n",
		`{"t":"coupon","c":{"k":"A","o":"O","s":"active","i":"yesterday"}}` + "\n",
		`{"t":"coupon","c":{"k":"A","o":"O","s":"active"}} ` + "\n",
		`{"t":"coupon", "c":{"k":"A","o":"O","s":"active"}}` + "\n",
		`{"t":"coupon","c":{"k":"A","o":"O","s":"active"}}`,
	} {
		if c, ok := p.parse([]byte(line)); ok {
			t.Errorf("fast path took %q as %+v", line, c)
		}
	}
}

// Whatever the fast path accepts, encoding/json reads the same way.
func FuzzCouponLine(f *testing.F) {
	f.Add([]byte(`{"t":"coupon","c":{"k":"A","o":"O","u":"C1","s":"active","r":3,"i":"2026-01-02T03:04:05.6Z","x":"2026-02-02T00:00:00+01:00"}}` + "\n"))
	f.Add([]byte(`{"t":"coupon","c":{"k":"<&>","o":"O","s":"revoked","v":"2026-01-02T03:04:05Z"}}` + "\n"))
	f.Add([]byte(`{"t":"coupon","c":{}}` + "\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		var p couponParser
		fast, ok := p.parse(line)
		if !ok {
			return
		}
		slow, ok := referenceParse(line)
		if !ok {
			t.Fatalf("fast path accepted %q, encoding/json refuses it", line)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("line %q:\nfast %#v\nslow %#v", line, fast, slow)
		}
	})
}
