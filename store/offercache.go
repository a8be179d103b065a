package store

import (
	"slices"
	"sync"

	"github.com/tillkeep/tillkeep"
)

// offerCache holds the decoded offers of the active catalog generation for the
// committer. Offers are stored as JSON, and decoding one took about half of the CPU the
// committer spent deciding a redemption; a store has few offers and many redemptions
// of each, so the committer decodes each offer once per catalog change instead.
//
// Correctness rests on bbolt's single writer:
//   - only committer transactions (write transactions) read and fill the cache, so
//     what they put in is the committed catalog of that moment;
//   - every other write transaction (catalog snapshot, delta, staged load, and all the
//     rare writes of sync and care) empties the cache inside its own transaction,
//     while it holds the writer lock, so no committer transaction can run between a
//     catalog change and the invalidation, whether that change commits or rolls back;
//   - entries are tagged with the catalog generation they were read from, so a
//     generation switch can never be served stale entries even if a future write path
//     forgot to invalidate.
//
// Read transactions (Lookup) never use it: a reader may see an older catalog than the
// one cached.
type offerCache struct {
	mu    sync.Mutex
	gen   uint64
	byNum map[uint32]cachedOffer
}

type cachedOffer struct {
	id    string
	offer tillkeep.Offer
}

// get returns a private copy of the cached offer with number num of generation gen.
func (c *offerCache) get(gen uint64, num uint32) (string, tillkeep.Offer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byNum == nil || c.gen != gen {
		return "", tillkeep.Offer{}, false
	}
	e, ok := c.byNum[num]
	if !ok {
		return "", tillkeep.Offer{}, false
	}
	return e.id, cloneOffer(e.offer), true
}

// put remembers an offer read by a committer transaction of generation gen.
func (c *offerCache) put(gen uint64, num uint32, id string, o tillkeep.Offer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byNum == nil || c.gen != gen {
		c.gen, c.byNum = gen, make(map[uint32]cachedOffer, 4)
	}
	c.byNum[num] = cachedOffer{id: id, offer: cloneOffer(o)}
}

// invalidate forgets every cached offer. Call it inside a write transaction, before it
// may change the catalog.
func (c *offerCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen, c.byNum = 0, nil
}

// cloneOffer copies o so that the copy shares no memory with it: the Decide callback
// receives the offer in its LocalState and may modify it without touching the cache.
// Every slice and pointer of Offer is copied here (a test checks that none is missed
// when Offer grows a field).
func cloneOffer(o tillkeep.Offer) tillkeep.Offer {
	r := &o.Rules
	r.Stores = slices.Clone(r.Stores)
	r.Zones = slices.Clone(r.Zones)
	r.Concepts = slices.Clone(r.Concepts)
	r.Tills = slices.Clone(r.Tills)
	r.DaysOfWeek = slices.Clone(r.DaysOfWeek)
	r.DaysOfMonth = slices.Clone(r.DaysOfMonth)
	r.HoursOfDay = slices.Clone(r.HoursOfDay)
	if r.NewCustomersOnly != nil {
		n := *r.NewCustomersOnly
		if n.MaxTransactions != nil {
			m := *n.MaxTransactions
			n.MaxTransactions = &m
		}
		r.NewCustomersOnly = &n
	}
	return o
}
