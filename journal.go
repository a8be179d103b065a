package tillkeep

import (
	"context"
	"time"
)

// Journal entry kinds.
const (
	EntryRedemption = "redemption"
	EntryReversal   = "reversal"
)

// HLC is a hybrid logical clock stamp: milliseconds of (server-corrected) physical time
// and a logical counter that orders events within the same millisecond or while the
// physical clock stands still or goes backwards. Till clocks are not trusted; HLC
// stamps order a till's events and bound their skew against the platform.
type HLC struct {
	WallMS  int64  `json:"wall_ms"`
	Logical uint32 `json:"logical"`
}

// Less orders stamps.
func (h HLC) Less(o HLC) bool {
	return h.WallMS < o.WallMS || (h.WallMS == o.WallMS && h.Logical < o.Logical)
}

// NextHLC returns the stamp of a local event after last, given the physical time now
// (milliseconds). It never goes backwards.
func NextHLC(last HLC, nowMS int64) HLC {
	if nowMS > last.WallMS {
		return HLC{WallMS: nowMS}
	}
	return HLC{WallMS: last.WallMS, Logical: last.Logical + 1}
}

// MergeHLC returns the stamp after receiving remote (for example the platform's time
// at a sync), so that later local stamps order after it.
func MergeHLC(last, remote HLC, nowMS int64) HLC {
	maxWall := max(last.WallMS, remote.WallMS, nowMS)
	switch {
	case maxWall == last.WallMS && maxWall == remote.WallMS:
		return HLC{WallMS: maxWall, Logical: max(last.Logical, remote.Logical) + 1}
	case maxWall == last.WallMS:
		return HLC{WallMS: maxWall, Logical: last.Logical + 1}
	case maxWall == remote.WallMS:
		return HLC{WallMS: maxWall, Logical: remote.Logical + 1}
	default:
		return HLC{WallMS: maxWall}
	}
}

// JournalEntry is one record of a till's outbox: a redemption or a reversal, written
// and fsynced before the till acknowledges it, and uploaded to the platform until the
// platform acknowledges its sequence. Seq and EntryID are made once and never change,
// so every retry of an upload is recognisably the same entry.
type JournalEntry struct {
	// Seq is the per-till sequence, contiguous from 1.
	Seq uint64 `json:"seq"`
	// EntryID is a UUIDv7 made once for this entry. For a redemption it equals
	// RedemptionID.
	EntryID string `json:"entry_id"`
	Kind    string `json:"kind"` // "redemption" or "reversal"
	// RedemptionID is the redemption this entry creates or reverses.
	RedemptionID  string `json:"redemption_id"`
	StoreID       string `json:"store_id"`
	TillID        string `json:"till_id"`
	TransactionID string `json:"transaction_id"`
	Code          string `json:"code"`
	OfferID       string `json:"offer_id"`
	CustomerID    string `json:"customer_id,omitempty"`
	Bill          Money  `json:"bill"`
	Discount      Money  `json:"discount"`
	// Mode says where the redemption was decided: online (the platform accepted it
	// before the till answered) or offline (the till decided alone).
	Mode string `json:"mode"`
	// WallTime is the till's own clock at the event, kept even when it is wrong.
	WallTime time.Time `json:"wall_time"`
	// HLC orders the event; it is seeded from server time at each sync.
	HLC HLC `json:"hlc"`
}

// Outcome is what a till answered to a POS request with a given transaction_id. It is
// stored in the idempotency index so that a retry gets the same answer.
type Outcome struct {
	TransactionID string `json:"transaction_id"`
	// RequestHash is a digest of the request body; a retry with another digest is refused.
	RequestHash  string    `json:"request_hash"`
	RedemptionID string    `json:"redemption_id"`
	Code         string    `json:"code"`
	Mode         string    `json:"mode"`
	Discount     Money     `json:"discount"`
	Status       string    `json:"status"` // accepted or reversed
	Seq          uint64    `json:"seq"`
	At           time.Time `json:"at"`
}

// LocalState is what a till knows about a coupon at the moment it records a redemption:
// the cached coupon and offer as last synced, plus its own use not yet reflected in the
// cache.
type LocalState struct {
	Coupon Coupon
	Offer  Offer
	// LocalCouponRedemptions are this till's accepted redemptions of the coupon that the
	// cached Coupon.Redemptions does not yet include.
	LocalCouponRedemptions int
	// LocalCustomerRedemptions and LocalCustomerLast are this till's not yet synced
	// redemptions of the offer by the attempt's customer.
	LocalCustomerRedemptions int
	LocalCustomerLast        time.Time
	// LocalOfferRedemptions are this till's not yet synced redemptions of the offer.
	LocalOfferRedemptions int64
	// OfflineRedemptions counts offline redemptions since the last successful contact
	// with the platform (the card-terminal style cap on one outage).
	OfflineRedemptions int
	// CatalogSyncedAt is when the catalog was last refreshed from the platform.
	CatalogSyncedAt time.Time
	// LastHLC is the stamp of the till's latest event.
	LastHLC HLC
}

// RecordRequest asks the till's ledger to record one redemption atomically.
type RecordRequest struct {
	TransactionID string
	RequestHash   string
	Code          string
	CustomerID    string
	// AllowUncached says that the platform decided online: record the entry even when
	// the coupon is not in the cache — Decide gets a LocalState with zero Coupon/Offer
	// (the till's counters are still filled in). Without it, a code missing from the
	// cache is refused with CodeUnknownCoupon and Decide is not called.
	AllowUncached bool
	// Decide is called inside the ledger's write transaction with the till's state at
	// that moment and returns the entry to append (its Seq is assigned by the ledger).
	// It must be pure and deterministic: bbolt's Batch may call it more than once.
	Decide func(LocalState) (JournalEntry, error)
}

// ReverseRequest asks the ledger to reverse one of this till's redemptions.
type ReverseRequest struct {
	RedemptionID string
	// Decide builds the reversal entry from the original redemption entry. Pure, as above.
	Decide func(original JournalEntry, last HLC) (JournalEntry, error)
}

// LedgerStatus summarises a till's ledger for /v1/status.
type LedgerStatus struct {
	Coupons            int
	Offers             int
	SyncedAt           time.Time // zero: never synced
	PendingUploads     int
	LastSeq            uint64
	AckedSeq           uint64
	OfflineRedemptions int
}

// CatalogSnapshot is a store's whole catalog at one feed sequence.
type CatalogSnapshot struct {
	StoreID string    `json:"store_id"`
	Seq     uint64    `json:"seq"`
	Store   Store     `json:"store"`
	Offers  []Offer   `json:"offers"`
	Coupons []Coupon  `json:"coupons"`
	AsOf    time.Time `json:"as_of"`
	// ReflectsTillSeq is the highest journal sequence of the receiving till that the
	// snapshot's coupon counts already include. The till's own entries after it are
	// still counted as local use, so nothing it redeemed is forgotten by a refresh.
	ReflectsTillSeq uint64 `json:"reflects_till_seq"`
}

// TillLedger is the till's durable state as the redemption engine uses it: the coupon
// cache, the journal (outbox), the idempotency index and the counters of local use.
// Every method that acknowledges something returns only after it is fsynced.
type TillLedger interface {
	// Lookup returns the cached coupon with its offer and the till's local use, for
	// validation. An unknown code is an *Error with CodeUnknownCoupon.
	Lookup(ctx context.Context, code, customerID string) (LocalState, error)
	// Record looks up TransactionID in the idempotency index: a stored outcome with the
	// same RequestHash is returned as it is (replayed=true), one with another hash is an
	// *Error with CodeIdempotencyReuse. Otherwise it calls Decide and, if Decide accepts,
	// appends the entry, updates local use and the index, and commits durably, all in one
	// transaction. Concurrent calls share commits (group commit).
	Record(ctx context.Context, req RecordRequest) (out Outcome, replayed bool, err error)
	// Reverse appends a reversal of one of this till's redemptions, atomically with
	// undoing its local use. Reversing an already reversed redemption returns its outcome.
	Reverse(ctx context.Context, req ReverseRequest) (Outcome, error)
	// OutcomeByTransaction returns the stored outcome of a transaction_id.
	OutcomeByTransaction(ctx context.Context, transactionID string) (Outcome, bool, error)
	// Status summarises the ledger.
	Status(ctx context.Context) (LedgerStatus, error)
}

// TillJournal is the upload side of the ledger, used by sync.
type TillJournal interface {
	// Pending returns up to limit entries with Seq > after, in order.
	Pending(ctx context.Context, after uint64, limit int) ([]JournalEntry, error)
	// Acknowledge records that the platform holds every entry up to seq, and resets the
	// offline counter: the till has reached the platform.
	Acknowledge(ctx context.Context, seq uint64) error
	// AckedSeq returns the highest acknowledged sequence.
	AckedSeq(ctx context.Context) (uint64, error)
}

// TillCatalog is the catalog side of the ledger, fed by sync (or an imported snapshot).
type TillCatalog interface {
	// ReplaceCatalog swaps the whole cache for a snapshot, keeping the journal and the
	// local use of entries that the snapshot does not yet reflect.
	ReplaceCatalog(ctx context.Context, snap CatalogSnapshot) error
	// Store returns the cached store record.
	Store(ctx context.Context) (Store, error)
}
