package tillkeep

import (
	"fmt"
	"strings"
)

// Money is an amount in integer minor units (cents) of an ISO 4217 currency. Floats
// never appear: a rounding error in a discount is a rounding error in someone's till.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// NewMoney returns amount minor units of currency.
func NewMoney(amount int64, currency string) Money {
	return Money{Amount: amount, Currency: currency}
}

// ValidCurrency reports whether c has the shape of an ISO 4217 code: three upper-case
// letters. The list of codes changes over time, so the shape is all we enforce.
func ValidCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// Validate checks that m is a non-negative amount in a well-formed currency.
func (m Money) Validate() error {
	if !ValidCurrency(m.Currency) {
		return Errorf(CodeInvalidRequest, "currency %q is not an ISO 4217 code", m.Currency)
	}
	if m.Amount < 0 {
		return Errorf(CodeInvalidRequest, "amount %d is negative", m.Amount)
	}
	return nil
}

// String formats m as "40.00 USD". It assumes two minor digits, which is right for most
// currencies and is only used for humans.
func (m Money) String() string {
	sign := ""
	a := m.Amount
	if a < 0 {
		sign, a = "-", -a
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, a/100, a%100, strings.TrimSpace(m.Currency))
}
