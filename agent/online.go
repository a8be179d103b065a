package agent

import (
	"context"
	"errors"
	"time"

	"github.com/tillkeep/tillkeep"
)

// Online is the till's path to the platform, provided by package sync. The Redeemer
// asks it first whenever one is attached and falls back to deciding offline when it
// cannot get an answer.
//
// Error contract, the same for every method:
//   - a *tillkeep.Error whose code is a refusal (tillkeep.IsRefusal) is the platform's
//     final word: the Redeemer passes it to the POS and does not try offline;
//   - any other error means "no decision was obtained" (timeout, connection error, 5xx,
//     circuit breaker open, not enrolled yet...): the Redeemer falls back to offline.
//     Implementations should wrap ErrPlatformUnreachable so logs say why.
//
// The Redeemer bounds every call with platform.timeout; implementations should still
// honour ctx and return promptly (at once while their breaker is open).
type Online interface {
	// Redeem asks the platform to redeem a coupon. It must be idempotent by
	// RedemptionID: the Redeemer reuses the id when it retries an attempt whose first
	// online call may have landed, and when it falls back to offline, so the platform
	// can tell "same redemption again" from "a second redemption".
	Redeem(ctx context.Context, r OnlineRedemption) (OnlineResult, error)
	// Validate asks the platform whether a redemption would be accepted, changing
	// nothing.
	Validate(ctx context.Context, v OnlineValidation) (OnlineResult, error)
	// Reverse tells the platform at once that a redemption was reversed at this till.
	// The reversal is already durable in the till's journal when it is called, and the
	// journal upload carries it anyway, so a failure is only logged. It must be
	// idempotent by RedemptionID.
	Reverse(ctx context.Context, r OnlineReversal) error
	// Reachable reports whether the platform is currently believed reachable (the
	// circuit breaker is closed). /v1/status reports mode "online" only while it is true.
	Reachable() bool
}

// OnlineRedemption is one redemption attempt as sent to the platform.
type OnlineRedemption struct {
	// RedemptionID is the UUIDv7 made once for this attempt; the journal entry, if any,
	// carries the same id whichever path decided.
	RedemptionID  string
	TransactionID string
	Code          string
	CustomerID    string
	Bill          tillkeep.Money
	StoreID       string
	TillID        string
	// At is the till's wall clock when the attempt started.
	At time.Time
}

// OnlineValidation is a validation as sent to the platform.
type OnlineValidation struct {
	Code       string
	CustomerID string
	Bill       tillkeep.Money
	StoreID    string
	TillID     string
	At         time.Time
}

// OnlineResult is the platform's acceptance.
type OnlineResult struct {
	// RedemptionID is the id under which the platform holds the redemption: the one
	// sent, or that of an earlier attempt of the same POS transaction. "" means the one
	// sent.
	RedemptionID string
	Discount     tillkeep.Money
	// OfferID is the coupon's offer, journaled with the redemption; "" leaves the
	// offer of the cached coupon (if any) in the entry.
	OfferID string
}

// OnlineReversal is a reversal as sent to the platform.
type OnlineReversal struct {
	RedemptionID string
	// EntryID is the id of the reversal's journal entry, which the upload will carry.
	EntryID string
	At      time.Time
}

// ErrPlatformUnreachable marks an online call that got no decision. Implementations
// wrap it; the Redeemer treats every non-refusal error the same way.
var ErrPlatformUnreachable = errors.New("platform unreachable")

// onlineVerdict is how the Redeemer reads an Online call's outcome.
type onlineVerdict int

const (
	onlineAccepted onlineVerdict = iota
	onlineRefused
	onlineNoDecision
)

// classifyOnline sorts an Online error: nil accepted, a coded refusal final, anything
// else "no decision" (fall back to offline).
func classifyOnline(err error) onlineVerdict {
	if err == nil {
		return onlineAccepted
	}
	var coded *tillkeep.Error
	if errors.As(err, &coded) && tillkeep.IsRefusal(coded.Code) {
		return onlineRefused
	}
	return onlineNoDecision
}
