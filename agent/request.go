package agent

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"unicode"
	"unicode/utf8"

	"github.com/tillkeep/tillkeep"
)

// Field limits of the POS API. They are generous for any real POS and small enough
// that a hostile or broken client cannot bloat the idempotency index.
const (
	maxCodeLength          = 128
	maxTransactionIDLength = 128
	maxCustomerIDLength    = 128
	maxRedemptionIDLength  = 128
)

// ValidateRequest asks whether a coupon would be accepted for a bill.
type ValidateRequest struct {
	Code       string
	Bill       tillkeep.Money
	CustomerID string
}

// RedeemRequest asks to redeem a coupon. TransactionID is the POS's idempotency key.
type RedeemRequest struct {
	Code          string
	TransactionID string
	Bill          tillkeep.Money
	CustomerID    string
}

func (v ValidateRequest) validate() error {
	if err := checkText("code", v.Code, 1, maxCodeLength); err != nil {
		return err
	}
	if err := checkText("customer_id", v.CustomerID, 0, maxCustomerIDLength); err != nil {
		return err
	}
	return checkBill(v.Bill)
}

func (r RedeemRequest) validate() error {
	if err := checkText("code", r.Code, 1, maxCodeLength); err != nil {
		return err
	}
	if err := checkText("transaction_id", r.TransactionID, 1, maxTransactionIDLength); err != nil {
		return err
	}
	if err := checkText("customer_id", r.CustomerID, 0, maxCustomerIDLength); err != nil {
		return err
	}
	return checkBill(r.Bill)
}

func checkBill(m tillkeep.Money) error {
	if !tillkeep.ValidCurrency(m.Currency) {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "bill.currency %q is not an ISO 4217 code (three upper-case letters)", m.Currency)
	}
	if m.Amount < 0 {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "bill.amount %d is negative", m.Amount)
	}
	return nil
}

// checkText checks a string field: valid UTF-8, no control characters, and between
// minLen and maxLen characters.
func checkText(field, s string, minLen, maxLen int) error {
	if !utf8.ValidString(s) {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "%s is not valid UTF-8", field)
	}
	n := utf8.RuneCountInString(s)
	if n < minLen {
		if minLen == 1 {
			return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "%s is required", field)
		}
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "%s must be at least %d characters", field, minLen)
	}
	if n > maxLen {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "%s is longer than %d characters", field, maxLen)
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "%s contains a control character", field)
		}
	}
	return nil
}

// RequestHash is the digest the idempotency index keeps for a redemption request: a
// retry of a transaction_id must carry the same code, bill and customer. Each field is
// length-prefixed so that no two different requests encode alike ("AB"+"C" vs
// "A"+"BC"), and the amount is fixed-width binary so no number formatting is involved.
// The encoding is versioned: stored hashes must stay comparable across releases.
func RequestHash(r RedeemRequest) string {
	h := sha256.New()
	h.Write([]byte("tillkeep/redemption-request/v1"))
	var buf [binary.MaxVarintLen64]byte
	field := func(s string) {
		n := binary.PutUvarint(buf[:], uint64(len(s)))
		h.Write(buf[:n])
		h.Write([]byte(s))
	}
	field(r.Code)
	field(r.TransactionID)
	var amount [8]byte
	binary.BigEndian.PutUint64(amount[:], uint64(r.Bill.Amount))
	h.Write(amount[:])
	field(r.Bill.Currency)
	field(r.CustomerID)
	return hex.EncodeToString(h.Sum(nil))
}
