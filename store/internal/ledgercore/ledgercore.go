// Package ledgercore holds the rules that every implementation of store.Ledger shares:
// how a request is checked, how the entry returned by a Decide callback is completed and
// validated, how an outcome is derived from it, and what makes a catalog acceptable.
// Keeping them in one place is what lets the bbolt ledger and the in-memory ledger pass
// the same conformance suite. It performs no I/O and decides nothing about coupons.
package ledgercore

import (
	"fmt"
	"time"

	"github.com/tillkeep/tillkeep"
)

// Identity is the store and till a ledger belongs to. Empty fields are not checked.
type Identity struct {
	StoreID string
	TillID  string
}

// DefaultPageSize is how many journal entries Pending and Journal return when the caller
// asks for no particular number, and MaxPageSize caps what they return at once so that
// one call cannot pull a whole outage's journal into memory.
const (
	DefaultPageSize = 500
	MaxPageSize     = 10_000
)

// PageSize turns a caller's limit into the number of entries to return.
func PageSize(limit int) int {
	switch {
	case limit <= 0:
		return DefaultPageSize
	case limit > MaxPageSize:
		return MaxPageSize
	}
	return limit
}

// CheckRecordRequest rejects a request that could not be recorded whatever the ledger
// holds.
func CheckRecordRequest(req tillkeep.RecordRequest) error {
	switch {
	case req.TransactionID == "":
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "The transaction_id is missing.")
	case req.Code == "":
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "The coupon code is missing.")
	case req.Decide == nil:
		return tillkeep.Errorf(tillkeep.CodeInternal, "record %s: no Decide callback", req.TransactionID)
	}
	return nil
}

// CheckReverseRequest rejects a reversal request that could never be applied.
func CheckReverseRequest(req tillkeep.ReverseRequest) error {
	switch {
	case req.RedemptionID == "":
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "The redemption id is missing.")
	case req.Decide == nil:
		return tillkeep.Errorf(tillkeep.CodeInternal, "reverse %s: no Decide callback", req.RedemptionID)
	}
	return nil
}

// Replay answers a request whose transaction_id already has a stored outcome: the same
// request digest gets the stored outcome, another digest is a reuse of the key.
func Replay(stored tillkeep.Outcome, requestHash string) (tillkeep.Outcome, error) {
	if stored.RequestHash != requestHash {
		return tillkeep.Outcome{}, tillkeep.Errorf(tillkeep.CodeIdempotencyReuse,
			"The transaction_id %s was already used for another request.", stored.TransactionID)
	}
	return stored, nil
}

// Decide calls the redemption callback, turning a panic into an error so that a bug in
// one lane's callback cannot take the daemon or the neighbours in its commit down.
func Decide(req tillkeep.RecordRequest, state tillkeep.LocalState) (entry tillkeep.JournalEntry, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = tillkeep.Errorf(tillkeep.CodeInternal, "decide redemption for transaction %s panicked: %v", req.TransactionID, r)
		}
	}()
	return req.Decide(state)
}

// DecideReversal calls the reversal callback, turning a panic into an error.
func DecideReversal(req tillkeep.ReverseRequest, original tillkeep.JournalEntry, last tillkeep.HLC) (entry tillkeep.JournalEntry, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = tillkeep.Errorf(tillkeep.CodeInternal, "decide reversal of %s panicked: %v", req.RedemptionID, r)
		}
	}()
	return req.Decide(original, last)
}

// fill sets *field to want when it is empty and reports a mismatch otherwise.
func fill(field *string, want, name string) error {
	if *field == "" {
		*field = want
		return nil
	}
	if want != "" && *field != want {
		return fmt.Errorf("%s is %q, expected %q", name, *field, want)
	}
	return nil
}

func badEntry(what string, err error) error {
	return tillkeep.Wrap(tillkeep.CodeInternal, err, "The %s built by the redemption engine is inconsistent.", what)
}

// CompleteRedemption checks the entry a Decide callback returned, fills the fields the
// ledger knows (identity, transaction, code, offer, customer) and assigns seq.
func CompleteRedemption(req tillkeep.RecordRequest, e tillkeep.JournalEntry, id Identity, offerID string, seq uint64) (tillkeep.JournalEntry, error) {
	if e.Kind == "" {
		e.Kind = tillkeep.EntryRedemption
	}
	if e.Kind != tillkeep.EntryRedemption {
		return e, badEntry("redemption entry", fmt.Errorf("kind is %q", e.Kind))
	}
	if e.RedemptionID == "" {
		return e, badEntry("redemption entry", fmt.Errorf("redemption id is empty"))
	}
	for _, f := range []struct {
		field     *string
		want, key string
	}{
		{&e.EntryID, e.RedemptionID, "entry_id"},
		{&e.TransactionID, req.TransactionID, "transaction_id"},
		{&e.Code, req.Code, "code"},
		{&e.OfferID, offerID, "offer_id"},
		{&e.CustomerID, req.CustomerID, "customer_id"},
		{&e.StoreID, id.StoreID, "store_id"},
		{&e.TillID, id.TillID, "till_id"},
	} {
		if err := fill(f.field, f.want, f.key); err != nil {
			return e, badEntry("redemption entry", err)
		}
	}
	if e.Mode != tillkeep.ModeOnline && e.Mode != tillkeep.ModeOffline {
		return e, badEntry("redemption entry", fmt.Errorf("mode is %q", e.Mode))
	}
	if e.WallTime.IsZero() {
		return e, badEntry("redemption entry", fmt.Errorf("wall time is not set"))
	}
	e.WallTime = NormalizeTime(e.WallTime)
	e.Seq = seq
	return e, nil
}

// CompleteReversal checks the entry a reversal callback returned against the original
// redemption, fills what the ledger knows and assigns seq.
func CompleteReversal(original, e tillkeep.JournalEntry, id Identity, seq uint64) (tillkeep.JournalEntry, error) {
	if e.Kind == "" {
		e.Kind = tillkeep.EntryReversal
	}
	if e.Kind != tillkeep.EntryReversal {
		return e, badEntry("reversal entry", fmt.Errorf("kind is %q", e.Kind))
	}
	if e.EntryID == "" || e.EntryID == original.RedemptionID {
		return e, badEntry("reversal entry", fmt.Errorf("entry id %q must be new", e.EntryID))
	}
	for _, f := range []struct {
		field     *string
		want, key string
	}{
		{&e.RedemptionID, original.RedemptionID, "redemption_id"},
		{&e.TransactionID, original.TransactionID, "transaction_id"},
		{&e.Code, original.Code, "code"},
		{&e.OfferID, original.OfferID, "offer_id"},
		{&e.CustomerID, original.CustomerID, "customer_id"},
		{&e.StoreID, firstNonEmpty(id.StoreID, original.StoreID), "store_id"},
		{&e.TillID, firstNonEmpty(id.TillID, original.TillID), "till_id"},
	} {
		if err := fill(f.field, f.want, f.key); err != nil {
			return e, badEntry("reversal entry", err)
		}
	}
	if e.Mode != tillkeep.ModeOnline && e.Mode != tillkeep.ModeOffline {
		return e, badEntry("reversal entry", fmt.Errorf("mode is %q", e.Mode))
	}
	if e.WallTime.IsZero() {
		return e, badEntry("reversal entry", fmt.Errorf("wall time is not set"))
	}
	e.WallTime = NormalizeTime(e.WallTime)
	e.Seq = seq
	return e, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// AcceptedOutcome is the outcome stored for a recorded redemption.
func AcceptedOutcome(req tillkeep.RecordRequest, e tillkeep.JournalEntry) tillkeep.Outcome {
	return tillkeep.Outcome{
		TransactionID: req.TransactionID,
		RequestHash:   req.RequestHash,
		RedemptionID:  e.RedemptionID,
		Code:          e.Code,
		Mode:          e.Mode,
		Discount:      e.Discount,
		Status:        tillkeep.RedemptionAccepted,
		Seq:           e.Seq,
		At:            e.WallTime,
	}
}

// ReversedOutcome is the stored outcome of the original transaction once its redemption
// is reversed. Seq stays the redemption's own sequence: the outcome describes the POS
// transaction, and the reversal entry is found in the journal by its redemption id.
func ReversedOutcome(stored tillkeep.Outcome, original tillkeep.JournalEntry) tillkeep.Outcome {
	if stored.TransactionID == "" {
		// The index always holds the outcome; rebuild it from the entry rather than fail
		// a reversal if it ever does not.
		stored = tillkeep.Outcome{
			TransactionID: original.TransactionID,
			RedemptionID:  original.RedemptionID,
			Code:          original.Code,
			Mode:          original.Mode,
			Discount:      original.Discount,
			Seq:           original.Seq,
			At:            original.WallTime,
		}
	}
	stored.Status = tillkeep.RedemptionReversed
	return stored
}

// CheckCatalog validates offers and coupons about to enter a cache. knownOffer reports
// whether an offer id that is not in offers is already cached (nil: none is). Coupons
// must name an offer that will exist; removed offers must not be referenced.
func CheckCatalog(offers []tillkeep.Offer, coupons []tillkeep.Coupon, removed []string, knownOffer func(string) bool) error {
	ids := make(map[string]bool, len(offers))
	for i, o := range offers {
		if o.ID == "" {
			return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "Catalog offer #%d has no id.", i)
		}
		if ids[o.ID] {
			return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "Catalog offer %s appears twice.", o.ID)
		}
		ids[o.ID] = true
	}
	gone := make(map[string]bool, len(removed))
	for _, id := range removed {
		if ids[id] {
			return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "Catalog offer %s is both updated and removed.", id)
		}
		gone[id] = true
	}
	for i := range coupons {
		c := &coupons[i]
		if c.Code == "" {
			return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "Catalog coupon #%d has no code.", i)
		}
		if c.Redemptions < 0 {
			return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "Catalog coupon %s has a negative redemption count.", c.Code)
		}
		if gone[c.OfferID] || (!ids[c.OfferID] && (knownOffer == nil || !knownOffer(c.OfferID))) {
			return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "Catalog coupon %s names offer %q, which the catalog does not hold.", c.Code, c.OfferID)
		}
	}
	return nil
}

// CheckSnapshotIdentity rejects a snapshot meant for another store.
func CheckSnapshotIdentity(snap tillkeep.CatalogSnapshot, id Identity) error {
	if id.StoreID == "" {
		return nil
	}
	if snap.StoreID != "" && snap.StoreID != id.StoreID {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "The catalog snapshot is for store %s, but this till belongs to store %s.", snap.StoreID, id.StoreID)
	}
	if snap.Store.ID != "" && snap.Store.ID != id.StoreID {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "The catalog snapshot holds store %s, but this till belongs to store %s.", snap.Store.ID, id.StoreID)
	}
	return nil
}

// NormalizeTime is how a ledger keeps an instant: UTC, without a monotonic reading.
// Both implementations normalise the same way so that they return equal values.
func NormalizeTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Round(0).UTC()
}

// NormalizeCoupon normalises every instant of a coupon.
func NormalizeCoupon(c tillkeep.Coupon) tillkeep.Coupon {
	c.IssuedAt = NormalizeTime(c.IssuedAt)
	c.CreatedAt = NormalizeTime(c.CreatedAt)
	c.ExpiresAt = NormalizeTime(c.ExpiresAt)
	c.RevokedAt = NormalizeTime(c.RevokedAt)
	return c
}
