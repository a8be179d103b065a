package platform

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// The catalog feed: what each till caches of its store's catalog.
//
// A store's scope is every offer aimed at it (its rules' stores, zones and concepts
// match the store record; rules.tills is left to the rule engine, so that one answer
// serves every till of the store) that has not ended more than FeedOfferGrace ago, and
// every coupon of those offers, whatever its status: a till must know revoked and used
// coupons to refuse them. Offers that start later are in scope already; nothing in the
// log marks the moment they start.
//
// A till bootstraps from a snapshot (WriteCatalogSnapshot) read in one transaction at
// the change log's head, then asks for deltas (CatalogDelta): the current state of what
// the change log says changed after its cursor. Old log entries are deleted by
// CompactFeed; the highest deleted sequence is the floor, below which a cursor gets
// CodeRefetchRequired.

// FeedOfferGrace is how long after its end an offer stays in the feed. A till that
// still holds an ended offer refuses its coupons as expired, which says more to a
// cashier than "unknown coupon", and a till whose clock runs behind keeps judging them
// right; a week covers any store-local end of day and a long weekend without a sync.
const FeedOfferGrace = 7 * 24 * time.Hour

// DefaultFeedRetention is how long change-log entries are kept when the configuration
// does not say ([feed] retention): a till whose cursor is older re-fetches a snapshot.
const DefaultFeedRetention = 30 * 24 * time.Hour

// Meta keys of the feed.
const (
	// metaFeedFloor is the highest change-log sequence compaction deleted: deltas can
	// be answered for cursors at or above it.
	metaFeedFloor = "feed.floor_seq"
	// metaFeedFloorAt is the time of the change at the floor, which a cursor at the
	// floor would otherwise no longer find.
	metaFeedFloorAt = "feed.floor_at"
)

// Bounds of the feed's work.
const (
	// snapshotOfferPage is how many offers one read of the offer list returns.
	snapshotOfferPage = 500
	// snapshotCouponBudget bounds the coupons held at once across every offer's page
	// while the snapshot merges them into code order.
	snapshotCouponBudget = 64 << 10
	// maxResentCoupons bounds the coupons a delta resends for an offer whose rules
	// changed; beyond it a snapshot is cheaper, and the till is told to re-fetch.
	maxResentCoupons = 20_000
	// compactBatch bounds the change-log entries one compaction transaction deletes.
	compactBatch = 5_000
)

// aimedAt reports whether o's place rules admit the store st.
func aimedAt(o *tillkeep.Offer, st *tillkeep.Store) bool {
	r := &o.Rules
	return (len(r.Stores) == 0 || slices.Contains(r.Stores, st.ID)) &&
		(len(r.Zones) == 0 || slices.Contains(r.Zones, st.Zone)) &&
		(len(r.Concepts) == 0 || slices.Contains(r.Concepts, st.Concept))
}

// feedExit is when o leaves every feed (zero: never).
func feedExit(o *tillkeep.Offer) time.Time {
	if o.ValidUntil.IsZero() {
		return time.Time{}
	}
	return o.ValidUntil.Add(FeedOfferGrace)
}

// inScope reports whether o belongs to the feed of st at now.
func inScope(o *tillkeep.Offer, st *tillkeep.Store, now time.Time) bool {
	exit := feedExit(o)
	return aimedAt(o, st) && (exit.IsZero() || now.Before(exit))
}

// feedFloor reads the compaction floor.
func feedFloor(tx ReadTx) (seq uint64, at time.Time, err error) {
	v, err := tx.Meta(metaFeedFloor)
	switch {
	case errors.Is(err, ErrNotFound):
		return 0, time.Time{}, nil
	case err != nil:
		return 0, time.Time{}, err
	}
	if seq, err = strconv.ParseUint(string(v), 10, 64); err != nil {
		return 0, time.Time{}, fmt.Errorf("meta %s is %q, not a sequence", metaFeedFloor, v)
	}
	if v, err := tx.Meta(metaFeedFloorAt); err == nil {
		if at, err = time.Parse(time.RFC3339Nano, string(v)); err != nil {
			return 0, time.Time{}, fmt.Errorf("meta %s is %q, not a time", metaFeedFloorAt, v)
		}
	} else if !errors.Is(err, ErrNotFound) {
		return 0, time.Time{}, err
	}
	return seq, at, nil
}

// refetch is the refusal that sends a till to a fresh snapshot.
func refetch(format string, args ...any) error {
	return tillkeep.Errorf(tillkeep.CodeRefetchRequired, format, args...)
}

// feedStore reads the store record of a till's feed.
func feedStore(tx ReadTx, storeID string) (tillkeep.Store, error) {
	st, err := tx.Store(storeID)
	return st, notFound(err, "store %s is not known to the platform", storeID)
}

// scopeOffers lists the offers of st's feed at now, by id.
func scopeOffers(ctx context.Context, tx ReadTx, st *tillkeep.Store, now time.Time) ([]tillkeep.Offer, error) {
	var out []tillkeep.Offer
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		page, err := tx.Offers(after, snapshotOfferPage)
		if err != nil {
			return nil, err
		}
		for i := range page {
			if inScope(&page[i], st, now) {
				out = append(out, page[i])
			}
		}
		if len(page) < snapshotOfferPage {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

// SnapshotInfo describes a snapshot written by WriteCatalogSnapshot.
type SnapshotInfo struct {
	Seq             uint64
	Offers, Coupons int
	ReflectsTillSeq uint64
}

// WriteCatalogSnapshot writes the catalog of till's store to w as a snapshot stream
// (sync/wire), from one read transaction: the store record, the offers of its scope and
// every coupon of those offers in code order, at the change log's head, with the till's
// acknowledged point as read in the same transaction. Coupons are read a page at a time
// per offer and merged, so memory stays bounded whatever the catalog's size, and the
// work is proportional to the store's offers and their coupons, never to the platform's
// whole coupon table. w should be fast (the server spools to a file) because the read
// transaction stays open while it writes.
func (s *Service) WriteCatalogSnapshot(ctx context.Context, till TillRef, w io.Writer) (SnapshotInfo, error) {
	var info SnapshotInfo
	err := s.st.View(ctx, func(tx ReadTx) error {
		info = SnapshotInfo{}
		now := s.now()
		st, err := feedStore(tx, till.StoreID)
		if err != nil {
			return err
		}
		t, err := tx.Till(till.StoreID, till.TillID)
		if err != nil {
			return notFound(err, "till %s/%s is not enrolled", till.StoreID, till.TillID)
		}
		head, err := tx.LastChangeSeq()
		if err != nil {
			return err
		}
		offers, err := scopeOffers(ctx, tx, &st, now)
		if err != nil {
			return err
		}
		sw := wire.NewSnapshotWriter(w)
		if err := sw.Header(wire.SnapshotHeader{Epoch: s.st.Epoch(), StoreID: st.ID, Store: st, Seq: head,
			AsOf: now, ReflectsTillSeq: t.AckedSeq}); err != nil {
			return err
		}
		for i := range offers {
			if err := sw.Offer(&offers[i]); err != nil {
				return err
			}
		}
		if err := mergeCoupons(ctx, tx, offers, sw.Coupon); err != nil {
			return err
		}
		if err := sw.Close(); err != nil {
			return err
		}
		info.Seq, info.ReflectsTillSeq = head, t.AckedSeq
		info.Offers, info.Coupons = sw.Counts()
		return nil
	})
	if err != nil {
		return SnapshotInfo{}, storageErr(err, "write catalog snapshot")
	}
	return info, nil
}

// offerCursor pages through one offer's coupons in code order.
type offerCursor struct {
	offerID string
	page    []tillkeep.Coupon
	i       int
	done    bool
}

func (c *offerCursor) head() *tillkeep.Coupon { return &c.page[c.i] }

// fill makes sure the cursor has a coupon to offer unless the offer has no more.
func (c *offerCursor) fill(tx ReadTx, size int) error {
	if c.i < len(c.page) || c.done {
		return nil
	}
	after := ""
	if len(c.page) > 0 {
		after = c.page[len(c.page)-1].Code
	}
	page, err := tx.CouponsByOffer(c.offerID, after, size)
	if err != nil {
		return fmt.Errorf("coupons of offer %s: %w", c.offerID, err)
	}
	c.page, c.i = page, 0
	c.done = len(page) < size
	return nil
}

// couponHeap orders offer cursors by their next code.
type couponHeap []*offerCursor

func (h couponHeap) Len() int           { return len(h) }
func (h couponHeap) Less(a, b int) bool { return h[a].head().Code < h[b].head().Code }
func (h couponHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *couponHeap) Push(x any)        { *h = append(*h, x.(*offerCursor)) }
func (h *couponHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeCoupons calls emit for every coupon of offers in ascending code order. Codes are
// unique across offers, and each offer's coupons come sorted, so a k-way merge of one
// page per offer yields the global order without ever holding an offer whole.
func mergeCoupons(ctx context.Context, tx ReadTx, offers []tillkeep.Offer, emit func(*tillkeep.Coupon) error) error {
	if len(offers) == 0 {
		return nil
	}
	size := min(max(snapshotCouponBudget/len(offers), 16), 2048)
	h := make(couponHeap, 0, len(offers))
	for i := range offers {
		c := &offerCursor{offerID: offers[i].ID}
		if err := c.fill(tx, size); err != nil {
			return err
		}
		if c.i < len(c.page) {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	for n := 0; len(h) > 0; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		c := h[0]
		if err := emit(c.head()); err != nil {
			return err
		}
		c.i++
		if err := c.fill(tx, size); err != nil {
			return err
		}
		if c.i < len(c.page) {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return nil
}

// FeedPosition is where a till's feed stands, read in one transaction: what a delta
// request is checked against and what its cache is keyed by.
type FeedPosition struct {
	Epoch    string
	Head     uint64
	Floor    uint64
	AckedSeq uint64
	Now      time.Time
}

// CatalogFeedPosition reads the change log's head and floor and the till's
// acknowledged point.
func (s *Service) CatalogFeedPosition(ctx context.Context, till TillRef) (FeedPosition, error) {
	var pos FeedPosition
	err := s.st.View(ctx, func(tx ReadTx) error {
		t, err := tx.Till(till.StoreID, till.TillID)
		if err != nil {
			return notFound(err, "till %s/%s is not enrolled", till.StoreID, till.TillID)
		}
		head, err := tx.LastChangeSeq()
		if err != nil {
			return err
		}
		floor, _, err := feedFloor(tx)
		if err != nil {
			return err
		}
		pos = FeedPosition{Epoch: s.st.Epoch(), Head: head, Floor: floor, AckedSeq: t.AckedSeq, Now: s.now()}
		return nil
	})
	return pos, storageErr(err, "read catalog feed position")
}

// CheckCursor tells whether a delta can continue from since at pos: a cursor below the
// retained history, beyond the head or of another epoch is CodeRefetchRequired.
func (pos FeedPosition) CheckCursor(since uint64, epoch string) error {
	switch {
	case epoch != "" && epoch != pos.Epoch:
		return refetch("the till's catalog comes from platform epoch %s, this platform is epoch %s: fetch a snapshot", epoch, pos.Epoch)
	case since < pos.Floor:
		return refetch("the catalog history before sequence %d was compacted; the till's cursor %d is older: fetch a snapshot", pos.Floor, since)
	case since > pos.Head:
		return refetch("the till's cursor %d is ahead of the platform's feed at %d (a platform restored from an older backup): fetch a snapshot", since, pos.Head)
	}
	return nil
}

// CatalogDelta computes one page of store storeID's feed after since: the current state
// of every offer and coupon of its scope that the change log says changed in the page's
// entries (since, Seq], deduplicated, and the offers that left the scope. It holds
// nothing per till (ReflectsTillSeq is left nil for the caller) so that one answer
// serves every till of the store; head is the change log's head it was computed at.
func (s *Service) CatalogDelta(ctx context.Context, storeID string, since uint64, limit int) (d *wire.Delta, head uint64, err error) {
	if limit <= 0 || limit > wire.MaxDeltaLimit {
		return nil, 0, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "limit must be a number from 1 to %d", wire.MaxDeltaLimit)
	}
	err = s.st.View(ctx, func(tx ReadTx) error {
		d, head = nil, 0
		now := s.now()
		st, err := feedStore(tx, storeID)
		if err != nil {
			return err
		}
		if head, err = tx.LastChangeSeq(); err != nil {
			return err
		}
		floor, floorAt, err := feedFloor(tx)
		if err != nil {
			return err
		}
		pos := FeedPosition{Epoch: s.st.Epoch(), Head: head, Floor: floor}
		if err := pos.CheckCursor(since, ""); err != nil {
			return err
		}
		sinceAt, err := changeTime(tx, since, floor, floorAt)
		if err != nil {
			return err
		}
		changes, err := tx.ChangesSince(since, limit)
		if err != nil {
			return err
		}
		b := deltaBuilder{tx: tx, st: &st, now: now, offers: map[string]*scopedOffer{}}
		d = &wire.Delta{Epoch: s.st.Epoch(), Since: since, Seq: since, AsOf: now}
		if len(changes) > 0 {
			d.Seq = changes[len(changes)-1].Seq
			d.More = len(changes) == limit && d.Seq < head
		}
		if err := b.collect(ctx, changes); err != nil {
			return err
		}
		if err := b.expired(ctx, sinceAt); err != nil {
			return err
		}
		return b.finish(d)
	})
	if err != nil {
		return nil, 0, storageErr(err, "compute catalog delta")
	}
	return d, head, nil
}

// changeTime is when the change at seq was made: the time the till's cursor stands for.
func changeTime(tx ReadTx, seq, floor uint64, floorAt time.Time) (time.Time, error) {
	if seq == 0 {
		return time.Time{}, nil
	}
	if seq == floor {
		return floorAt, nil
	}
	cs, err := tx.ChangesSince(seq-1, 1)
	if err != nil {
		return time.Time{}, err
	}
	if len(cs) == 0 || cs[0].Seq != seq {
		return floorAt, nil
	}
	return cs[0].At, nil
}

// scopedOffer is an offer read while building a delta.
type scopedOffer struct {
	offer   tillkeep.Offer
	exists  bool
	inScope bool
}

// deltaBuilder gathers one delta page inside a read transaction.
type deltaBuilder struct {
	tx     ReadTx
	st     *tillkeep.Store
	now    time.Time
	offers map[string]*scopedOffer
	// changedOffers are offers whose own record changed; resend are those among them
	// whose coupons must be sent again (an update may have brought them into scope).
	changedOffers map[string]bool
	resend        map[string]bool
	codes         map[string]bool
	removed       map[string]bool
	// redemptions are the store's redemptions whose status changed in the page.
	redemptions map[string]bool
}

func (b *deltaBuilder) offer(id string) (*scopedOffer, error) {
	if so, ok := b.offers[id]; ok {
		return so, nil
	}
	so := &scopedOffer{}
	o, err := b.tx.Offer(id)
	switch {
	case err == nil:
		so.offer, so.exists = o, true
		so.inScope = inScope(&o, b.st, b.now)
	case !errors.Is(err, ErrNotFound):
		return nil, err
	}
	b.offers[id] = so
	return so, nil
}

// collect reads what the change entries name.
func (b *deltaBuilder) collect(ctx context.Context, changes []Change) error {
	b.changedOffers, b.resend, b.codes, b.removed = map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	b.redemptions = map[string]bool{}
	for _, c := range changes {
		switch c.Entity {
		case EntityStore:
			if c.Key == b.st.ID {
				// Zone, concept, time zone or currency may have changed: the whole scope
				// may differ, which only a snapshot answers.
				return refetch("the record of store %s changed at sequence %d: fetch a snapshot", b.st.ID, c.Seq)
			}
		case EntityOffer:
			so, err := b.offer(c.Key)
			if err != nil {
				return err
			}
			switch {
			case so.inScope:
				b.changedOffers[c.Key] = true
				if c.Event != EventCreated {
					b.resend[c.Key] = true
				}
			case so.exists && c.Event != EventCreated:
				// An updated offer that no longer applies may have applied before the
				// update; the feed cannot tell, and removing an offer a till never held
				// changes nothing there.
				b.removed[c.Key] = true
			}
		case EntityRedemption:
			// Outcomes for every till of the store: the answer is shared by them and
			// each till is handed only its own (feed_http).
			if c.StoreID == b.st.ID && c.Event != EventCreated {
				b.redemptions[c.Key] = true
			}
		case EntityCoupon:
			if c.OfferID == "" {
				continue
			}
			so, err := b.offer(c.OfferID)
			if err != nil {
				return err
			}
			if so.inScope {
				b.codes[c.Key] = true
			}
		}
	}
	for id := range b.resend {
		if err := b.resendCoupons(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// resendCoupons adds every coupon of an offer whose rules changed.
func (b *deltaBuilder) resendCoupons(ctx context.Context, offerID string) error {
	after := ""
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := b.tx.CouponsByOffer(offerID, after, 2048)
		if err != nil {
			return err
		}
		for _, c := range page {
			b.codes[c.Code] = true
		}
		n += len(page)
		if n > maxResentCoupons {
			return refetch("offer %s changed and holds more than %d coupons: fetch a snapshot", offerID, maxResentCoupons)
		}
		if len(page) < 2048 {
			return nil
		}
		after = page[len(page)-1].Code
	}
}

// expired lists the offers aimed at the store whose grace period ended after sinceAt:
// time moves them out of the scope without any entry in the change log.
func (b *deltaBuilder) expired(ctx context.Context, sinceAt time.Time) error {
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := b.tx.Offers(after, snapshotOfferPage)
		if err != nil {
			return err
		}
		for i := range page {
			o := &page[i]
			exit := feedExit(o)
			if !exit.IsZero() && exit.After(sinceAt) && !b.now.Before(exit) && aimedAt(o, b.st) {
				b.removed[o.ID] = true
			}
		}
		if len(page) < snapshotOfferPage {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

// finish reads the current state of every named coupon and fills d.
func (b *deltaBuilder) finish(d *wire.Delta) error {
	codes := make([]string, 0, len(b.codes))
	for code := range b.codes {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	d.Coupons = make([]wire.SnapshotCoupon, 0, len(codes))
	// Every coupon's offer goes with it, so that a page applies on its own.
	offerIDs := maps.Clone(b.changedOffers)
	for _, code := range codes {
		c, err := b.tx.Coupon(code)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		so, err := b.offer(c.OfferID)
		if err != nil {
			return err
		}
		if !so.inScope {
			continue
		}
		d.Coupons = append(d.Coupons, wire.CompactCoupon(c))
		offerIDs[c.OfferID] = true
	}
	d.Offers = make([]tillkeep.Offer, 0, len(offerIDs))
	for _, id := range slices.Sorted(maps.Keys(offerIDs)) {
		d.Offers = append(d.Offers, b.offers[id].offer)
	}
	d.RemovedOffers = slices.Sorted(maps.Keys(b.removed))
	if d.RemovedOffers == nil {
		d.RemovedOffers = []string{}
	}
	for _, id := range slices.Sorted(maps.Keys(b.redemptions)) {
		r, err := b.tx.Redemption(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		d.Outcomes = append(d.Outcomes, wire.RedemptionOutcome{RedemptionID: r.ID, TillID: r.TillID,
			Status: r.Status, ConflictKind: r.ConflictKind, ConflictID: r.ConflictID})
	}
	return nil
}

// CompactFeed deletes change-log entries made before before, oldest first, a batch per
// transaction, and moves the feed's floor to the last one deleted. It returns how many
// it deleted. Tills whose cursor falls below the floor re-fetch a snapshot.
func (s *Service) CompactFeed(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var (
			upTo uint64
			upAt time.Time
		)
		err := s.st.View(ctx, func(tx ReadTx) error {
			upTo, upAt = 0, time.Time{}
			floor, _, err := feedFloor(tx)
			if err != nil {
				return err
			}
			page, err := tx.ChangesSince(floor, compactBatch)
			if err != nil {
				return err
			}
			for _, c := range page {
				if !c.At.Before(before) {
					break
				}
				upTo, upAt = c.Seq, c.At
			}
			return nil
		})
		if err != nil {
			return total, storageErr(err, "find old catalog changes")
		}
		if upTo == 0 {
			return total, nil
		}
		var n int
		err = s.st.Update(ctx, func(tx Tx) error {
			n = 0
			floor, _, err := feedFloor(tx)
			if err != nil {
				return err
			}
			if upTo <= floor {
				return nil // another compaction got there first
			}
			if n, err = tx.DeleteChangesThrough(upTo, 0); err != nil {
				return err
			}
			if err := tx.PutMeta(metaFeedFloor, []byte(strconv.FormatUint(upTo, 10))); err != nil {
				return err
			}
			return tx.PutMeta(metaFeedFloorAt, []byte(upAt.UTC().Format(time.RFC3339Nano)))
		})
		if err != nil {
			return total, storageErr(err, "delete old catalog changes")
		}
		total += n
		if n == 0 {
			return total, nil
		}
	}
}
