package wire

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/tillkeep/tillkeep"
)

// A store's snapshot is almost entirely coupon lines, a million of them for a large
// store, so both ends handle them without reflection: appendCouponLine writes exactly
// the bytes encoding/json writes for SnapshotLine{Type: LineCoupon, Coupon: ...}, and
// parseCouponLine reads that layout back. Anything parseCouponLine does not recognise
// (escapes, other keys, another order) goes through encoding/json instead, so the
// fast path never changes what a line means. couponline_test.go holds them to it.

const couponLinePrefix = `{"t":"coupon","c":{`

// appendCouponLine appends c's snapshot line, newline included.
func appendCouponLine(b []byte, c *tillkeep.Coupon) []byte {
	b = append(b, couponLinePrefix...)
	b = append(b, `"k":`...)
	b = appendString(b, c.Code)
	b = append(b, `,"o":`...)
	b = appendString(b, c.OfferID)
	if c.CustomerID != "" {
		b = append(b, `,"u":`...)
		b = appendString(b, c.CustomerID)
	}
	b = append(b, `,"s":`...)
	b = appendString(b, c.Status)
	if c.Redemptions != 0 {
		b = append(b, `,"r":`...)
		b = strconv.AppendInt(b, int64(c.Redemptions), 10)
	}
	for _, f := range [...]struct {
		key string
		t   time.Time
	}{{`,"i":`, c.IssuedAt}, {`,"x":`, c.ExpiresAt}, {`,"v":`, c.RevokedAt}} {
		if !f.t.IsZero() {
			b = append(b, f.key...)
			b = appendTime(b, f.t)
		}
	}
	return append(b, "}}\n"...)
}

// plainByte reports whether encoding/json writes c as it is inside a string (it escapes
// control characters, quotes, backslashes and, for HTML safety, < > &).
func plainByte(c byte) bool {
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainByte(s[i]) {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendTime(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		// encoding/json refuses such times; a coupon cannot hold one, but the line
		// must still be what encoding/json would make of it.
		q, err := json.Marshal(t)
		if err != nil {
			return append(b, `null`...)
		}
		return append(b, q...)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// couponParser decodes coupon lines and shares the strings that repeat across them
// (offer ids and statuses), so a million coupons do not hold a million copies.
type couponParser struct {
	shared map[string]string
}

func (p *couponParser) share(b []byte) string {
	if s, ok := p.shared[string(b)]; ok {
		return s
	}
	if p.shared == nil {
		p.shared = map[string]string{}
	}
	if len(p.shared) > 4096 {
		return string(b) // not a repeating value after all
	}
	s := string(b)
	p.shared[s] = s
	return s
}

// parse decodes a coupon line in the writer's layout; ok is false for anything else.
func (p *couponParser) parse(line []byte) (c tillkeep.Coupon, ok bool) {
	rest, found := bytes.CutPrefix(line, []byte(couponLinePrefix))
	if !found {
		return c, false
	}
	for first := true; ; first = false {
		if len(rest) > 0 && rest[0] == '}' {
			break
		}
		if !first {
			if len(rest) == 0 || rest[0] != ',' {
				return c, false
			}
			rest = rest[1:]
		}
		if len(rest) < 4 || rest[0] != '"' || rest[2] != '"' || rest[3] != ':' {
			return c, false
		}
		key := rest[1]
		rest = rest[4:]
		if key == 'r' {
			n := 0
			for n < len(rest) && n < 18 && rest[n] >= '0' && rest[n] <= '9' {
				n++
			}
			if n == 0 || (n > 1 && rest[0] == '0') {
				return c, false
			}
			v, err := strconv.Atoi(string(rest[:n]))
			if err != nil {
				return c, false
			}
			c.Redemptions, rest = v, rest[n:]
			continue
		}
		if len(rest) == 0 || rest[0] != '"' {
			return c, false
		}
		end := 1
		for end < len(rest) && rest[end] != '"' {
			if !plainByte(rest[end]) && rest[end] != '<' && rest[end] != '>' && rest[end] != '&' {
				return c, false // escapes and non-ASCII: leave them to encoding/json
			}
			end++
		}
		if end == len(rest) {
			return c, false
		}
		quoted, value := rest[:end+1], rest[1:end]
		rest = rest[end+1:]
		switch key {
		case 'k':
			c.Code = string(value)
		case 'o':
			c.OfferID = p.share(value)
		case 'u':
			c.CustomerID = string(value)
		case 's':
			c.Status = p.share(value)
		case 'i', 'x', 'v':
			var t time.Time
			if err := t.UnmarshalJSON(quoted); err != nil {
				return c, false
			}
			switch key {
			case 'i':
				c.IssuedAt = t
			case 'x':
				c.ExpiresAt = t
			default:
				c.RevokedAt = t
			}
		default:
			return c, false
		}
	}
	if !bytes.Equal(rest, []byte("}}\n")) {
		return c, false
	}
	return c, true
}
