package tillkeep

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Percent is a percentage exact to a hundredth of a percent, held as an integer number
// of basis points (1250 is 12.5 %). It reads and writes as a plain JSON number, parsed
// from its decimal text so that no float rounding ever touches a discount.
type Percent int64

// PercentFromBasisPoints returns bp/100 percent.
func PercentFromBasisPoints(bp int64) Percent { return Percent(bp) }

// BasisPoints returns p in hundredths of a percent.
func (p Percent) BasisPoints() int64 { return int64(p) }

// String formats p as a decimal: "15", "12.5", "0.01".
func (p Percent) String() string {
	// The sign is written apart from the digits: -0.5 has a whole part of 0, which
	// carries no sign of its own.
	sign, magnitude := "", uint64(p)
	if p < 0 {
		sign, magnitude = "-", -magnitude
	}
	whole, frac := magnitude/100, magnitude%100
	switch {
	case frac == 0:
		return sign + strconv.FormatUint(whole, 10)
	case frac%10 == 0:
		return fmt.Sprintf("%s%d.%d", sign, whole, frac/10)
	default:
		return fmt.Sprintf("%s%d.%02d", sign, whole, frac)
	}
}

// MarshalJSON writes p as a JSON number.
func (p Percent) MarshalJSON() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalJSON reads a JSON number with at most two decimals.
func (p *Percent) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("percent must be a number: %w", err)
	}
	v, err := ParsePercent(n.String())
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParsePercent parses a decimal such as "15" or "12.5" exactly.
func ParsePercent(s string) (Percent, error) {
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, "eE") {
		return 0, fmt.Errorf("percent %q: exponents are not accepted", s)
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	if hasFrac && (len(frac) == 0 || len(frac) > 2) {
		return 0, fmt.Errorf("percent %q: at most two decimals", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > 1_000_000 || w < -1_000_000 {
		return 0, fmt.Errorf("percent %q is not a number", s)
	}
	var f int64
	if hasFrac {
		for len(frac) < 2 {
			frac += "0"
		}
		f, err = strconv.ParseInt(frac, 10, 64)
		if err != nil || f < 0 {
			return 0, fmt.Errorf("percent %q is not a number", s)
		}
	}
	if strings.HasPrefix(whole, "-") {
		f = -f
	}
	return Percent(w*100 + f), nil
}
