package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/store/internal/ledgercore"
)

// snapshotChunk is how many coupons ReplaceCatalog stages per transaction. Each chunk
// holds bbolt's writer lock briefly, so redemptions keep committing while a large
// snapshot loads.
const snapshotChunk = 4096

// ReplaceCatalog implements tillkeep.TillCatalog through BeginCatalog: the snapshot is
// written into a new catalog generation over several transactions, then switched to in
// one transaction that also records the feed position and recounts local use from the
// journal entries after snap.ReflectsTillSeq. Until that last commit readers see the
// old catalog; a crash before it leaves the old catalog in place (the half-written
// generation is dropped at the next Open). Codes must be unique and every coupon's
// offer must be in the snapshot; otherwise nothing changes and the error has
// CodeInvalidRequest.
func (db *DB) ReplaceCatalog(ctx context.Context, snap tillkeep.CatalogSnapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ledgercore.CheckSnapshotIdentity(snap, db.id); err != nil {
		return err
	}
	if err := ledgercore.CheckCatalog(snap.Offers, snap.Coupons, nil, nil); err != nil {
		return err
	}
	order, err := couponOrder(snap.Coupons)
	if err != nil {
		return err
	}
	load, err := db.BeginCatalog(ctx, snap.Store, snap.Offers)
	if err != nil {
		return err
	}
	defer load.Abort()
	chunk := snap.Coupons
	if order != nil {
		chunk = make([]tillkeep.Coupon, 0, min(snapshotChunk, len(snap.Coupons)))
	}
	for start := 0; start < len(snap.Coupons); start += snapshotChunk {
		end := min(start+snapshotChunk, len(snap.Coupons))
		part := snap.Coupons[start:end]
		if order != nil {
			// Chunks are fed in code order, so that pages are filled completely.
			chunk = chunk[:0]
			for _, i := range order[start:end] {
				chunk = append(chunk, snap.Coupons[i])
			}
			part = chunk
		}
		if err := load.Add(ctx, part); err != nil {
			return err
		}
	}
	return load.Commit(ctx, snap.Seq, snap.AsOf, snap.ReflectsTillSeq)
}

func putOffer(g *catalogGen, o *tillkeep.Offer, num uint32) error {
	v, err := encodeOffer(o, num)
	if err != nil {
		return err
	}
	if err := g.offers.Put([]byte(o.ID), v); err != nil {
		return fmt.Errorf("put offer %s: %w", o.ID, err)
	}
	return g.offerNums.Put(numKey(num), []byte(o.ID))
}

// setFeedPosition records where the catalog stands and recounts local use.
func (db *DB) setFeedPosition(tx *bolt.Tx, seq uint64, asOf time.Time, reflects uint64) error {
	meta := tx.Bucket(bucketMeta)
	if last := getU64(meta, metaLastSeq); reflects > last {
		// The platform counts entries this till does not have: the till's file is
		// older than what it uploaded (restored from a backup). Nothing after "last"
		// can be local use.
		db.log.Warn("catalog reflects journal entries this till does not hold", "reflects_till_seq", reflects, "last_seq", last)
		reflects = last
	}
	if err := putU64(meta, metaCatSeq, seq); err != nil {
		return err
	}
	if err := putTime(meta, metaSyncedAt, asOf); err != nil {
		return err
	}
	if err := putU64(meta, metaReflects, reflects); err != nil {
		return err
	}
	return rebuildLocalUse(tx, reflects)
}

// dropGen deletes a staged generation that was never switched to.
func (db *DB) dropGen(gen uint64) {
	err := db.update("drop staged catalog", func(tx *bolt.Tx) error {
		if active := tx.Bucket(bucketMeta).Get(metaCatGen); len(active) == 8 && binary.BigEndian.Uint64(active) == gen {
			return nil
		}
		if tx.Bucket(bucketCatalog).Bucket(genKey(gen)) == nil {
			return nil
		}
		return tx.Bucket(bucketCatalog).DeleteBucket(genKey(gen))
	})
	if err != nil {
		db.log.Warn("could not drop a staged catalog; it is dropped at the next open", "generation", gen, "err", err)
	}
}

// dropStagedCatalogs deletes generations left by a snapshot load that did not finish.
func dropStagedCatalogs(tx *bolt.Tx, log *slog.Logger) error {
	active := tx.Bucket(bucketMeta).Get(metaCatGen)
	cat := tx.Bucket(bucketCatalog)
	var stale [][]byte
	err := cat.ForEachBucket(func(k []byte) error {
		if len(active) != 8 || !bytes.Equal(k[1:], active) {
			stale = append(stale, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		log.Info("dropping an unfinished catalog load", "generation", decodeSeq(k[1:]))
		if err := cat.DeleteBucket(k); err != nil {
			return fmt.Errorf("drop unfinished catalog: %w", err)
		}
	}
	return nil
}

// ApplyCatalogChanges applies a catalog delta in one transaction (see Ledger).
func (db *DB) ApplyCatalogChanges(ctx context.Context, seq uint64, asOf time.Time, offers []tillkeep.Offer,
	coupons []tillkeep.Coupon, removedOffers []string, reflectsTillSeq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db.catalogMu.Lock()
	defer db.catalogMu.Unlock()
	return db.update("apply catalog changes", func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if cur := getU64(meta, metaCatSeq); seq < cur {
			return tillkeep.Errorf(tillkeep.CodeConflict, "Catalog changes at sequence %d are older than the cached catalog at %d.", seq, cur)
		}
		g := activeCatalog(tx)
		if g == nil {
			gen := getU64(meta, metaNextGen) + 1
			var err error
			if g, err = createGen(tx, gen); err != nil {
				return err
			}
			if err := putU64(meta, metaNextGen, gen); err != nil {
				return err
			}
			if err := putU64(meta, metaCatGen, gen); err != nil {
				return err
			}
		}
		known := func(id string) bool { return g.offers.Get([]byte(id)) != nil }
		if err := ledgercore.CheckCatalog(offers, coupons, removedOffers, known); err != nil {
			return err
		}
		nOffers, nCoupons := getU64(g.root, keyNOffers), getU64(g.root, keyNCoupons)
		next := getU64(g.root, keyNextOffer)
		for i := range offers {
			o := &offers[i]
			_, num, ok, err := g.offer(o.ID)
			if err != nil {
				return err
			}
			if !ok {
				next++
				if next > 1<<32-1 {
					return fmt.Errorf("offer numbers exhausted")
				}
				num = uint32(next)
				nOffers++
			}
			if err := putOffer(g, o, num); err != nil {
				return err
			}
		}
		// A delta's coupons belong to few offers: decode each offer once, not once per
		// coupon.
		nums := make(map[string]uint32, len(offers))
		for i := range coupons {
			c := &coupons[i]
			num, ok := nums[c.OfferID]
			if !ok {
				_, n, _, err := g.offer(c.OfferID)
				if err != nil {
					return err
				}
				num, nums[c.OfferID] = n, n
			}
			if g.coupons.Get([]byte(c.Code)) == nil {
				nCoupons++
			}
			if err := g.coupons.Put([]byte(c.Code), encodeCoupon(c, num)); err != nil {
				return fmt.Errorf("put coupon %s: %w", c.Code, err)
			}
		}
		for _, id := range removedOffers {
			_, num, ok, err := g.offer(id)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			deleted, err := deleteOfferCoupons(g.coupons, num)
			if err != nil {
				return err
			}
			nCoupons -= deleted
			nOffers--
			if err := g.offers.Delete([]byte(id)); err != nil {
				return err
			}
			if err := g.offerNums.Delete(numKey(num)); err != nil {
				return err
			}
		}
		if err := putU64(g.root, keyNOffers, nOffers); err != nil {
			return err
		}
		if err := putU64(g.root, keyNCoupons, nCoupons); err != nil {
			return err
		}
		if err := putU64(g.root, keyNextOffer, next); err != nil {
			return err
		}
		return db.setFeedPosition(tx, seq, asOf, reflectsTillSeq)
	})
}

// deleteOfferCoupons deletes every coupon of an offer. Offers are rarely removed, so a
// scan is cheaper than an index that every coupon would pay for on disk.
func deleteOfferCoupons(coupons *bolt.Bucket, num uint32) (uint64, error) {
	var n uint64
	c := coupons.Cursor()
	for k, v := c.First(); k != nil; {
		if got, ok := couponOfferNum(v); !ok || got != num {
			k, v = c.Next()
			continue
		}
		key := bytes.Clone(k)
		if err := coupons.Delete(key); err != nil {
			return n, fmt.Errorf("delete coupon %s: %w", key, err)
		}
		n++
		// Seek again: a cursor must not be trusted to step past a deleted key.
		k, v = c.Seek(key)
	}
	return n, nil
}

// Store implements tillkeep.TillCatalog. Before the first catalog arrives it returns
// an *Error with CodeNotFound.
func (db *DB) Store(ctx context.Context) (tillkeep.Store, error) {
	if err := ctx.Err(); err != nil {
		return tillkeep.Store{}, err
	}
	var (
		s  tillkeep.Store
		ok bool
	)
	err := db.view("read store record", func(tx *bolt.Tx) error {
		g := activeCatalog(tx)
		if g == nil {
			return nil
		}
		var err error
		s, ok, err = g.storeRecord()
		return err
	})
	if err != nil {
		return s, err
	}
	if !ok {
		return s, noStoreRecord()
	}
	return s, nil
}

func noStoreRecord() error {
	return tillkeep.Errorf(tillkeep.CodeNotFound, "This till has not received its store's catalog yet.")
}

// Lookup implements tillkeep.TillLedger.
func (db *DB) Lookup(ctx context.Context, code, customerID string) (tillkeep.LocalState, error) {
	if err := ctx.Err(); err != nil {
		return tillkeep.LocalState{}, err
	}
	var st tillkeep.LocalState
	err := db.view("look up coupon", func(tx *bolt.Tx) error {
		g := activeCatalog(tx)
		if g == nil {
			return unknownCoupon(code)
		}
		c, o, ok, err := g.lookup(code)
		if err != nil {
			return err
		}
		if !ok {
			return unknownCoupon(code)
		}
		st = readLocalState(tx, c, o, customerID)
		return nil
	})
	return st, err
}

// CatalogState returns where the cached catalog stands in the platform's feed.
func (db *DB) CatalogState(ctx context.Context) (CatalogState, error) {
	if err := ctx.Err(); err != nil {
		return CatalogState{}, err
	}
	var cs CatalogState
	err := db.view("read catalog state", func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		cs = CatalogState{
			Seq:             getU64(meta, metaCatSeq),
			SyncedAt:        getTime(meta, metaSyncedAt),
			ReflectsTillSeq: getU64(meta, metaReflects),
		}
		if g := activeCatalog(tx); g != nil {
			cs.Coupons, cs.Offers = g.counts()
		}
		return nil
	})
	return cs, err
}

// MarkSynced records that the catalog was confirmed current at at.
func (db *DB) MarkSynced(ctx context.Context, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.update("mark catalog synced", func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if at.After(getTime(meta, metaSyncedAt)) {
			return putTime(meta, metaSyncedAt, at)
		}
		return nil
	})
}
