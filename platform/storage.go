package platform

import (
	"context"
	"errors"
	"time"

	"github.com/tillkeep/tillkeep"
)

// Storage errors. Implementations return them (possibly wrapped) so that the service
// can tell "absent" and "already there" from real failures with errors.Is.
var (
	// ErrNotFound: the record does not exist.
	ErrNotFound = errors.New("record not found")
	// ErrExists: an insert hit a record with the same unique key. The transaction stays
	// usable: a backend must not abort the whole transaction on it (PostgreSQL: INSERT …
	// ON CONFLICT DO NOTHING and report the skipped key).
	ErrExists = errors.New("record already exists")
)

// Storage is everything the platform keeps. It is defined here, by its consumer, and
// implemented by platform/boltstore (embedded) and, later, a PostgreSQL backend. Every
// implementation must pass platform/storagetest.
//
// # Transactions
//
// Update runs fn in ONE read-write transaction and commits durably before it returns
// nil: a redemption is acknowledged only after that. If fn returns an error, nothing fn
// wrote is kept and the error is returned as it is (errors.Is/As work on it).
//
// fn may be run more than once: a backend retries it on a retryable failure
// (PostgreSQL serialization failures and deadlocks; bbolt group commit re-runs the
// other members of a batch when one member fails). So fn must have no effect outside
// tx, must assign its results afresh on every run, and must not keep records read in
// one run for the next.
//
// View runs fn in a read-only, consistent snapshot. Records returned by either kind of
// transaction are copies owned by the caller and stay valid after it ends.
//
// # Lock order
//
// In the PostgreSQL backend every read inside Update is SELECT … FOR UPDATE (reads of
// definitions — stores, customers, offers — need no lock; meta rows do, since they
// hold counters such as a code series' next index). So that concurrent
// transactions never wait on each other in a cycle, every Update reads the rows it may
// change in this order, and only in this order:
//
//  1. the till (journal ingest: it serialises one till's uploads),
//  2. redemptions being changed (reversal, conflict resolution),
//  3. offer usage rows (sorted by offer id when there are several),
//  4. coupons (sorted by code),
//  5. customer usage rows (sorted by customer id, then offer id),
//  6. conflict cases.
//
// Inserts of new rows (redemptions, changes, anomalies, conflicts) may come at any
// point. Where a transaction must learn which rows to lock from another row (a code's
// offer), it reads that mapping first in a View: a coupon never changes offer.
// Multi-row operations (journal ingest, issuance, revocation) pre-read all their limit
// rows in this order before working on them. An inversion that still happens across
// different operations is a deadlock the database detects; the backend retries fn.
type Storage interface {
	Update(ctx context.Context, fn func(Tx) error) error
	View(ctx context.Context, fn func(ReadTx) error) error
	// Epoch identifies this database. It is made once, when the database is created,
	// and never changes; tills keep it with their acknowledged point so that a platform
	// replaced by another database is noticed.
	Epoch() string
	Close() error
}

// ReadTx reads records. A get of a missing record returns ErrNotFound, except the two
// usage getters, which return a zero-valued row (nothing used yet). List methods return
// records in key order; "after" is an exclusive key ("" starts at the beginning) and
// limit <= 0 means no limit.
type ReadTx interface {
	// Meta returns a key-value setting (codegen state, epoch, ...).
	Meta(key string) ([]byte, error)

	Store(id string) (tillkeep.Store, error)
	Stores(after string, limit int) ([]tillkeep.Store, error)
	Customer(id string) (tillkeep.Customer, error)
	Offer(id string) (tillkeep.Offer, error)
	Offers(after string, limit int) ([]tillkeep.Offer, error)

	Coupon(code string) (tillkeep.Coupon, error)
	// CouponsByOffer lists an offer's coupons ordered by code, after the code "after".
	CouponsByOffer(offerID, after string, limit int) ([]tillkeep.Coupon, error)
	// UnissuedCoupons lists an offer's coupons with status active and no customer,
	// ordered by code: the pool that issuance draws from.
	UnissuedCoupons(offerID, after string, limit int) ([]tillkeep.Coupon, error)
	// CouponsByCustomer lists the coupons issued to a customer, of one offer (or of all
	// offers when offerID is ""), ordered by offer id then code.
	CouponsByCustomer(customerID, offerID string) ([]tillkeep.Coupon, error)

	Redemption(id string) (Redemption, error)
	// RedemptionsByCoupon lists every redemption of a code, in id order.
	RedemptionsByCoupon(code string) ([]Redemption, error)
	// RedemptionByTransaction returns the first redemption recorded with this POS
	// transaction at this till. The key is not unique: a faulty till may journal two
	// redemptions under one transaction id, and both are kept.
	RedemptionByTransaction(storeID, tillID, transactionID string) (Redemption, error)
	// Redemptions lists redemptions matching f ordered by (EventAt, ID). cursor is ""
	// or the next cursor of the previous page; next is "" on the last page.
	Redemptions(f RedemptionFilter, cursor string, limit int) (page []Redemption, next string, err error)

	OfferUsage(offerID string) (OfferUsage, error)
	CustomerUsage(customerID, offerID string) (CustomerUsage, error)

	Till(storeID, tillID string) (Till, error)
	// TillByTokenHash finds the till whose current token hashes to hash.
	TillByTokenHash(hash string) (Till, error)
	// Tills lists the tills of a store (every till when storeID is ""), ordered by
	// store id then till id.
	Tills(storeID string) ([]Till, error)

	Conflict(id string) (Conflict, error)
	// OpenConflict returns the open case for (code, kind).
	OpenConflict(code, kind string) (Conflict, error)
	// Conflicts lists cases by id (ids sort by creation time); status "" lists all.
	Conflicts(status, after string, limit int) ([]Conflict, error)

	// ChangesSince lists change-log entries with Seq > seq in Seq order.
	ChangesSince(seq uint64, limit int) ([]Change, error)
	// LastChangeSeq is the Seq of the newest change (0 when there is none).
	LastChangeSeq() (uint64, error)

	Anomalies(after string, limit int) ([]Anomaly, error)

	// ReportPart returns one part of a stored report; parts are numbered from 0 and a
	// part past the end is ErrNotFound.
	ReportPart(id string, part int) ([]byte, error)
}

// Tx reads and writes records inside Update. Writes maintain every secondary index
// (coupons by offer, customer and issue state; redemptions by coupon, transaction and
// time; tills by token; open and per-status conflicts) in the same transaction.
type Tx interface {
	ReadTx

	PutMeta(key string, value []byte) error

	// PutStore and PutCustomer insert or replace.
	PutStore(s tillkeep.Store) error
	PutCustomer(c tillkeep.Customer) error
	// InsertOffer fails with ErrExists when the id is taken.
	InsertOffer(o tillkeep.Offer) error
	// UpdateOffer fails with ErrNotFound when the offer does not exist.
	UpdateOffer(o tillkeep.Offer) error

	// InsertCoupons inserts coupons whose code is new and returns, in input order, the
	// codes that already existed (or repeated an earlier code of cs); those are skipped
	// and the rest are inserted. Backends should sort the batch by code for locality.
	InsertCoupons(cs []tillkeep.Coupon) (existing []string, err error)
	// UpdateCoupon replaces an existing coupon (ErrNotFound otherwise). OfferID and Code
	// never change.
	UpdateCoupon(c tillkeep.Coupon) error

	// InsertRedemption fails with ErrExists when the id is taken: the database enforces
	// that a redemption id is recorded once, forever.
	InsertRedemption(r Redemption) error
	// UpdateRedemption replaces an existing redemption (ErrNotFound otherwise).
	UpdateRedemption(r Redemption) error

	PutOfferUsage(u OfferUsage) error
	PutCustomerUsage(u CustomerUsage) error

	// PutTill inserts or replaces a till; the token index follows TokenHash ("" = no
	// valid token).
	PutTill(t Till) error

	// InsertConflict fails with ErrExists when the id is taken or when an open case for
	// (Code, Kind) already exists: a conflict is flagged exactly once.
	InsertConflict(c Conflict) error
	// UpdateConflict replaces an existing case (ErrNotFound otherwise).
	UpdateConflict(c Conflict) error

	// AppendChange adds c to the change log and returns its Seq (c.Seq is ignored).
	// Seqs are increasing and, as seen by readers, gap-free: a reader that has seen seq
	// N never later sees a new entry below N.
	AppendChange(c Change) (uint64, error)
	// DeleteChangesThrough deletes change-log entries with Seq <= seq, oldest first, at
	// most limit of them (limit <= 0: no bound), and returns how many it deleted. It
	// never changes LastChangeSeq nor the Seq of later or future entries: compaction
	// forgets old history, it never renumbers it.
	DeleteChangesThrough(seq uint64, limit int) (int, error)

	// InsertAnomaly records a refused or suspicious request for ops (ErrExists on id).
	InsertAnomaly(a Anomaly) error

	// PutReportPart stores one part of a report (CSV bytes).
	PutReportPart(id string, part int, data []byte) error
}

// RedemptionFilter selects redemptions; zero fields match everything. From and To bound
// EventAt as [From, To).
type RedemptionFilter struct {
	StoreID string
	TillID  string
	OfferID string
	Code    string
	Mode    string
	Status  string
	From    time.Time
	To      time.Time
}

// Match reports whether r passes the filter. Backends that cannot push a filter down to
// an index use it on the rows they scan.
func (f RedemptionFilter) Match(r Redemption) bool {
	switch {
	case f.StoreID != "" && r.StoreID != f.StoreID,
		f.TillID != "" && r.TillID != f.TillID,
		f.OfferID != "" && r.OfferID != f.OfferID,
		f.Code != "" && r.Code != f.Code,
		f.Mode != "" && r.Mode != f.Mode,
		f.Status != "" && r.Status != f.Status,
		!f.From.IsZero() && r.EventAt.Before(f.From),
		!f.To.IsZero() && !r.EventAt.Before(f.To):
		return false
	}
	return true
}

// Redemption is the platform's ledger record of one use of a coupon at a till: the
// domain fields of tillkeep.Redemption plus what reconciliation needs.
type Redemption struct {
	// ID is the till's UUIDv7, unique forever.
	ID            string         `json:"id"`
	Code          string         `json:"code"`
	OfferID       string         `json:"offer_id"`
	StoreID       string         `json:"store_id"`
	TillID        string         `json:"till_id"`
	TransactionID string         `json:"transaction_id"`
	CustomerID    string         `json:"customer_id,omitempty"`
	Bill          tillkeep.Money `json:"bill"`
	Discount      tillkeep.Money `json:"discount"`
	// Mode is where it was decided: online (by the platform) or offline (by the till).
	Mode string `json:"mode"`
	// Status is accepted, reversed or conflict.
	Status string `json:"status"`
	// At is the till's wall clock at the event, kept even when that clock is wrong.
	At time.Time `json:"at"`
	// EventAt is the time the platform judges the redemption at: its own clock for an
	// online redemption; for an offline one the entry's HLC physical time, never later
	// than ReceivedAt.
	EventAt    time.Time    `json:"event_at"`
	ReceivedAt time.Time    `json:"received_at"`
	HLC        tillkeep.HLC `json:"hlc"`
	// Seq is the till's journal sequence of the entry that brought it (0: not yet
	// journaled, an online redemption before its till uploaded it).
	Seq uint64 `json:"seq,omitempty"`
	// RequestHash is a digest of the redemption's content (till, transaction, code,
	// customer, bill): the same id with another digest is an idempotency key reuse.
	RequestHash string `json:"request_hash,omitempty"`
	// Consumed is true while the redemption counts against its limits (coupon,
	// customer, offer): from recording, conflicts included, until it is reversed. A
	// redemption of an unknown code consumes nothing.
	Consumed   bool `json:"consumed"`
	IsReversed bool `json:"is_reversed"`
	// ReversedBy says who reversed it: "till", "journal" or the ops principal.
	ReversedBy         string    `json:"reversed_by,omitempty"`
	LastStatusChangeOn time.Time `json:"last_status_change_on,omitzero"`
	// ConflictID and ConflictKind link the redemption to the case it is part of. A
	// winner of a double redemption keeps the link with status accepted.
	ConflictID   string `json:"conflict_id,omitempty"`
	ConflictKind string `json:"conflict_kind,omitempty"`
	// Flags are notes that are not conflicts, such as "clock_skew".
	Flags []string `json:"flags,omitempty"`
	// SkewMS is the till wall clock minus the event time, in milliseconds.
	SkewMS int64 `json:"skew_ms,omitempty"`
}

// Redemption flags.
const FlagClockSkew = "clock_skew"

// OfferUsage counts an offer's use; it is the offer-scope limit row.
type OfferUsage struct {
	OfferID string `json:"offer_id"`
	// Redemptions counts redemptions that were not reversed, conflicting ones included
	// (the discount was given).
	Redemptions int64 `json:"redemptions"`
	// Issued counts coupons issued to customers (the series limit).
	Issued int64 `json:"issued"`
	// Coupons counts coupons created for the offer.
	Coupons int64 `json:"coupons"`
}

// CustomerUsage counts one customer's use of one offer; it is the customer-scope limit
// row.
type CustomerUsage struct {
	CustomerID     string    `json:"customer_id"`
	OfferID        string    `json:"offer_id"`
	Redemptions    int       `json:"redemptions"`
	LastRedeemedAt time.Time `json:"last_redeemed_at,omitzero"`
	Issued         int       `json:"issued"`
	LastIssuedAt   time.Time `json:"last_issued_at,omitzero"`
	// HasGeneric is true once the customer was issued the offer's common code.
	HasGeneric bool `json:"has_generic"`
}

// Till is an enrolled till and its journal acknowledgement point.
type Till struct {
	StoreID string `json:"store_id"`
	TillID  string `json:"till_id"`
	// TokenHash is the hex SHA-256 of the till's bearer token; the token itself is
	// never stored. "" means the till has no valid token (enrollment was reset).
	TokenHash string `json:"token_hash,omitempty"`
	// AckedSeq is the highest journal sequence applied; it survives re-enrollment.
	AckedSeq   uint64    `json:"acked_seq"`
	EnrolledAt time.Time `json:"enrolled_at,omitzero"`
	LastSeenAt time.Time `json:"last_seen_at,omitzero"`
}

// Conflict statuses and kinds.
const (
	ConflictOpen     = "open"
	ConflictResolved = "resolved"

	KindDoubleRedemption        = "double_redemption"
	KindRedeemedAfterRevocation = "redeemed_after_revocation"
	KindRedeemedAfterExpiry     = "redeemed_after_expiry"
	KindCustomerLimitExceeded   = "customer_limit_exceeded"
	KindOfferLimitExceeded      = "offer_limit_exceeded"
	KindUnknownCoupon           = "unknown_coupon"
	KindRuleViolation           = "rule_violation"
)

// Conflict is a case for ops: one or more redemptions that broke a rule as the platform
// sees it. There is at most one open case per (Code, Kind); later redemptions join it.
type Conflict struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Code    string `json:"code"`
	OfferID string `json:"offer_id,omitempty"`
	Status  string `json:"status"`
	// Rule names the redemption rule behind a rule_violation.
	Rule string `json:"rule,omitempty"`
	// RedemptionIDs lists every redemption involved, from every till, in the order they
	// joined; TillIDs and StoreIDs list their tills and stores once each.
	RedemptionIDs []string `json:"redemption_ids"`
	TillIDs       []string `json:"till_ids"`
	StoreIDs      []string `json:"store_ids"`
	// WinnerIDs are the redemptions of a double redemption that keep status accepted.
	WinnerIDs  []string  `json:"winner_ids,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// Resolution is the action that resolved the case.
	Resolution string       `json:"resolution,omitempty"`
	Audit      []AuditEntry `json:"audit"`
}

// AuditEntry is one step in a case's history: who did what, when.
type AuditEntry struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Note   string    `json:"note,omitempty"`
}

// Change-log entities and events.
const (
	EntityStore      = "store"
	EntityOffer      = "offer"
	EntityCoupon     = "coupon"
	EntityRedemption = "redemption"

	EventCreated    = "created"
	EventUpdated    = "updated"
	EventIssued     = "issued"
	EventRedeemed   = "redeemed"
	EventRevoked    = "revoked"
	EventReinstated = "reinstated"
	EventReversed   = "reversed"
	EventStatus     = "status" // a redemption's status changed (conflict, winner)
)

// Change is one entry of the global change log, the source of the catalog feed: a
// reader that has applied every entry up to Seq knows every state change up to it.
// An entry names what changed; the reader fetches the current record.
type Change struct {
	Seq    uint64    `json:"seq"`
	At     time.Time `json:"at"`
	Entity string    `json:"entity"`
	// Key is the store id, offer id, coupon code or redemption id.
	Key   string `json:"key"`
	Event string `json:"event"`
	// OfferID is the offer of a coupon or redemption change (the feed's store scope
	// follows from the offer's rules); StoreID and TillID name the till of a
	// redemption change, and the store of a store change.
	OfferID string `json:"offer_id,omitempty"`
	StoreID string `json:"store_id,omitempty"`
	TillID  string `json:"till_id,omitempty"`
}

// Anomaly kinds.
const (
	AnomalyIdempotencyReuse  = "idempotency_key_reuse"
	AnomalyTillImpersonation = "till_impersonation"
	AnomalyJournal           = "journal_anomaly"
)

// Anomaly is a refused or suspicious request kept for ops: an idempotency key reused
// with another body, a till acting as another, a journal entry that makes no sense.
type Anomaly struct {
	ID           string    `json:"id"`
	At           time.Time `json:"at"`
	Kind         string    `json:"kind"`
	StoreID      string    `json:"store_id,omitempty"`
	TillID       string    `json:"till_id,omitempty"`
	RedemptionID string    `json:"redemption_id,omitempty"`
	Detail       string    `json:"detail"`
}
