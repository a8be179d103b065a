package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
)

// catalogGen is one generation of the cached catalog, as seen by one transaction.
type catalogGen struct {
	gen                                     uint64
	root, store, offers, offerNums, coupons *bolt.Bucket
}

// activeCatalog returns the catalog readers see, or nil before the first sync.
func activeCatalog(tx *bolt.Tx) *catalogGen {
	v := tx.Bucket(bucketMeta).Get(metaCatGen)
	if len(v) != 8 {
		return nil
	}
	return openGen(tx, binary.BigEndian.Uint64(v))
}

func openGen(tx *bolt.Tx, gen uint64) *catalogGen {
	root := tx.Bucket(bucketCatalog).Bucket(genKey(gen))
	if root == nil {
		return nil
	}
	return &catalogGen{
		gen:       gen,
		root:      root,
		store:     root.Bucket(genStore),
		offers:    root.Bucket(genOffers),
		offerNums: root.Bucket(genOfferNums),
		coupons:   root.Bucket(genCoupons),
	}
}

// createGen makes the buckets of a new, empty generation.
func createGen(tx *bolt.Tx, gen uint64) (*catalogGen, error) {
	root, err := tx.Bucket(bucketCatalog).CreateBucket(genKey(gen))
	if err != nil {
		return nil, fmt.Errorf("create catalog generation %d: %w", gen, err)
	}
	for _, name := range [][]byte{genStore, genOffers, genOfferNums, genCoupons} {
		if _, err := root.CreateBucket(name); err != nil {
			return nil, fmt.Errorf("create catalog bucket %s: %w", name, err)
		}
	}
	return openGen(tx, gen), nil
}

func decodeOffer(v []byte) (tillkeep.Offer, uint32, error) {
	num, k := binary.Uvarint(v)
	if k <= 0 || num > 1<<32-1 {
		return tillkeep.Offer{}, 0, fmt.Errorf("offer record has no valid number")
	}
	var o tillkeep.Offer
	if err := json.Unmarshal(v[k:], &o); err != nil {
		return o, 0, fmt.Errorf("decode offer: %w", err)
	}
	return o, uint32(num), nil
}

func encodeOffer(o *tillkeep.Offer, num uint32) ([]byte, error) {
	j, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("encode offer %s: %w", o.ID, err)
	}
	return append(binary.AppendUvarint(make([]byte, 0, len(j)+5), uint64(num)), j...), nil
}

func numKey(num uint32) []byte {
	return binary.BigEndian.AppendUint32(nil, num)
}

// offer returns the cached offer with id.
func (g *catalogGen) offer(id string) (tillkeep.Offer, uint32, bool, error) {
	v := g.offers.Get([]byte(id))
	if v == nil {
		return tillkeep.Offer{}, 0, false, nil
	}
	o, num, err := decodeOffer(v)
	if err != nil {
		return o, 0, false, fmt.Errorf("offer %s: %w", id, err)
	}
	return o, num, true, nil
}

// lookup returns a cached coupon and its offer. ok is false when either is missing.
func (g *catalogGen) lookup(code string) (c tillkeep.Coupon, o tillkeep.Offer, ok bool, err error) {
	v := g.coupons.Get([]byte(code))
	if v == nil {
		return c, o, false, nil
	}
	c, num, err := decodeCoupon([]byte(code), v)
	if err != nil {
		return c, o, false, err
	}
	id := g.offerNums.Get(numKey(num))
	if id == nil {
		return c, o, false, nil
	}
	c.OfferID = string(id)
	o, _, ok, err = g.offer(c.OfferID)
	return c, o, ok, err
}

// lookupCached is lookup for committer transactions: the coupon's offer comes from
// cache (see offerCache) when it was decoded before in this catalog generation.
func (g *catalogGen) lookupCached(cache *offerCache, code string) (c tillkeep.Coupon, o tillkeep.Offer, ok bool, err error) {
	v := g.coupons.Get([]byte(code))
	if v == nil {
		return c, o, false, nil
	}
	c, num, err := decodeCoupon([]byte(code), v)
	if err != nil {
		return c, o, false, err
	}
	if id, cached, hit := cache.get(g.gen, num); hit {
		c.OfferID = id
		return c, cached, true, nil
	}
	id := g.offerNums.Get(numKey(num))
	if id == nil {
		return c, o, false, nil
	}
	c.OfferID = string(id)
	if o, _, ok, err = g.offer(c.OfferID); err != nil || !ok {
		return c, o, ok, err
	}
	cache.put(g.gen, num, c.OfferID, o)
	return c, o, true, nil
}

func (g *catalogGen) counts() (coupons, offers int) {
	return int(getU64(g.root, keyNCoupons)), int(getU64(g.root, keyNOffers))
}

func (g *catalogGen) storeRecord() (tillkeep.Store, bool, error) {
	var s tillkeep.Store
	v := g.store.Get(keyRecord)
	if v == nil {
		return s, false, nil
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return s, false, fmt.Errorf("decode store record: %w", err)
	}
	return s, true, nil
}

func unknownCoupon(code string) error {
	return tillkeep.Errorf(tillkeep.CodeUnknownCoupon, "The coupon %s is not in this till's catalog.", code)
}
