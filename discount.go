package tillkeep

import (
	"math/bits"
	"strings"
)

// maxBasisPoints is 100 %.
const maxBasisPoints = 10_000

// ComputeDiscount returns what discount d takes off bill, in the bill's currency.
//
//   - fixed: Amount, but never more than the bill;
//   - percent: bill × Percent, exact in basis points and rounded up to the next minor
//     unit (rounding favours the customer), then capped by MaxAmount when set, and never
//     more than the bill.
//
// The product is computed in 128 bits, so any int64 bill works (1e15 minor units × 100 %
// would overflow int64). A malformed discount or bill is an *Error with
// CodeInvalidRequest; a discount in another currency than the bill is
// CodeCurrencyMismatch.
func ComputeDiscount(d Discount, bill Money) (Money, *Error) {
	if bill.Amount < 0 {
		return Money{}, Errorf(CodeInvalidRequest, "The bill amount is negative.")
	}
	if d.Currency != "" && !strings.EqualFold(d.Currency, bill.Currency) {
		return Money{}, Errorf(CodeCurrencyMismatch, "The bill is in %s but the discount is in %s.", bill.Currency, strings.ToUpper(d.Currency))
	}
	var amount int64
	switch d.Type {
	case DiscountFixed:
		if d.Amount <= 0 {
			return Money{}, Errorf(CodeInvalidRequest, "The fixed discount amount must be positive.")
		}
		amount = d.Amount
	case DiscountPercent:
		bp := d.Percent.BasisPoints()
		if bp <= 0 || bp > maxBasisPoints {
			return Money{}, Errorf(CodeInvalidRequest, "The discount percentage must be more than 0 and at most 100.")
		}
		if d.MaxAmount < 0 {
			return Money{}, Errorf(CodeInvalidRequest, "The discount cap must not be negative.")
		}
		amount = percentOf(bill.Amount, bp)
		if d.MaxAmount > 0 {
			amount = min(amount, d.MaxAmount)
		}
	default:
		return Money{}, Errorf(CodeInvalidRequest, "The discount type %q is neither fixed nor percent.", d.Type)
	}
	return Money{Amount: min(amount, bill.Amount), Currency: bill.Currency}, nil
}

// percentOf returns ceil(amount × bp / 10 000) for 0 <= amount and 0 <= bp <= 10 000.
// The 128-bit quotient is at most amount, so it fits in int64 and Div64 cannot overflow.
func percentOf(amount, bp int64) int64 {
	hi, lo := bits.Mul64(uint64(amount), uint64(bp))
	lo, carry := bits.Add64(lo, maxBasisPoints-1, 0)
	hi += carry
	q, _ := bits.Div64(hi, lo, maxBasisPoints)
	return int64(q)
}
