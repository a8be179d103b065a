package wire

import (
	"time"

	"github.com/tillkeep/tillkeep"
)

// Catalog snapshots are streamed as NDJSON (Content-Type SnapshotContentType): one
// SnapshotLine per line, a header first, then offers, then coupons in code order, then
// a trailer whose SHA256 is the hex digest of every byte before the trailer line. A
// till applies a snapshot only when the trailer arrives and the digest and counts match,
// so a cut connection never leaves a half catalog behind.
const SnapshotContentType = "application/x-ndjson"

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
	Format  int            `json:"format"`
	StoreID string         `json:"store_id"`
	Store   tillkeep.Store `json:"store"`
	// Seq is the feed position the snapshot is consistent with; deltas continue after it.
	Seq  uint64    `json:"seq"`
	AsOf time.Time `json:"as_of"`
	// ReflectsTillSeq is the requesting till's acknowledged journal point when the
	// snapshot was read: coupon counts include that till's entries up to it.
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

// CompactCoupon converts from the domain type.
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

// SnapshotFormat is the version of the snapshot stream.
const SnapshotFormat = 1

// Delta is the answer to GET PathCatalog?since=SEQ: the CURRENT state of every offer and
// coupon of the store that changed after since, up to Seq — not a replay of history.
// When More is true the till asks again with since=Seq. A till whose cursor is older
// than the platform's retained history (or ahead of it: a platform restored from an
// older backup) gets 410 with the code CodeRefetch instead, and fetches a snapshot after
// pushing its journal.
type Delta struct {
	Since         uint64           `json:"since"`
	Seq           uint64           `json:"seq"`
	More          bool             `json:"more"`
	AsOf          time.Time        `json:"as_of"`
	Offers        []tillkeep.Offer `json:"offers"`
	RemovedOffers []string         `json:"removed_offers"`
	Coupons       []SnapshotCoupon `json:"coupons"`
	// ReflectsTillSeq is set (non-nil) only on the last page: only then do the coupon
	// states include everything the till's acknowledged entries changed.
	ReflectsTillSeq *uint64 `json:"reflects_till_seq,omitempty"`
}

// CodeRefetch is the error code of a 410 answer to a delta request.
const CodeRefetch = "refetch_required"
