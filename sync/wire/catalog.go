package wire

import (
	"time"

	"github.com/tillkeep/tillkeep"
)

// Catalog snapshots are streamed as NDJSON (Content-Type SnapshotContentType): one
// SnapshotLine per line, a header first, then the offers, then the coupons in strictly
// ascending code order, then a trailer whose SHA256 is the hex digest of every byte
// before the trailer line and whose counts are the number of offer and coupon lines. A
// till applies a snapshot only when the trailer arrives and the digest and counts match,
// so a cut connection or a corrupted byte never leaves a half catalog behind.
//
// SnapshotWriter and SnapshotReader (snapshot.go) are the one implementation of this
// format: the platform writes with the first, the till reads with the second.
const SnapshotContentType = "application/x-ndjson"

// SnapshotFormat is the version of the snapshot stream.
const SnapshotFormat = 1

// Snapshot line types.
const (
	LineHeader  = "header"
	LineOffer   = "offer"
	LineCoupon  = "coupon"
	LineTrailer = "end"
)

// SnapshotLine is one line of a snapshot stream; Type says which field is set.
type SnapshotLine struct {
	Type    string           `json:"t"`
	Header  *SnapshotHeader  `json:"h,omitempty"`
	Offer   *tillkeep.Offer  `json:"o,omitempty"`
	Coupon  *SnapshotCoupon  `json:"c,omitempty"`
	Trailer *SnapshotTrailer `json:"e,omitempty"`
}

// SnapshotHeader opens a snapshot.
type SnapshotHeader struct {
	Format int `json:"format"`
	// Epoch is the platform database the snapshot comes from. Feed sequences are
	// meaningful only within one epoch: a till keeps it with its cursor and sends it
	// with every delta request.
	Epoch   string         `json:"epoch"`
	StoreID string         `json:"store_id"`
	Store   tillkeep.Store `json:"store"`
	// Seq is the feed position the snapshot is consistent with; deltas continue after it.
	Seq  uint64    `json:"seq"`
	AsOf time.Time `json:"as_of"`
	// ReflectsTillSeq is the requesting till's acknowledged journal point, read in the
	// same transaction as the coupons: their counts include that till's entries up to it.
	ReflectsTillSeq uint64 `json:"reflects_till_seq"`
}

// SnapshotCoupon is a coupon in the compact form of the feed: short keys, because a
// large store's snapshot holds millions of them.
type SnapshotCoupon struct {
	Code        string    `json:"k"`
	OfferID     string    `json:"o"`
	CustomerID  string    `json:"u,omitempty"`
	Status      string    `json:"s"`
	Redemptions int       `json:"r,omitempty"`
	IssuedAt    time.Time `json:"i,omitzero"`
	ExpiresAt   time.Time `json:"x,omitzero"`
	RevokedAt   time.Time `json:"v,omitzero"`
}

// Coupon converts to the domain type.
func (c SnapshotCoupon) Coupon() tillkeep.Coupon {
	return tillkeep.Coupon{Code: c.Code, OfferID: c.OfferID, CustomerID: c.CustomerID, Status: c.Status,
		Redemptions: c.Redemptions, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, RevokedAt: c.RevokedAt}
}

// CompactCoupon converts from the domain type. CreatedAt is left out: no rule reads it.
func CompactCoupon(c tillkeep.Coupon) SnapshotCoupon {
	return SnapshotCoupon{Code: c.Code, OfferID: c.OfferID, CustomerID: c.CustomerID, Status: c.Status,
		Redemptions: c.Redemptions, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, RevokedAt: c.RevokedAt}
}

// SnapshotTrailer closes a snapshot.
type SnapshotTrailer struct {
	Offers  int    `json:"offers"`
	Coupons int    `json:"coupons"`
	SHA256  string `json:"sha256"`
}

// Query parameters of the delta request GET PathCatalog.
const (
	// QuerySince is the feed sequence the till's catalog stands at (required).
	QuerySince = "since"
	// QueryLimit bounds how many change-log entries one page covers (optional).
	QueryLimit = "limit"
	// QueryEpoch is the epoch of the till's catalog (optional, but a till always sends
	// it): another epoch than the platform's answers CodeRefetch.
	QueryEpoch = "epoch"
)

// Page sizes of the delta feed, in change-log entries. A page of the default size holds
// at most that many coupons, about 1.5 MB of JSON, and is applied by the till in one
// transaction.
const (
	DefaultDeltaLimit = 10_000
	MaxDeltaLimit     = 50_000
)

// Delta is the answer to GET PathCatalog?since=SEQ: the CURRENT state of every offer and
// coupon of the store's scope that changed after since, up to Seq — not a replay of
// history: a coupon changed five times appears once. When More is true the till asks
// again with since=Seq. A till whose cursor is older than the platform's retained
// history, ahead of its head (a platform restored from an older backup) or of another
// epoch gets 410 with the code CodeRefetch instead, and fetches a snapshot after pushing
// its journal.
//
// The last page carries an ETag (a weak validator of the platform's head and the till's
// acknowledged point); a till that sends it back in If-None-Match while nothing changed
// gets 304 Not Modified with no body.
type Delta struct {
	Epoch string    `json:"epoch"`
	Since uint64    `json:"since"`
	Seq   uint64    `json:"seq"`
	More  bool      `json:"more"`
	AsOf  time.Time `json:"as_of"`
	// Offers holds every changed offer still in the store's scope, and the offer of
	// every coupon in Coupons, so that a page is always applicable on its own.
	Offers []tillkeep.Offer `json:"offers"`
	// RemovedOffers are offers that left the store's scope: ended (past their grace
	// period) or no longer aimed at the store. The till drops them with their coupons.
	RemovedOffers []string         `json:"removed_offers"`
	Coupons       []SnapshotCoupon `json:"coupons"`
	// Outcomes are the current statuses of this till's redemptions that reconciliation
	// changed in the page's range: a redemption demoted to conflict (or promoted back)
	// after its upload was answered, or reversed by ops. Only the requesting till's.
	Outcomes []RedemptionOutcome `json:"outcomes,omitempty"`
	// ReflectsTillSeq is set (non-nil) only on the last page: only then do the coupon
	// states include everything the till's acknowledged entries changed.
	ReflectsTillSeq *uint64 `json:"reflects_till_seq,omitempty"`
}

// CodeRefetch is the error code of a 410 answer to a delta request.
const CodeRefetch = tillkeep.CodeRefetchRequired

// RedemptionOutcome is a redemption's status after reconciliation, as the feed tells
// the till that made it.
type RedemptionOutcome struct {
	RedemptionID string `json:"redemption_id"`
	TillID       string `json:"till_id"`
	Status       string `json:"status"`
	ConflictKind string `json:"conflict_kind,omitempty"`
	ConflictID   string `json:"conflict_id,omitempty"`
}
