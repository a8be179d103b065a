package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
)

// Local use is this till's redemptions that the cached coupon counts do not include:
// every redemption entry with Seq > the catalog's reflects_till_seq that is not
// reversed. It is kept as counters (per coupon, per offer and customer, per offer) so
// that a redemption reads it in three lookups, and rebuilt from the journal whenever a
// catalog update moves reflects_till_seq.

// readLocalState gathers what Decide and Lookup see for a coupon and a customer.
func readLocalState(tx *bolt.Tx, c tillkeep.Coupon, o tillkeep.Offer, customerID string) tillkeep.LocalState {
	meta := tx.Bucket(bucketMeta)
	st := tillkeep.LocalState{
		Coupon:                 c,
		Offer:                  o,
		LocalCouponRedemptions: getCount(tx.Bucket(bucketLocalCoupon), []byte(c.Code)),
		LocalOfferRedemptions:  int64(getCount(tx.Bucket(bucketLocalOffer), []byte(o.ID))),
		OfflineRedemptions:     int(getU64(meta, metaOffline)),
		CatalogSyncedAt:        getTime(meta, metaSyncedAt),
		LastHLC:                getHLC(meta),
	}
	if customerID != "" {
		u := decodeCustomerUse(tx.Bucket(bucketLocalCustomer).Get(customerKey(o.ID, customerID)))
		st.LocalCustomerRedemptions, st.LocalCustomerLast = u.Count, u.Last
	}
	return st
}

// readUncachedState is what Decide sees for a code the cache does not hold (a
// redemption the platform decided online, RecordRequest.AllowUncached): zero coupon and
// offer, and the till's own counters.
func readUncachedState(tx *bolt.Tx, code string) tillkeep.LocalState {
	st := readLocalState(tx, tillkeep.Coupon{}, tillkeep.Offer{}, "")
	st.LocalCouponRedemptions = getCount(tx.Bucket(bucketLocalCoupon), []byte(code))
	st.LocalOfferRedemptions = 0
	return st
}

// addLocalUse counts a redemption entry. An entry without an offer (recorded for a
// coupon the cache did not hold) counts for its code only.
func addLocalUse(tx *bolt.Tx, e *tillkeep.JournalEntry) error {
	coupons, offers := tx.Bucket(bucketLocalCoupon), tx.Bucket(bucketLocalOffer)
	if err := putCount(coupons, []byte(e.Code), getCount(coupons, []byte(e.Code))+1); err != nil {
		return err
	}
	if e.OfferID == "" {
		return nil
	}
	if err := putCount(offers, []byte(e.OfferID), getCount(offers, []byte(e.OfferID))+1); err != nil {
		return err
	}
	if e.CustomerID == "" {
		return nil
	}
	customers := tx.Bucket(bucketLocalCustomer)
	key := customerKey(e.OfferID, e.CustomerID)
	u := decodeCustomerUse(customers.Get(key))
	u.Count++
	if e.WallTime.After(u.Last) {
		u.Last = e.WallTime
	}
	return customers.Put(key, u.encode())
}

// undoLocalUse stops counting a reversed redemption. The redemption index must already
// mark it reversed, so that the search for the customer's previous redemption skips it.
func undoLocalUse(tx *bolt.Tx, e *tillkeep.JournalEntry, reflects uint64) error {
	coupons, offers := tx.Bucket(bucketLocalCoupon), tx.Bucket(bucketLocalOffer)
	if err := putCount(coupons, []byte(e.Code), getCount(coupons, []byte(e.Code))-1); err != nil {
		return err
	}
	if e.OfferID == "" {
		return nil
	}
	if err := putCount(offers, []byte(e.OfferID), getCount(offers, []byte(e.OfferID))-1); err != nil {
		return err
	}
	if e.CustomerID == "" {
		return nil
	}
	customers := tx.Bucket(bucketLocalCustomer)
	key := customerKey(e.OfferID, e.CustomerID)
	u := decodeCustomerUse(customers.Get(key))
	u.Count--
	if u.Count <= 0 {
		return customers.Delete(key)
	}
	// The customer's last redemption may have been this one: find the latest one still
	// counted. Only unreflected entries are scanned, newest first.
	found := false
	err := eachCountedRedemption(tx, reflects, true, func(o *tillkeep.JournalEntry) (bool, error) {
		if o.OfferID == e.OfferID && o.CustomerID == e.CustomerID {
			u.Last, found = o.WallTime, true
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if !found {
		// Cannot happen while the counters match the journal; keep the count and be
		// conservative about the date rather than fail the reversal.
		u.Last = e.WallTime
	}
	return customers.Put(key, u.encode())
}

// eachCountedRedemption calls fn for every redemption entry after reflects that is not
// reversed, oldest first (or newest first), until fn returns false.
func eachCountedRedemption(tx *bolt.Tx, reflects uint64, newestFirst bool, fn func(*tillkeep.JournalEntry) (bool, error)) error {
	journal, index := tx.Bucket(bucketJournal), tx.Bucket(bucketRedemptions)
	c := journal.Cursor()
	var k, v []byte
	if newestFirst {
		k, v = c.Last()
	} else {
		k, v = c.Seek(seqKey(reflects + 1))
	}
	for ; k != nil; k, v = step(c, newestFirst) {
		seq := decodeSeq(k)
		if seq <= reflects {
			if newestFirst {
				return nil
			}
			continue
		}
		var e tillkeep.JournalEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decode journal entry %d: %w", seq, err)
		}
		if e.Kind != tillkeep.EntryRedemption {
			continue
		}
		ref, err := decodeRedemptionRef(index.Get([]byte(e.RedemptionID)))
		if err != nil {
			return fmt.Errorf("redemption %s: %w", e.RedemptionID, err)
		}
		if ref.ReversalSeq != 0 {
			continue
		}
		more, err := fn(&e)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func step(c *bolt.Cursor, backwards bool) ([]byte, []byte) {
	if backwards {
		return c.Prev()
	}
	return c.Next()
}

// rebuildLocalUse recounts local use from the journal after a catalog update.
func rebuildLocalUse(tx *bolt.Tx, reflects uint64) error {
	for _, name := range [][]byte{bucketLocalCoupon, bucketLocalCustomer, bucketLocalOffer} {
		if err := tx.DeleteBucket(name); err != nil {
			return fmt.Errorf("clear %s: %w", name, err)
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
	}
	return eachCountedRedemption(tx, reflects, false, func(e *tillkeep.JournalEntry) (bool, error) {
		return true, addLocalUse(tx, e)
	})
}
