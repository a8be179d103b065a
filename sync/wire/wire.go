// Package wire defines the messages of the till-to-platform protocol: enrollment, online
// redemption, journal upload and the catalog feed. Both ends import it, so the agent's
// sync client and the platform's till API cannot drift apart. It holds the message types
// and constants, and the one codec of the catalog snapshot stream (SnapshotWriter on the
// platform, SnapshotReader on the till), so that the format and its checksum are defined
// in one place. It does no I/O of its own beyond the reader or writer it is given;
// docs/protocol.md describes how the messages are used.
package wire

import (
	"time"

	"github.com/tillkeep/tillkeep"
)

// Paths of the till API, relative to the platform's base URL.
const (
	PathEnroll      = "/v1/till/enroll"
	PathValidate    = "/v1/till/validate"
	PathRedemptions = "/v1/till/redemptions"
	PathJournal     = "/v1/till/journal"
	PathCatalog     = "/v1/till/catalog"
	PathSnapshot    = "/v1/till/catalog/snapshot"
)

// ReversePath is the path that reverses redemption id.
func ReversePath(id string) string { return PathRedemptions + "/" + id + "/reverse" }

// EnrollRequest is sent once by a till, with the store's enrollment token, to obtain its
// own credentials.
type EnrollRequest struct {
	StoreID     string `json:"store_id"`
	TillID      string `json:"till_id"`
	EnrollToken string `json:"enroll_token"`
}

// EnrollResponse carries the till's own bearer token. The platform keeps only a hash.
type EnrollResponse struct {
	StoreID string `json:"store_id"`
	TillID  string `json:"till_id"`
	Token   string `json:"token"`
	Epoch   string `json:"epoch"`
	// AckedSeq is the till's acknowledged journal point: a re-enrolled till keeps it,
	// so its journal continues where the platform stands.
	AckedSeq   uint64    `json:"acked_seq"`
	ServerTime time.Time `json:"server_time"`
}

// RedeemRequest asks the platform to decide a redemption online. RedemptionID is made
// by the till once and reused if the till later records the same redemption offline.
type RedeemRequest struct {
	RedemptionID  string         `json:"redemption_id"`
	TransactionID string         `json:"transaction_id"`
	Code          string         `json:"code"`
	Bill          tillkeep.Money `json:"bill"`
	CustomerID    string         `json:"customer_id,omitempty"`
	WallTime      time.Time      `json:"wall_time"`
	HLC           tillkeep.HLC   `json:"hlc"`
}

// RedeemResponse is the platform's acceptance of an online redemption. ServerTime is
// the platform's clock when it answered: the till seeds its hybrid logical clock from it.
type RedeemResponse struct {
	RedemptionID string         `json:"redemption_id"`
	Mode         string         `json:"mode"`
	Discount     tillkeep.Money `json:"discount"`
	Status       string         `json:"status"`
	ServerTime   time.Time      `json:"server_time,omitzero"`
}

// ValidateRequest asks the platform to judge a coupon without redeeming it.
type ValidateRequest struct {
	Code       string         `json:"code"`
	Bill       tillkeep.Money `json:"bill"`
	CustomerID string         `json:"customer_id,omitempty"`
}

// ValidateResponse is the platform's verdict: valid with the discount, or the
// refusal's code (Reason), rule and human message.
type ValidateResponse struct {
	Valid    bool            `json:"valid"`
	Discount *tillkeep.Money `json:"discount,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	Rule     string          `json:"rule,omitempty"`
	Message  string          `json:"message,omitempty"`
}

// ReverseResponse answers a reversal.
type ReverseResponse struct {
	RedemptionID string `json:"redemption_id"`
	Status       string `json:"status"`
}

// PushRequest uploads journal entries in sequence order. Epoch is the platform epoch the
// till last saw ("" before it saw any).
type PushRequest struct {
	Epoch   string                  `json:"epoch"`
	Entries []tillkeep.JournalEntry `json:"entries"`
}

// EntryResult is the platform's outcome for one uploaded entry.
type EntryResult struct {
	Seq          uint64 `json:"seq"`
	RedemptionID string `json:"redemption_id"`
	// Status is the redemption's status after reconciliation: accepted, reversed or
	// conflict; EntryIgnored for a reversal of a redemption the platform does not hold
	// for this till (recorded as an anomaly).
	Status       string `json:"status"`
	ConflictKind string `json:"conflict_kind,omitempty"`
	ConflictID   string `json:"conflict_id,omitempty"`
	// Duplicate is true when the entry had been applied before (a retry, or an online
	// redemption the platform recorded when it decided it).
	Duplicate bool `json:"duplicate,omitempty"`
}

// EntryIgnored is the EntryResult status of a reversal the platform could not apply.
const EntryIgnored = "ignored"

// PushResponse acknowledges an upload. AckedSeq is the platform's acknowledged point for
// the till after the upload committed; it can be LOWER than what the till believed (a
// platform restored from an older backup), in which case the till re-sends from there.
// ResumeFrom is set when the batch did not start right after AckedSeq (a gap).
type PushResponse struct {
	Epoch      string        `json:"epoch"`
	AckedSeq   uint64        `json:"acked_seq"`
	ResumeFrom uint64        `json:"resume_from,omitempty"`
	ServerTime time.Time     `json:"server_time"`
	Results    []EntryResult `json:"results"`
}

// AckState is the platform's acknowledged point for a till (GET PathJournal), with the
// platform's clock for the till's hybrid logical clock.
type AckState struct {
	Epoch      string    `json:"epoch"`
	AckedSeq   uint64    `json:"acked_seq"`
	ServerTime time.Time `json:"server_time"`
}
