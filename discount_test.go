package tillkeep

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestComputeDiscount(t *testing.T) {
	usd := func(a int64) Money { return Money{Amount: a, Currency: "USD"} }
	pct := func(bp int64, maxAmount int64) Discount {
		d := Discount{Type: DiscountPercent, Percent: PercentFromBasisPoints(bp), MaxAmount: maxAmount}
		if maxAmount > 0 {
			d.Currency = "USD"
		}
		return d
	}
	fixed := func(a int64) Discount { return Discount{Type: DiscountFixed, Amount: a, Currency: "USD"} }
	cases := []struct {
		name string
		d    Discount
		bill Money
		want int64
		code Code
	}{
		{"fixed below the bill", fixed(4000), usd(10000), 4000, ""},
		{"fixed equal to the bill", fixed(4000), usd(4000), 4000, ""},
		{"fixed never above the bill", fixed(4000), usd(2999), 2999, ""},
		{"fixed on a zero bill", fixed(4000), usd(0), 0, ""},
		{"fixed zero amount", fixed(0), usd(100), 0, CodeInvalidRequest},
		{"fixed negative amount", fixed(-1), usd(100), 0, CodeInvalidRequest},
		{"fixed without currency takes the bill's", Discount{Type: DiscountFixed, Amount: 50}, usd(100), 50, ""},

		{"percent exact", pct(1000, 0), usd(1000), 100, ""},
		{"15% of 9.99 rounds up", pct(1500, 0), usd(999), 150, ""},         // 149.85
		{"12.5% of 0.01 rounds up to a cent", pct(1250, 0), usd(1), 1, ""}, // 0.125
		{"0.01% of 0.01", pct(1, 0), usd(1), 1, ""},
		{"0.01% of 100.00", pct(1, 0), usd(10000), 1, ""},
		{"0.01% of 100.01", pct(1, 0), usd(10001), 2, ""},   // 1.0001
		{"33.33% of 3.00", pct(3333, 0), usd(300), 100, ""}, // 99.99
		{"100% is the bill", pct(10000, 0), usd(12345), 12345, ""},
		{"percent of a zero bill", pct(5000, 0), usd(0), 0, ""},
		{"cap applies", pct(5000, 2000), usd(10000), 2000, ""},
		{"cap above the percent", pct(1000, 2000), usd(10000), 1000, ""},
		{"cap equal", pct(2000, 2000), usd(10000), 2000, ""},
		{"rounded value is capped", pct(1250, 125), usd(1001), 125, ""}, // 125.125 → 126 → cap 125

		{"large bill 1e15 at 100%", pct(10000, 0), usd(1e15), 1e15, ""},
		{"large bill 1e15 at 99.99%", pct(9999, 0), usd(1e15), 999_900_000_000_000, ""},
		{"large bill 1e15 at 12.34%, rounded up", pct(1234, 0), usd(1e15 + 1), 123_400_000_000_001, ""},
		{"max int64 at 100%", pct(10000, 0), usd(math.MaxInt64), math.MaxInt64, ""},
		{"max int64 at 50%", pct(5000, 0), usd(math.MaxInt64), math.MaxInt64/2 + 1, ""},
		{"fixed max int64", fixed(math.MaxInt64), usd(math.MaxInt64), math.MaxInt64, ""},

		{"percent zero", pct(0, 0), usd(100), 0, CodeInvalidRequest},
		{"percent negative", pct(-100, 0), usd(100), 0, CodeInvalidRequest},
		{"percent above 100", pct(10001, 0), usd(100), 0, CodeInvalidRequest},
		{"negative cap", Discount{Type: DiscountPercent, Percent: 1000, MaxAmount: -1}, usd(100), 0, CodeInvalidRequest},
		{"unknown type", Discount{Type: "bogo"}, usd(100), 0, CodeInvalidRequest},
		{"negative bill", fixed(10), usd(-1), 0, CodeInvalidRequest},
		{"currency mismatch", fixed(10), Money{Amount: 100, Currency: "EUR"}, 0, CodeCurrencyMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ComputeDiscount(tc.d, tc.bill)
			if tc.code != "" {
				if err == nil || err.Code != tc.code {
					t.Fatalf("got %v, %v; want error %s", got, err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if got.Amount != tc.want || got.Currency != tc.bill.Currency {
				t.Fatalf("discount %d %s, want %d %s", got.Amount, got.Currency, tc.want, tc.bill.Currency)
			}
		})
	}
}

// TestPercentOfMatchesBigInt compares the 128-bit arithmetic with math/big on random and
// boundary values.
func TestPercentOfMatchesBigInt(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(amount, bp int64) {
		want := new(big.Int).Mul(big.NewInt(amount), big.NewInt(bp))
		want.Add(want, big.NewInt(maxBasisPoints-1))
		want.Quo(want, big.NewInt(maxBasisPoints))
		if got := percentOf(amount, bp); !want.IsInt64() || got != want.Int64() {
			t.Fatalf("percentOf(%d, %d) = %d, want %s", amount, bp, got, want)
		}
		if got := percentOf(amount, bp); got > amount {
			t.Fatalf("percentOf(%d, %d) = %d is above the amount", amount, bp, got)
		}
	}
	for _, a := range []int64{0, 1, 9999, 10000, 10001, 1e15, math.MaxInt64 - 1, math.MaxInt64} {
		for _, bp := range []int64{0, 1, 3333, 5000, 9999, 10000} {
			check(a, bp)
		}
	}
	for range 20000 {
		check(rng.Int64(), rng.Int64N(maxBasisPoints+1))
		check(rng.Int64N(1e6), rng.Int64N(maxBasisPoints+1))
	}
}
