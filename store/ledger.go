package store

import (
	"context"
	"errors"
	"time"

	"github.com/tillkeep/tillkeep"
)

// Ledger is everything the agent and sync need from a till's durable state: the three
// till-side interfaces of the root package plus the sync and care operations. *DB and
// *memstore.Store implement it, and storetest.Run checks that they behave alike.
type Ledger interface {
	tillkeep.TillLedger
	tillkeep.TillJournal
	tillkeep.TillCatalog

	// SetAckedSeq moves the acknowledged point to seq, also backwards: a platform
	// restored from a backup asks to be sent again what it lost. It refuses a seq
	// beyond the journal's end or below entries already pruned.
	SetAckedSeq(ctx context.Context, seq uint64) error
	// PruneJournal deletes journal entries with Seq <= upTo and returns how many it
	// deleted. It refuses to prune beyond the acknowledged seq. The idempotency and
	// redemption indexes are kept forever.
	PruneJournal(ctx context.Context, upTo uint64) (int, error)
	// Journal returns up to limit entries with Seq > after, acknowledged or not, in
	// order (for dumps and support). limit <= 0 means a default page.
	Journal(ctx context.Context, after uint64, limit int) ([]tillkeep.JournalEntry, error)

	// ApplyCatalogChanges applies a catalog delta at feed sequence seq: offers and
	// coupons are upserted, removed offers are deleted with their coupons. Local use
	// is recomputed from the journal entries after reflectsTillSeq. A delta older than
	// the cached catalog (seq below its sequence) is refused with CodeConflict.
	ApplyCatalogChanges(ctx context.Context, seq uint64, asOf time.Time, offers []tillkeep.Offer,
		coupons []tillkeep.Coupon, removedOffers []string, reflectsTillSeq uint64) error
	// BeginCatalog starts loading a whole catalog snapshot in pieces, for catalogs too
	// large to hold in memory at once: the store record and every offer now, the
	// coupons through the loader's Add, and the switch to the new catalog at Commit.
	// Until Commit, readers and redemptions see the old catalog, and no other catalog
	// write (delta or snapshot) can slip in between: the caller must end every load
	// with Commit or Abort. Offers are checked as ReplaceCatalog checks them
	// (CodeInvalidRequest), and a store record of another store is refused.
	BeginCatalog(ctx context.Context, store tillkeep.Store, offers []tillkeep.Offer) (CatalogLoader, error)
	// CatalogState returns where the cached catalog stands in the platform's feed.
	CatalogState(ctx context.Context) (CatalogState, error)
	// MarkSynced records that the catalog was confirmed current at at (a pull that
	// brought no changes). It never moves the sync time backwards.
	MarkSynced(ctx context.Context, at time.Time) error
	// MergeHLC merges a platform stamp into the till's clock and returns the new stamp.
	MergeHLC(ctx context.Context, remote tillkeep.HLC, nowMS int64) (tillkeep.HLC, error)
	// Cursor returns the named sync cursor ("" when never set).
	Cursor(ctx context.Context, name string) (string, error)
	// SetCursor stores the named sync cursor durably.
	SetCursor(ctx context.Context, name, value string) error

	// RememberIntent durably records the redemption id an attempt of transactionID is
	// about to present to the platform, so that a retry after a crash presents the
	// same one; Record deletes it when it journals the transaction.
	RememberIntent(ctx context.Context, transactionID, requestHash, redemptionID string) error
	// Intent returns the remembered attempt of transactionID.
	Intent(ctx context.Context, transactionID string) (requestHash, redemptionID string, ok bool, err error)
	// ForgetIntent drops the intent of transactionID.
	ForgetIntent(ctx context.Context, transactionID string) error

	// Close releases the ledger; later calls fail with ErrClosed.
	Close() error
}

// CatalogLoader is one catalog load begun by BeginCatalog. It is not safe for
// concurrent use: one goroutine feeds it.
type CatalogLoader interface {
	// Add stages a chunk of coupons durably, in one transaction of its own, so that
	// memory stays bounded by one chunk and redemptions keep committing in between.
	// Chunks whose codes ascend across calls load fastest and smallest. A code staged
	// twice, a coupon of an offer the load does not hold, an empty code or a negative
	// count is refused with CodeInvalidRequest. Any error abandons the load, as Abort
	// does; later calls fail.
	Add(ctx context.Context, coupons []tillkeep.Coupon) error
	// Commit switches to the loaded catalog in one transaction that also records the
	// feed position (seq, asOf) and recounts local use from the journal entries after
	// reflectsTillSeq, exactly as ReplaceCatalog does. A failed Commit leaves the old
	// catalog in place and abandons the load.
	Commit(ctx context.Context, seq uint64, asOf time.Time, reflectsTillSeq uint64) error
	// Abort drops what was staged and leaves the old catalog as it was. It is safe to
	// call at any time, also after Commit (then it does nothing), so callers can defer it.
	Abort()
}

// CatalogState is where the cached catalog stands.
type CatalogState struct {
	// Seq is the feed sequence of the last snapshot or delta applied (0: none).
	Seq uint64
	// SyncedAt is when the catalog was last known current (zero: never).
	SyncedAt time.Time
	// ReflectsTillSeq is the highest journal sequence that the cached coupon counts
	// include; entries after it are counted as local use.
	ReflectsTillSeq uint64
	Coupons         int
	Offers          int
}

// Errors of the ledger. Refusals and request errors are *tillkeep.Error values with
// stable codes; these are the infrastructure conditions callers may test for with
// errors.Is.
var (
	// ErrClosed is returned by every call after Close. Its code is CodeUnavailable.
	ErrClosed = &tillkeep.Error{Code: tillkeep.CodeUnavailable, Message: "The till's ledger is closed."}
	// ErrLocked is wrapped by Open when another process holds the database file; the
	// message says "another tillkeep agent is using <dir>".
	ErrLocked = errors.New("ledger database is locked")
	// ErrSchemaTooNew is wrapped by Open when the file was written by a newer tillkeep.
	ErrSchemaTooNew = errors.New("ledger schema is newer than this tillkeep")
	// ErrWrongTill is wrapped by Open when the file belongs to another store or till.
	ErrWrongTill = errors.New("ledger belongs to another store or till")
	// ErrNotLedger is wrapped by Open when the file is a bbolt database but not a
	// tillkeep ledger.
	ErrNotLedger = errors.New("not a tillkeep ledger")
)
