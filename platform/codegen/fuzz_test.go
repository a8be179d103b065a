package codegen

import (
	"testing"
)

// FuzzGenerator builds generators from arbitrary states: NewGenerator either refuses
// with an error or makes well-formed, distinct codes; nothing panics.
func FuzzGenerator(f *testing.F) {
	f.Add(fixedKey(1), uint64(0), 10, false, "")
	f.Add(fixedKey(2), uint64(9_990), 4, true, "")
	f.Add(fixedKey(3), uint64(1<<40), 32, false, "SPR-")
	f.Add(fixedKey(4), uint64(5), 5, false, "AB")
	f.Add([]byte("short"), uint64(0), 10, true, "x")
	f.Fuzz(func(t *testing.T, key []byte, next uint64, length int, numeric bool, prefix string) {
		charset := CharsetAlphanumeric
		if numeric {
			charset = CharsetNumeric
		}
		for _, common := range []bool{false, true} {
			st := State{Key: key, Next: next, Length: length, Charset: charset, Prefix: prefix, RandomizedCommon: common}
			g, err := NewGenerator(st)
			if err != nil {
				continue
			}
			seen := map[string]bool{}
			for range 3 {
				if g.Remaining() == 0 {
					if _, err := g.Next(); err == nil {
						t.Fatalf("%+v: Next succeeded with nothing remaining", st)
					}
					break
				}
				code, err := g.Next()
				if err != nil {
					t.Fatalf("%+v: Next: %v with %d remaining", st, err, g.Remaining())
				}
				checkShape(t, code, st)
				if seen[code] {
					t.Fatalf("%+v: code %q repeated", st, code)
				}
				seen[code] = true
			}
		}
	})
}
