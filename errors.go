package tillkeep

import (
	"errors"
	"fmt"
)

// Code is a stable, snake_case error or refusal code. Codes are part of the external
// contract: POS integrations switch on them, so a code is never renamed or reused.
type Code string

// Refusal codes: a coupon may not be redeemed (HTTP 422 on redemption, "reason" on
// validation).
const (
	CodeUnknownCoupon     Code = "unknown_coupon"
	CodeAlreadyRedeemed   Code = "already_redeemed"
	CodeRevoked           Code = "revoked"
	CodeExpired           Code = "expired"
	CodeNotYetValid       Code = "not_yet_valid"
	CodeRuleViolation     Code = "rule_violation"
	CodeOfflineNotAllowed Code = "offline_not_allowed"
	CodeOfflineLimit      Code = "offline_limit"
	CodeCatalogStale      Code = "catalog_stale"
	// CodeCurrencyMismatch refuses a bill in another currency than the offer's.
	CodeCurrencyMismatch Code = "currency_mismatch"
	// CodeNotReversible refuses reversing a redemption that cannot be reversed (already
	// reversed, or made at another till).
	CodeNotReversible Code = "not_reversible"
	// CodeIssuanceLimit refuses issuing a coupon beyond an issuance rule of its offer.
	CodeIssuanceLimit Code = "issuance_limit"
	// CodeNothingCreated answers a coupon batch of which no row could be created.
	CodeNothingCreated Code = "nothing_created"
)

// Request and infrastructure codes.
const (
	CodeInvalidRequest   Code = "invalid_request"       // 400
	CodeUnauthorized     Code = "unauthorized"          // 401
	CodeForbidden        Code = "forbidden"             // 403
	CodeNotFound         Code = "not_found"             // 404
	CodeIdempotencyReuse Code = "idempotency_key_reuse" // 409
	CodeConflict         Code = "conflict"              // 409
	CodeBodyTooLarge     Code = "body_too_large"        // 413
	CodeUnavailable      Code = "unavailable"           // 503
	CodeStorageFull      Code = "storage_full"          // 507
	CodeInternal         Code = "internal"              // 500
	// CodeRefetchRequired answers a catalog delta request whose cursor the platform
	// cannot continue from (history compacted past it, a cursor ahead of the platform's
	// head, another epoch): the till pushes its journal, then fetches a snapshot.
	CodeRefetchRequired Code = "refetch_required" // 410
)

// Enrollment codes: why the platform refused to enroll a till.
const (
	CodeUnknownStore        Code = "unknown_store"         // 404
	CodeTillAlreadyEnrolled Code = "till_already_enrolled" // 409
)

// Error is a coded domain error. Message is a human sentence; Rule names the redemption
// rule behind a CodeRuleViolation (and other rule-driven refusals), such as "min_bill".
type Error struct {
	Code    Code
	Message string
	Rule    string
	// Err is the underlying cause, if any. It is never shown to API clients, because it
	// may carry paths or driver details.
	Err error
}

func (e *Error) Error() string {
	msg := string(e.Code)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is lets errors.Is(err, &Error{Code: X}) match on the code alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == "" && t.Rule == ""
}

// Errorf builds a coded error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// RuleError builds a rule_violation naming the rule that refused.
func RuleError(rule, format string, args ...any) *Error {
	return &Error{Code: CodeRuleViolation, Rule: rule, Message: fmt.Sprintf(format, args...)}
}

// Wrap attaches a code and message to a lower-level cause.
func Wrap(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// ErrorCode returns the code of err, or CodeInternal when err carries none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorRule returns the rule named by err, or "".
func ErrorRule(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Rule
	}
	return ""
}

// ErrorMessage returns the human message of err that is safe to show to API clients.
// Causes without a code are hidden behind a generic sentence, since they can carry file
// paths, SQL or tokens.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		if e.Message != "" {
			return e.Message
		}
		return string(e.Code)
	}
	return "internal error"
}

// IsRefusal reports whether code refuses a redemption for business reasons, as opposed
// to a malformed request or an infrastructure failure.
func IsRefusal(code Code) bool {
	switch code {
	case CodeUnknownCoupon, CodeAlreadyRedeemed, CodeRevoked, CodeExpired, CodeNotYetValid,
		CodeRuleViolation, CodeOfflineNotAllowed, CodeOfflineLimit, CodeCatalogStale,
		CodeCurrencyMismatch, CodeNotReversible, CodeIssuanceLimit:
		return true
	}
	return false
}
