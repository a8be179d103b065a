package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/store/internal/ledgercore"
)

// A catalog load writes a new catalog generation next to the active one: the store
// record and the offers in one transaction at BeginCatalog, each chunk of coupons in a
// transaction of its own, and the switch in one last transaction at Commit. Readers see
// the old generation until that switch; a crash before it leaves a staged generation
// that the next Open drops. db.catalogMu is held from BeginCatalog to Commit or Abort,
// so no delta or other snapshot can be applied in between.

// catalogLoad is the bbolt ledger's CatalogLoader.
type catalogLoad struct {
	db    *DB
	gen   uint64
	nums  map[string]uint32 // offer id → offer number in this generation
	count uint64
	// maxCode is the greatest code staged so far. A chunk whose codes all come after it
	// is appended with full pages and needs no duplicate lookups.
	maxCode string
	offers  int
	err     error // set once the load is over: committed, aborted or failed
}

var errLoadOver = errors.New("this catalog load is already over")

// BeginCatalog implements Ledger.
func (db *DB) BeginCatalog(ctx context.Context, st tillkeep.Store, offers []tillkeep.Offer) (CatalogLoader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ledgercore.CheckSnapshotIdentity(tillkeep.CatalogSnapshot{Store: st}, db.id); err != nil {
		return nil, err
	}
	if err := ledgercore.CheckCatalog(offers, nil, nil, nil); err != nil {
		return nil, err
	}
	storeJSON, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode store record: %w", err)
	}
	db.catalogMu.Lock()
	l := &catalogLoad{db: db, nums: make(map[string]uint32, len(offers)), offers: len(offers)}
	err = db.update("stage catalog", func(tx *bolt.Tx) error {
		clear(l.nums)
		meta := tx.Bucket(bucketMeta)
		l.gen = getU64(meta, metaNextGen) + 1
		if err := putU64(meta, metaNextGen, l.gen); err != nil {
			return err
		}
		g, err := createGen(tx, l.gen)
		if err != nil {
			return err
		}
		if err := g.store.Put(keyRecord, storeJSON); err != nil {
			return err
		}
		for i := range offers {
			o := &offers[i]
			num := uint32(i + 1)
			l.nums[o.ID] = num
			if err := putOffer(g, o, num); err != nil {
				return err
			}
		}
		if err := putU64(g.root, keyNextOffer, uint64(len(offers))); err != nil {
			return err
		}
		return putU64(g.root, keyNOffers, uint64(len(offers)))
	})
	if err != nil {
		db.catalogMu.Unlock()
		return nil, err
	}
	return l, nil
}

// end finishes the load once: it releases the catalog lock and, unless the load was
// committed, drops the staged generation.
func (l *catalogLoad) end(cause error, committed bool) {
	if l.err != nil {
		return
	}
	l.err = cause
	if !committed {
		l.db.dropGen(l.gen)
	}
	l.db.catalogMu.Unlock()
}

// fail abandons the load because of err and returns err.
func (l *catalogLoad) fail(err error) error {
	l.end(fmt.Errorf("%w: an earlier step failed: %w", errLoadOver, err), false)
	return err
}

// Add implements CatalogLoader.
func (l *catalogLoad) Add(ctx context.Context, coupons []tillkeep.Coupon) error {
	if l.err != nil {
		return l.err
	}
	if err := ctx.Err(); err != nil {
		return l.fail(err)
	}
	if len(coupons) == 0 {
		return nil
	}
	known := func(id string) bool { _, ok := l.nums[id]; return ok }
	if err := ledgercore.CheckCatalog(nil, coupons, nil, known); err != nil {
		return l.fail(err)
	}
	order, err := couponOrder(coupons)
	if err != nil {
		return l.fail(err)
	}
	at := func(i int) *tillkeep.Coupon {
		if order != nil {
			return &coupons[order[i]]
		}
		return &coupons[i]
	}
	first, last := at(0).Code, at(len(coupons)-1).Code
	appending := l.count == 0 || first > l.maxCode
	err = l.db.update("stage catalog coupons", func(tx *bolt.Tx) error {
		g := openGen(tx, l.gen)
		if g == nil {
			return fmt.Errorf("staged catalog generation %d disappeared", l.gen)
		}
		if appending {
			// Keys arrive after every staged key, so pages can be filled completely.
			g.coupons.FillPercent = 1.0
		}
		for i := range coupons {
			c := at(i)
			if !appending && g.coupons.Get([]byte(c.Code)) != nil {
				return duplicateCode(c.Code)
			}
			if err := g.coupons.Put([]byte(c.Code), encodeCoupon(c, l.nums[c.OfferID])); err != nil {
				return fmt.Errorf("stage coupon %s: %w", c.Code, err)
			}
		}
		return nil
	})
	if err != nil {
		return l.fail(err)
	}
	l.count += uint64(len(coupons))
	if last > l.maxCode {
		l.maxCode = last
	}
	return nil
}

// Commit implements CatalogLoader.
func (l *catalogLoad) Commit(ctx context.Context, seq uint64, asOf time.Time, reflectsTillSeq uint64) error {
	if l.err != nil {
		return l.err
	}
	if err := ctx.Err(); err != nil {
		return l.fail(err)
	}
	db := l.db
	err := db.update("switch catalog", func(tx *bolt.Tx) error {
		g := openGen(tx, l.gen)
		if g == nil {
			return fmt.Errorf("staged catalog generation %d disappeared", l.gen)
		}
		if err := putU64(g.root, keyNCoupons, l.count); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if old := activeGenNumber(meta); old != 0 {
			if err := tx.Bucket(bucketCatalog).DeleteBucket(genKey(old)); err != nil {
				return fmt.Errorf("drop previous catalog: %w", err)
			}
		}
		if err := putU64(meta, metaCatGen, l.gen); err != nil {
			return err
		}
		return db.setFeedPosition(tx, seq, asOf, reflectsTillSeq)
	})
	if err != nil {
		return l.fail(err)
	}
	l.end(fmt.Errorf("%w: it was committed", errLoadOver), true)
	db.log.Info("catalog replaced", "seq", seq, "offers", l.offers, "coupons", l.count, "reflects_till_seq", reflectsTillSeq)
	return nil
}

// Abort implements CatalogLoader.
func (l *catalogLoad) Abort() {
	l.end(fmt.Errorf("%w: it was aborted", errLoadOver), false)
}

// activeGenNumber returns the active generation, 0 when there is none.
func activeGenNumber(meta *bolt.Bucket) uint64 {
	if v := meta.Get(metaCatGen); len(v) == 8 {
		return getU64(meta, metaCatGen)
	}
	return 0
}

// couponOrder returns the order in which to write coupons so that keys arrive sorted
// (nil: they already are) and refuses duplicate codes.
func couponOrder(coupons []tillkeep.Coupon) ([]int32, error) {
	sorted := true
	for i := 1; i < len(coupons); i++ {
		if c := strings.Compare(coupons[i-1].Code, coupons[i].Code); c >= 0 {
			if c == 0 {
				return nil, duplicateCode(coupons[i].Code)
			}
			sorted = false
			break
		}
	}
	if sorted {
		return nil, nil
	}
	if len(coupons) > 1<<31-1 {
		return nil, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "The catalog holds too many coupons.")
	}
	order := make([]int32, len(coupons))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(coupons[a].Code, coupons[b].Code) })
	for i := 1; i < len(order); i++ {
		if coupons[order[i-1]].Code == coupons[order[i]].Code {
			return nil, duplicateCode(coupons[order[i]].Code)
		}
	}
	return order, nil
}

func duplicateCode(code string) error {
	return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "Catalog coupon %s appears twice.", code)
}
