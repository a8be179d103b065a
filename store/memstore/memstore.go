package memstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/store"
	"github.com/tillkeep/tillkeep/store/internal/ledgercore"
)

var (
	_ tillkeep.TillLedger  = (*Store)(nil)
	_ tillkeep.TillJournal = (*Store)(nil)
	_ tillkeep.TillCatalog = (*Store)(nil)
	_ store.Ledger         = (*Store)(nil)
)

// Store is an in-memory ledger. The zero value is not usable; call New.
type Store struct {
	mu     sync.Mutex
	closed bool
	id     ledgercore.Identity
	// catalogMu is held by a catalog load from BeginCatalog to Commit or Abort, so that
	// no delta or other snapshot slips in between, as with the bbolt ledger.
	catalogMu sync.Mutex

	// Catalog. Offers are kept as JSON so that callers never share slices with the
	// cache, as with the bbolt ledger.
	storeRec *tillkeep.Store
	offers   map[string][]byte
	coupons  map[string]tillkeep.Coupon
	catSeq   uint64
	reflects uint64
	syncedAt time.Time

	// Journal: entries pruned+1 .. lastSeq.
	journal     []tillkeep.JournalEntry
	lastSeq     uint64
	ackedSeq    uint64
	pruned      uint64
	redemptions map[string]redemptionRef
	outcomes    map[string]tillkeep.Outcome

	localCoupon   map[string]int
	localOffer    map[string]int
	localCustomer map[customerKey]customerUse
	offline       int
	lastHLC       tillkeep.HLC
	cursors       map[string]string
	intents       map[string][2]string // transaction_id → request hash, redemption id
}

type redemptionRef struct {
	seq, reversalSeq uint64
	transactionID    string
}

type customerKey struct{ offerID, customerID string }

type customerUse struct {
	count int
	last  time.Time
}

// New returns an empty ledger of the given till. Empty ids are not checked.
func New(storeID, tillID string) *Store {
	return &Store{
		id:            ledgercore.Identity{StoreID: storeID, TillID: tillID},
		offers:        map[string][]byte{},
		coupons:       map[string]tillkeep.Coupon{},
		redemptions:   map[string]redemptionRef{},
		outcomes:      map[string]tillkeep.Outcome{},
		localCoupon:   map[string]int{},
		localOffer:    map[string]int{},
		localCustomer: map[customerKey]customerUse{},
		cursors:       map[string]string{},
		intents:       map[string][2]string{},
	}
}

// lock takes the mutex unless the context is done or the ledger closed.
func (s *Store) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	return nil
}

// Close implements store.Ledger.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *Store) offer(id string) (tillkeep.Offer, bool, error) {
	var o tillkeep.Offer
	j, ok := s.offers[id]
	if !ok {
		return o, false, nil
	}
	if err := json.Unmarshal(j, &o); err != nil {
		return o, false, fmt.Errorf("decode offer %s: %w", id, err)
	}
	return o, true, nil
}

func (s *Store) lookup(code string) (tillkeep.Coupon, tillkeep.Offer, error) {
	c, ok := s.coupons[code]
	if !ok {
		return c, tillkeep.Offer{}, unknownCoupon(code)
	}
	o, ok, err := s.offer(c.OfferID)
	if err != nil {
		return c, o, err
	}
	if !ok {
		return c, o, unknownCoupon(code)
	}
	return c, o, nil
}

func unknownCoupon(code string) error {
	return tillkeep.Errorf(tillkeep.CodeUnknownCoupon, "The coupon %s is not in this till's catalog.", code)
}

func (s *Store) localState(c tillkeep.Coupon, o tillkeep.Offer, customerID string) tillkeep.LocalState {
	st := tillkeep.LocalState{
		Coupon:                 c,
		Offer:                  o,
		LocalCouponRedemptions: s.localCoupon[c.Code],
		LocalOfferRedemptions:  int64(s.localOffer[o.ID]),
		OfflineRedemptions:     s.offline,
		CatalogSyncedAt:        s.syncedAt,
		LastHLC:                s.lastHLC,
	}
	if customerID != "" {
		u := s.localCustomer[customerKey{o.ID, customerID}]
		st.LocalCustomerRedemptions, st.LocalCustomerLast = u.count, u.last
	}
	return st
}

// Lookup implements tillkeep.TillLedger.
func (s *Store) Lookup(ctx context.Context, code, customerID string) (tillkeep.LocalState, error) {
	if err := s.lock(ctx); err != nil {
		return tillkeep.LocalState{}, err
	}
	defer s.mu.Unlock()
	c, o, err := s.lookup(code)
	if err != nil {
		return tillkeep.LocalState{}, err
	}
	return s.localState(c, o, customerID), nil
}

// Record implements tillkeep.TillLedger.
func (s *Store) Record(ctx context.Context, req tillkeep.RecordRequest) (tillkeep.Outcome, bool, error) {
	if err := ledgercore.CheckRecordRequest(req); err != nil {
		return tillkeep.Outcome{}, false, err
	}
	if err := s.lock(ctx); err != nil {
		return tillkeep.Outcome{}, false, err
	}
	defer s.mu.Unlock()
	if stored, ok := s.outcomes[req.TransactionID]; ok {
		out, err := ledgercore.Replay(stored, req.RequestHash)
		return out, err == nil, err
	}
	var state tillkeep.LocalState
	c, o, err := s.lookup(req.Code)
	switch {
	case err == nil:
		state = s.localState(c, o, req.CustomerID)
	case req.AllowUncached && tillkeep.ErrorCode(err) == tillkeep.CodeUnknownCoupon:
		// The platform decided online: zero coupon and offer, the till's own counters.
		o = tillkeep.Offer{}
		state = s.localState(tillkeep.Coupon{}, o, "")
		state.LocalCouponRedemptions = s.localCoupon[req.Code]
		state.LocalOfferRedemptions = 0
	default:
		return tillkeep.Outcome{}, false, err
	}
	entry, err := ledgercore.Decide(req, state)
	if err != nil {
		return tillkeep.Outcome{}, false, err
	}
	if entry, err = ledgercore.CompleteRedemption(req, entry, s.id, o.ID, s.lastSeq+1); err != nil {
		return tillkeep.Outcome{}, false, err
	}
	if _, dup := s.redemptions[entry.RedemptionID]; dup {
		return tillkeep.Outcome{}, false, tillkeep.Errorf(tillkeep.CodeConflict, "The redemption id %s is already in the journal.", entry.RedemptionID)
	}
	out := ledgercore.AcceptedOutcome(req, entry)
	s.journal = append(s.journal, entry)
	s.lastSeq = entry.Seq
	s.redemptions[entry.RedemptionID] = redemptionRef{seq: entry.Seq, transactionID: req.TransactionID}
	s.outcomes[req.TransactionID] = out
	delete(s.intents, req.TransactionID)
	s.addLocalUse(&entry)
	if entry.Mode == tillkeep.ModeOffline {
		s.offline++
	}
	s.advanceHLC(entry.HLC)
	return out, false, nil
}

func (s *Store) advanceHLC(h tillkeep.HLC) {
	if s.lastHLC.Less(h) {
		s.lastHLC = h
	}
}

func (s *Store) addLocalUse(e *tillkeep.JournalEntry) {
	s.localCoupon[e.Code]++
	if e.OfferID == "" {
		return // recorded for a coupon the cache did not hold: counts for its code only
	}
	s.localOffer[e.OfferID]++
	if e.CustomerID == "" {
		return
	}
	k := customerKey{e.OfferID, e.CustomerID}
	u := s.localCustomer[k]
	u.count++
	if e.WallTime.After(u.last) {
		u.last = e.WallTime
	}
	s.localCustomer[k] = u
}

func decrement(m map[string]int, k string) {
	if m[k] <= 1 {
		delete(m, k)
		return
	}
	m[k]--
}

// undoLocalUse must run after the redemption is marked reversed.
func (s *Store) undoLocalUse(e *tillkeep.JournalEntry) {
	decrement(s.localCoupon, e.Code)
	if e.OfferID == "" {
		return
	}
	decrement(s.localOffer, e.OfferID)
	if e.CustomerID == "" {
		return
	}
	k := customerKey{e.OfferID, e.CustomerID}
	u := s.localCustomer[k]
	u.count--
	if u.count <= 0 {
		delete(s.localCustomer, k)
		return
	}
	found := false
	for i := len(s.journal) - 1; i >= 0 && s.journal[i].Seq > s.reflects; i-- {
		o := &s.journal[i]
		if s.counted(o) && o.OfferID == e.OfferID && o.CustomerID == e.CustomerID {
			u.last, found = o.WallTime, true
			break
		}
	}
	if !found {
		u.last = e.WallTime
	}
	s.localCustomer[k] = u
}

// counted reports whether a journal entry is a redemption that is not reversed.
func (s *Store) counted(e *tillkeep.JournalEntry) bool {
	return e.Kind == tillkeep.EntryRedemption && s.redemptions[e.RedemptionID].reversalSeq == 0
}

func (s *Store) entry(seq uint64) (tillkeep.JournalEntry, bool) {
	if seq <= s.pruned || seq > s.lastSeq {
		return tillkeep.JournalEntry{}, false
	}
	return s.journal[seq-s.pruned-1], true
}

// Reverse implements tillkeep.TillLedger.
func (s *Store) Reverse(ctx context.Context, req tillkeep.ReverseRequest) (tillkeep.Outcome, error) {
	if err := ledgercore.CheckReverseRequest(req); err != nil {
		return tillkeep.Outcome{}, err
	}
	if err := s.lock(ctx); err != nil {
		return tillkeep.Outcome{}, err
	}
	defer s.mu.Unlock()
	ref, ok := s.redemptions[req.RedemptionID]
	if !ok {
		return tillkeep.Outcome{}, tillkeep.Errorf(tillkeep.CodeNotFound, "No redemption %s was made at this till.", req.RedemptionID)
	}
	stored := s.outcomes[ref.transactionID]
	if ref.reversalSeq != 0 {
		return stored, nil
	}
	original, ok := s.entry(ref.seq)
	if !ok {
		return tillkeep.Outcome{}, tillkeep.Errorf(tillkeep.CodeNotReversible, "The redemption %s is too old to reverse at this till: its journal entry was pruned.", req.RedemptionID)
	}
	rev, err := ledgercore.DecideReversal(req, original, s.lastHLC)
	if err != nil {
		return tillkeep.Outcome{}, err
	}
	if rev, err = ledgercore.CompleteReversal(original, rev, s.id, s.lastSeq+1); err != nil {
		return tillkeep.Outcome{}, err
	}
	out := ledgercore.ReversedOutcome(stored, original)
	s.journal = append(s.journal, rev)
	s.lastSeq = rev.Seq
	ref.reversalSeq = rev.Seq
	s.redemptions[req.RedemptionID] = ref
	s.outcomes[out.TransactionID] = out
	if original.Seq > s.reflects {
		s.undoLocalUse(&original)
	}
	s.advanceHLC(rev.HLC)
	return out, nil
}

// OutcomeByTransaction implements tillkeep.TillLedger.
func (s *Store) OutcomeByTransaction(ctx context.Context, transactionID string) (tillkeep.Outcome, bool, error) {
	if err := s.lock(ctx); err != nil {
		return tillkeep.Outcome{}, false, err
	}
	defer s.mu.Unlock()
	out, ok := s.outcomes[transactionID]
	return out, ok, nil
}

// Status implements tillkeep.TillLedger.
func (s *Store) Status(ctx context.Context) (tillkeep.LedgerStatus, error) {
	if err := s.lock(ctx); err != nil {
		return tillkeep.LedgerStatus{}, err
	}
	defer s.mu.Unlock()
	st := tillkeep.LedgerStatus{
		Coupons:            len(s.coupons),
		Offers:             len(s.offers),
		SyncedAt:           s.syncedAt,
		LastSeq:            s.lastSeq,
		AckedSeq:           s.ackedSeq,
		OfflineRedemptions: s.offline,
	}
	if s.lastSeq > s.ackedSeq {
		st.PendingUploads = int(s.lastSeq - s.ackedSeq)
	}
	return st, nil
}

// Pending implements tillkeep.TillJournal.
func (s *Store) Pending(ctx context.Context, after uint64, limit int) ([]tillkeep.JournalEntry, error) {
	return s.Journal(ctx, after, limit)
}

// Journal implements store.Ledger.
func (s *Store) Journal(ctx context.Context, after uint64, limit int) ([]tillkeep.JournalEntry, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	limit = ledgercore.PageSize(limit)
	start := uint64(0)
	if after > s.pruned {
		start = after - s.pruned
	}
	if start >= uint64(len(s.journal)) {
		return []tillkeep.JournalEntry{}, nil
	}
	end := min(start+uint64(limit), uint64(len(s.journal)))
	return slices.Clone(s.journal[start:end]), nil
}

func beyondJournal(seq, last uint64) error {
	return tillkeep.Errorf(tillkeep.CodeConflict, "Sequence %d is beyond this till's journal, which ends at %d.", seq, last)
}

// Acknowledge implements tillkeep.TillJournal.
func (s *Store) Acknowledge(ctx context.Context, seq uint64) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if seq > s.lastSeq {
		return beyondJournal(seq, s.lastSeq)
	}
	s.ackedSeq = max(s.ackedSeq, seq)
	s.offline = 0
	return nil
}

// AckedSeq implements tillkeep.TillJournal.
func (s *Store) AckedSeq(ctx context.Context) (uint64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	return s.ackedSeq, nil
}

// SetAckedSeq implements store.Ledger.
func (s *Store) SetAckedSeq(ctx context.Context, seq uint64) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if seq > s.lastSeq {
		return beyondJournal(seq, s.lastSeq)
	}
	if seq < s.pruned {
		return tillkeep.Errorf(tillkeep.CodeConflict, "Entries up to %d were pruned from this till's journal; they cannot be sent again.", s.pruned)
	}
	s.ackedSeq = seq
	return nil
}

// PruneJournal implements store.Ledger.
func (s *Store) PruneJournal(ctx context.Context, upTo uint64) (int, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	if upTo > s.ackedSeq {
		return 0, tillkeep.Errorf(tillkeep.CodeConflict, "Cannot prune the journal up to %d: the platform has acknowledged only up to %d.", upTo, s.ackedSeq)
	}
	if upTo > s.reflects {
		return 0, tillkeep.Errorf(tillkeep.CodeConflict, "Cannot prune the journal up to %d: the catalog reflects this till's entries only up to %d.", upTo, s.reflects)
	}
	if upTo <= s.pruned {
		return 0, nil
	}
	n := int(upTo - s.pruned)
	s.journal = slices.Clone(s.journal[n:])
	s.pruned = upTo
	return n, nil
}

// Store implements tillkeep.TillCatalog.
func (s *Store) Store(ctx context.Context) (tillkeep.Store, error) {
	if err := s.lock(ctx); err != nil {
		return tillkeep.Store{}, err
	}
	defer s.mu.Unlock()
	if s.storeRec == nil {
		return tillkeep.Store{}, tillkeep.Errorf(tillkeep.CodeNotFound, "This till has not received its store's catalog yet.")
	}
	return *s.storeRec, nil
}

func encodeOffers(offers []tillkeep.Offer) (map[string][]byte, error) {
	m := make(map[string][]byte, len(offers))
	for i := range offers {
		j, err := json.Marshal(&offers[i])
		if err != nil {
			return nil, fmt.Errorf("encode offer %s: %w", offers[i].ID, err)
		}
		m[offers[i].ID] = j
	}
	return m, nil
}

// ReplaceCatalog implements tillkeep.TillCatalog through BeginCatalog.
func (s *Store) ReplaceCatalog(ctx context.Context, snap tillkeep.CatalogSnapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ledgercore.CheckSnapshotIdentity(snap, s.id); err != nil {
		return err
	}
	if err := ledgercore.CheckCatalog(snap.Offers, snap.Coupons, nil, nil); err != nil {
		return err
	}
	load, err := s.BeginCatalog(ctx, snap.Store, snap.Offers)
	if err != nil {
		return err
	}
	defer load.Abort()
	if err := load.Add(ctx, snap.Coupons); err != nil {
		return err
	}
	return load.Commit(ctx, snap.Seq, snap.AsOf, snap.ReflectsTillSeq)
}

// BeginCatalog implements store.Ledger.
func (s *Store) BeginCatalog(ctx context.Context, st tillkeep.Store, offers []tillkeep.Offer) (store.CatalogLoader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ledgercore.CheckSnapshotIdentity(tillkeep.CatalogSnapshot{Store: st}, s.id); err != nil {
		return nil, err
	}
	if err := ledgercore.CheckCatalog(offers, nil, nil, nil); err != nil {
		return nil, err
	}
	encoded, err := encodeOffers(offers)
	if err != nil {
		return nil, err
	}
	storeJSON, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode store record: %w", err)
	}
	var rec tillkeep.Store
	if err := json.Unmarshal(storeJSON, &rec); err != nil {
		return nil, fmt.Errorf("decode store record: %w", err)
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	s.mu.Unlock()
	s.catalogMu.Lock()
	return &catalogLoad{s: s, store: rec, offers: encoded, coupons: map[string]tillkeep.Coupon{}}, nil
}

// catalogLoad is the in-memory ledger's CatalogLoader: it stages into maps of its own
// and swaps them in at Commit.
type catalogLoad struct {
	s       *Store
	store   tillkeep.Store
	offers  map[string][]byte
	coupons map[string]tillkeep.Coupon
	over    error
}

func (l *catalogLoad) end(cause error) {
	if l.over != nil {
		return
	}
	l.over = cause
	l.offers, l.coupons = nil, nil
	l.s.catalogMu.Unlock()
}

func (l *catalogLoad) fail(err error) error {
	l.end(fmt.Errorf("this catalog load is already over: an earlier step failed: %w", err))
	return err
}

// Add implements store.CatalogLoader.
func (l *catalogLoad) Add(ctx context.Context, coupons []tillkeep.Coupon) error {
	if l.over != nil {
		return l.over
	}
	if err := ctx.Err(); err != nil {
		return l.fail(err)
	}
	known := func(id string) bool { _, ok := l.offers[id]; return ok }
	if err := ledgercore.CheckCatalog(nil, coupons, nil, known); err != nil {
		return l.fail(err)
	}
	for _, c := range coupons {
		if _, dup := l.coupons[c.Code]; dup {
			return l.fail(tillkeep.Errorf(tillkeep.CodeInvalidRequest, "Catalog coupon %s appears twice.", c.Code))
		}
		l.coupons[c.Code] = ledgercore.NormalizeCoupon(c)
	}
	return nil
}

// Commit implements store.CatalogLoader.
func (l *catalogLoad) Commit(ctx context.Context, seq uint64, asOf time.Time, reflectsTillSeq uint64) error {
	if l.over != nil {
		return l.over
	}
	if err := l.s.lock(ctx); err != nil {
		return l.fail(err)
	}
	s := l.s
	rec := l.store
	s.storeRec = &rec
	s.offers, s.coupons = l.offers, l.coupons
	s.setFeedPosition(seq, asOf, reflectsTillSeq)
	s.mu.Unlock()
	l.end(errors.New("this catalog load is already over: it was committed"))
	return nil
}

// Abort implements store.CatalogLoader.
func (l *catalogLoad) Abort() {
	l.end(errors.New("this catalog load is already over: it was aborted"))
}

func (s *Store) setFeedPosition(seq uint64, asOf time.Time, reflects uint64) {
	s.catSeq = seq
	s.syncedAt = ledgercore.NormalizeTime(asOf)
	s.reflects = min(reflects, s.lastSeq)
	clear(s.localCoupon)
	clear(s.localOffer)
	clear(s.localCustomer)
	start := uint64(0)
	if s.reflects > s.pruned {
		start = s.reflects - s.pruned
	}
	for i := start; i < uint64(len(s.journal)); i++ {
		if e := &s.journal[i]; s.counted(e) {
			s.addLocalUse(e)
		}
	}
}

// ApplyCatalogChanges implements store.Ledger.
func (s *Store) ApplyCatalogChanges(ctx context.Context, seq uint64, asOf time.Time, offers []tillkeep.Offer,
	coupons []tillkeep.Coupon, removedOffers []string, reflectsTillSeq uint64) error {
	changed, err := encodeOffers(offers)
	if err != nil {
		return err
	}
	// A delta waits for a catalog load in progress, as with the bbolt ledger.
	s.catalogMu.Lock()
	defer s.catalogMu.Unlock()
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if seq < s.catSeq {
		return tillkeep.Errorf(tillkeep.CodeConflict, "Catalog changes at sequence %d are older than the cached catalog at %d.", seq, s.catSeq)
	}
	known := func(id string) bool { _, ok := s.offers[id]; return ok }
	if err := ledgercore.CheckCatalog(offers, coupons, removedOffers, known); err != nil {
		return err
	}
	for id, j := range changed {
		s.offers[id] = j
	}
	for _, c := range coupons {
		s.coupons[c.Code] = ledgercore.NormalizeCoupon(c)
	}
	if len(removedOffers) > 0 {
		gone := make(map[string]bool, len(removedOffers))
		for _, id := range removedOffers {
			gone[id] = true
			delete(s.offers, id)
		}
		for code, c := range s.coupons {
			if gone[c.OfferID] {
				delete(s.coupons, code)
			}
		}
	}
	s.setFeedPosition(seq, asOf, reflectsTillSeq)
	return nil
}

// CatalogState implements store.Ledger.
func (s *Store) CatalogState(ctx context.Context) (store.CatalogState, error) {
	if err := s.lock(ctx); err != nil {
		return store.CatalogState{}, err
	}
	defer s.mu.Unlock()
	return store.CatalogState{
		Seq:             s.catSeq,
		SyncedAt:        s.syncedAt,
		ReflectsTillSeq: s.reflects,
		Coupons:         len(s.coupons),
		Offers:          len(s.offers),
	}, nil
}

// MarkSynced implements store.Ledger.
func (s *Store) MarkSynced(ctx context.Context, at time.Time) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if at.After(s.syncedAt) {
		s.syncedAt = ledgercore.NormalizeTime(at)
	}
	return nil
}

// MergeHLC implements store.Ledger.
func (s *Store) MergeHLC(ctx context.Context, remote tillkeep.HLC, nowMS int64) (tillkeep.HLC, error) {
	if err := s.lock(ctx); err != nil {
		return tillkeep.HLC{}, err
	}
	defer s.mu.Unlock()
	s.lastHLC = tillkeep.MergeHLC(s.lastHLC, remote, nowMS)
	return s.lastHLC, nil
}

// Cursor implements store.Ledger.
func (s *Store) Cursor(ctx context.Context, name string) (string, error) {
	if err := s.lock(ctx); err != nil {
		return "", err
	}
	defer s.mu.Unlock()
	return s.cursors[name], nil
}

// SetCursor implements store.Ledger.
func (s *Store) SetCursor(ctx context.Context, name, value string) error {
	if name == "" {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "A sync cursor needs a name.")
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if value == "" {
		delete(s.cursors, name)
	} else {
		s.cursors[name] = value
	}
	return nil
}

// RememberIntent implements store.Ledger.
func (s *Store) RememberIntent(ctx context.Context, transactionID, requestHash, redemptionID string) error {
	if transactionID == "" || redemptionID == "" {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "An intent needs a transaction_id and a redemption id.")
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.intents[transactionID] = [2]string{requestHash, redemptionID}
	return nil
}

// Intent implements store.Ledger.
func (s *Store) Intent(ctx context.Context, transactionID string) (requestHash, redemptionID string, ok bool, err error) {
	if err := s.lock(ctx); err != nil {
		return "", "", false, err
	}
	defer s.mu.Unlock()
	v, ok := s.intents[transactionID]
	return v[0], v[1], ok, nil
}

// ForgetIntent implements store.Ledger.
func (s *Store) ForgetIntent(ctx context.Context, transactionID string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.intents, transactionID)
	return nil
}
