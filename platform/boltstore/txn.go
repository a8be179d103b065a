package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform"
)

var _ platform.Tx = (*txn)(nil)

// txn implements platform.Tx (and ReadTx) on one bbolt transaction.
type txn struct {
	tx *bolt.Tx
}

func newTx(tx *bolt.Tx) *txn { return &txn{tx: tx} }

// b returns a bucket; init created every bucket, so nil means a corrupt file.
func (t *txn) b(name []byte) *bolt.Bucket {
	bk := t.tx.Bucket(name)
	if bk == nil {
		panic(fmt.Sprintf("boltstore: bucket %s missing", name))
	}
	return bk
}

// appendOnly returns a bucket whose keys only grow, tuned for appends.
func (t *txn) appendOnly(name []byte) *bolt.Bucket {
	bk := t.b(name)
	if t.tx.Writable() {
		bk.FillPercent = appendOnlyFill
	}
	return bk
}

func getJSON(bk *bolt.Bucket, k []byte, v any) error {
	raw := bk.Get(k)
	if raw == nil {
		return platform.ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode record %q: %w", k, err)
	}
	return nil
}

func putJSON(bk *bolt.Bucket, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode record %q: %w", k, err)
	}
	return bk.Put(k, raw)
}

// list decodes up to limit records of bk with keys after "after" (exclusive).
func list[T any](bk *bolt.Bucket, after string, limit int) ([]T, error) {
	out := []T{}
	c := bk.Cursor()
	var k, v []byte
	if after == "" {
		k, v = c.First()
	} else {
		k, v = c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, v = c.Next()
		}
	}
	for ; k != nil; k, v = c.Next() {
		if limit > 0 && len(out) >= limit {
			break
		}
		var rec T
		if err := json.Unmarshal(v, &rec); err != nil {
			return nil, fmt.Errorf("decode record %q: %w", k, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// --- meta ---

func (t *txn) Meta(k string) ([]byte, error) {
	v := t.b(bucketMeta).Get([]byte(k))
	if v == nil {
		return nil, platform.ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (t *txn) PutMeta(k string, v []byte) error {
	if k == metaEpoch || k == metaSchemaVersion {
		return fmt.Errorf("put meta %q: the key is owned by the storage", k)
	}
	if err := t.b(bucketMeta).Put([]byte(k), v); err != nil {
		return fmt.Errorf("put meta %q: %w", k, err)
	}
	return nil
}

// --- stores, customers, offers ---

func (t *txn) Store(id string) (tillkeep.Store, error) {
	var s tillkeep.Store
	err := getJSON(t.b(bucketStores), []byte(id), &s)
	return s, err
}

func (t *txn) Stores(after string, limit int) ([]tillkeep.Store, error) {
	return list[tillkeep.Store](t.b(bucketStores), after, limit)
}

func (t *txn) PutStore(s tillkeep.Store) error {
	if err := putJSON(t.b(bucketStores), []byte(s.ID), s); err != nil {
		return fmt.Errorf("put store %s: %w", s.ID, err)
	}
	return nil
}

func (t *txn) Customer(id string) (tillkeep.Customer, error) {
	var c tillkeep.Customer
	err := getJSON(t.b(bucketCustomers), []byte(id), &c)
	return c, err
}

func (t *txn) PutCustomer(c tillkeep.Customer) error {
	if err := putJSON(t.b(bucketCustomers), []byte(c.ID), c); err != nil {
		return fmt.Errorf("put customer %s: %w", c.ID, err)
	}
	return nil
}

func (t *txn) Offer(id string) (tillkeep.Offer, error) {
	var o tillkeep.Offer
	err := getJSON(t.b(bucketOffers), []byte(id), &o)
	return o, err
}

func (t *txn) Offers(after string, limit int) ([]tillkeep.Offer, error) {
	return list[tillkeep.Offer](t.b(bucketOffers), after, limit)
}

func (t *txn) InsertOffer(o tillkeep.Offer) error {
	bk := t.b(bucketOffers)
	if bk.Get([]byte(o.ID)) != nil {
		return fmt.Errorf("insert offer %s: %w", o.ID, platform.ErrExists)
	}
	if err := putJSON(bk, []byte(o.ID), o); err != nil {
		return fmt.Errorf("insert offer %s: %w", o.ID, err)
	}
	return nil
}

func (t *txn) UpdateOffer(o tillkeep.Offer) error {
	bk := t.b(bucketOffers)
	if bk.Get([]byte(o.ID)) == nil {
		return fmt.Errorf("update offer %s: %w", o.ID, platform.ErrNotFound)
	}
	if err := putJSON(bk, []byte(o.ID), o); err != nil {
		return fmt.Errorf("update offer %s: %w", o.ID, err)
	}
	return nil
}

// --- coupons ---

func (t *txn) Coupon(code string) (tillkeep.Coupon, error) {
	var c tillkeep.Coupon
	err := getJSON(t.b(bucketCoupons), []byte(code), &c)
	return c, err
}

// couponsByIndex loads the coupons named by the last key part of index keys under pfx.
func (t *txn) couponsByIndex(idx *bolt.Bucket, pfx []byte, after string, limit int) ([]tillkeep.Coupon, error) {
	out := []tillkeep.Coupon{}
	coupons := t.b(bucketCoupons)
	c := idx.Cursor()
	start := pfx
	if after != "" {
		start = append(bytes.Clone(pfx), after...)
	}
	for k, _ := c.Seek(start); k != nil && bytes.HasPrefix(k, pfx); k, _ = c.Next() {
		code := string(k[len(pfx):])
		if after != "" && code <= after {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		var cp tillkeep.Coupon
		if err := getJSON(coupons, []byte(code), &cp); err != nil {
			return nil, fmt.Errorf("coupon %s named by an index: %w", code, err)
		}
		out = append(out, cp)
	}
	return out, nil
}

func (t *txn) CouponsByOffer(offerID, after string, limit int) ([]tillkeep.Coupon, error) {
	return t.couponsByIndex(t.b(bucketCouponsByOffer), prefix(offerID), after, limit)
}

func (t *txn) UnissuedCoupons(offerID, after string, limit int) ([]tillkeep.Coupon, error) {
	return t.couponsByIndex(t.b(bucketCouponsUnissued), prefix(offerID), after, limit)
}

func (t *txn) CouponsByCustomer(customerID, offerID string) ([]tillkeep.Coupon, error) {
	if offerID != "" {
		return t.couponsByIndex(t.b(bucketCouponsByCustomer), prefix(customerID, offerID), "", 0)
	}
	out := []tillkeep.Coupon{}
	coupons := t.b(bucketCoupons)
	pfx := prefix(customerID)
	c := t.b(bucketCouponsByCustomer).Cursor()
	for k, _ := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, _ = c.Next() {
		var cp tillkeep.Coupon
		code := lastPart(k)
		if err := getJSON(coupons, []byte(code), &cp); err != nil {
			return nil, fmt.Errorf("coupon %s named by an index: %w", code, err)
		}
		out = append(out, cp)
	}
	return out, nil
}

func unissued(c tillkeep.Coupon) bool {
	return c.Status == tillkeep.CouponActive && c.CustomerID == ""
}

// indexCoupon adds (add=true) or removes c's secondary index entries.
func (t *txn) indexCoupon(c tillkeep.Coupon, add bool) error {
	type entry struct {
		bk  []byte
		key []byte
		on  bool
	}
	entries := []entry{
		{bucketCouponsByOffer, key(c.OfferID, c.Code), true},
		{bucketCouponsUnissued, key(c.OfferID, c.Code), unissued(c)},
		{bucketCouponsByCustomer, key(c.CustomerID, c.OfferID, c.Code), c.CustomerID != ""},
	}
	for _, e := range entries {
		if !e.on {
			continue
		}
		var err error
		if add {
			err = t.b(e.bk).Put(e.key, nil)
		} else {
			err = t.b(e.bk).Delete(e.key)
		}
		if err != nil {
			return fmt.Errorf("index coupon %s in %s: %w", c.Code, e.bk, err)
		}
	}
	return nil
}

func (t *txn) InsertCoupons(cs []tillkeep.Coupon) ([]string, error) {
	// Sorted inserts touch each leaf page once per batch instead of at random.
	order := make([]int, len(cs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(cs[a].Code, cs[b].Code) })

	bk := t.b(bucketCoupons)
	dup := make([]bool, len(cs))
	for n, i := range order {
		c := cs[i]
		if (n > 0 && cs[order[n-1]].Code == c.Code) || bk.Get([]byte(c.Code)) != nil {
			dup[i] = true
			continue
		}
		if err := putJSON(bk, []byte(c.Code), c); err != nil {
			return nil, fmt.Errorf("insert coupon %s: %w", c.Code, err)
		}
		if err := t.indexCoupon(c, true); err != nil {
			return nil, err
		}
	}
	existing := []string{}
	for i, d := range dup {
		if d {
			existing = append(existing, cs[i].Code)
		}
	}
	return existing, nil
}

func (t *txn) UpdateCoupon(c tillkeep.Coupon) error {
	old, err := t.Coupon(c.Code)
	if err != nil {
		return fmt.Errorf("update coupon %s: %w", c.Code, err)
	}
	if old.OfferID != c.OfferID {
		return fmt.Errorf("update coupon %s: a coupon cannot move from offer %s to %s", c.Code, old.OfferID, c.OfferID)
	}
	if err := putJSON(t.b(bucketCoupons), []byte(c.Code), c); err != nil {
		return fmt.Errorf("update coupon %s: %w", c.Code, err)
	}
	// Most updates (a redemption counted) change no index membership; touch only the
	// indexes that do change.
	if unissued(old) != unissued(c) {
		k := key(c.OfferID, c.Code)
		var err error
		if unissued(c) {
			err = t.b(bucketCouponsUnissued).Put(k, nil)
		} else {
			err = t.b(bucketCouponsUnissued).Delete(k)
		}
		if err != nil {
			return fmt.Errorf("update coupon %s: index unissued: %w", c.Code, err)
		}
	}
	if old.CustomerID != c.CustomerID {
		byCustomer := t.b(bucketCouponsByCustomer)
		if old.CustomerID != "" {
			if err := byCustomer.Delete(key(old.CustomerID, c.OfferID, c.Code)); err != nil {
				return fmt.Errorf("update coupon %s: unindex customer: %w", c.Code, err)
			}
		}
		if c.CustomerID != "" {
			if err := byCustomer.Put(key(c.CustomerID, c.OfferID, c.Code), nil); err != nil {
				return fmt.Errorf("update coupon %s: index customer: %w", c.Code, err)
			}
		}
	}
	return nil
}

// --- redemptions ---

func (t *txn) Redemption(id string) (platform.Redemption, error) {
	var r platform.Redemption
	err := getJSON(t.b(bucketRedemptions), []byte(id), &r)
	return r, err
}

func (t *txn) RedemptionsByCoupon(code string) ([]platform.Redemption, error) {
	out := []platform.Redemption{}
	pfx := prefix(code)
	c := t.b(bucketRedemptionsByCoupon).Cursor()
	for k, _ := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, _ = c.Next() {
		id := string(k[len(pfx):])
		r, err := t.Redemption(id)
		if err != nil {
			return nil, fmt.Errorf("redemption %s named by the coupon index: %w", id, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func (t *txn) RedemptionByTransaction(storeID, tillID, transactionID string) (platform.Redemption, error) {
	id := t.b(bucketRedemptionsByTxn).Get(key(storeID, tillID, transactionID))
	if id == nil {
		return platform.Redemption{}, platform.ErrNotFound
	}
	return t.Redemption(string(id))
}

// redemptionCursor is the opaque paging cursor: the hex of the last time-index key.
func (t *txn) Redemptions(f platform.RedemptionFilter, cursor string, limit int) ([]platform.Redemption, string, error) {
	out := []platform.Redemption{}
	var start []byte
	skipStart := false
	switch {
	case cursor != "":
		k, err := hex.DecodeString(cursor)
		if err != nil || len(k) < 8 {
			return nil, "", tillkeep.Errorf(tillkeep.CodeInvalidRequest, "cursor %q is not a cursor this platform issued", cursor)
		}
		start, skipStart = k, true
	case !f.From.IsZero():
		start = timeKey(f.From, "")
	}
	var toKey []byte
	if !f.To.IsZero() {
		toKey = timeKey(f.To, "")
	}
	c := t.b(bucketRedemptionsByTime).Cursor()
	var k []byte
	if start == nil {
		k, _ = c.First()
	} else {
		k, _ = c.Seek(start)
		if skipStart && k != nil && bytes.Equal(k, start) {
			k, _ = c.Next()
		}
	}
	var last []byte
	for ; k != nil; k, _ = c.Next() {
		if toKey != nil && bytes.Compare(k[:8], toKey[:8]) >= 0 {
			return out, "", nil
		}
		if limit > 0 && len(out) >= limit {
			return out, hex.EncodeToString(last), nil
		}
		id := string(k[8:])
		r, err := t.Redemption(id)
		if err != nil {
			return nil, "", fmt.Errorf("redemption %s named by the time index: %w", id, err)
		}
		last = bytes.Clone(k)
		if f.Match(r) {
			out = append(out, r)
		}
	}
	return out, "", nil
}

func (t *txn) indexRedemption(r platform.Redemption, add bool) error {
	put := func(bk *bolt.Bucket, k, v []byte) error {
		if add {
			return bk.Put(k, v)
		}
		return bk.Delete(k)
	}
	if err := put(t.b(bucketRedemptionsByCoupon), key(r.Code, r.ID), nil); err != nil {
		return fmt.Errorf("index redemption %s by coupon: %w", r.ID, err)
	}
	if err := put(t.appendOnly(bucketRedemptionsByTime), timeKey(r.EventAt, r.ID), nil); err != nil {
		return fmt.Errorf("index redemption %s by time: %w", r.ID, err)
	}
	if r.TransactionID != "" {
		bk := t.b(bucketRedemptionsByTxn)
		k := key(r.StoreID, r.TillID, r.TransactionID)
		cur := bk.Get(k)
		// The transaction index names the first redemption of a transaction only.
		switch {
		case add && cur == nil:
			if err := bk.Put(k, []byte(r.ID)); err != nil {
				return fmt.Errorf("index redemption %s by transaction: %w", r.ID, err)
			}
		case !add && string(cur) == r.ID:
			if err := bk.Delete(k); err != nil {
				return fmt.Errorf("unindex redemption %s by transaction: %w", r.ID, err)
			}
		}
	}
	return nil
}

func (t *txn) InsertRedemption(r platform.Redemption) error {
	bk := t.b(bucketRedemptions)
	if bk.Get([]byte(r.ID)) != nil {
		return fmt.Errorf("insert redemption %s: %w", r.ID, platform.ErrExists)
	}
	if err := putJSON(bk, []byte(r.ID), r); err != nil {
		return fmt.Errorf("insert redemption %s: %w", r.ID, err)
	}
	return t.indexRedemption(r, true)
}

func (t *txn) UpdateRedemption(r platform.Redemption) error {
	old, err := t.Redemption(r.ID)
	if err != nil {
		return fmt.Errorf("update redemption %s: %w", r.ID, err)
	}
	reindex := old.Code != r.Code || !old.EventAt.Equal(r.EventAt) || old.TransactionID != r.TransactionID ||
		old.StoreID != r.StoreID || old.TillID != r.TillID
	if reindex {
		if err := t.indexRedemption(old, false); err != nil {
			return err
		}
	}
	if err := putJSON(t.b(bucketRedemptions), []byte(r.ID), r); err != nil {
		return fmt.Errorf("update redemption %s: %w", r.ID, err)
	}
	if reindex {
		return t.indexRedemption(r, true)
	}
	return nil
}

// --- usage ---

func (t *txn) OfferUsage(offerID string) (platform.OfferUsage, error) {
	u := platform.OfferUsage{OfferID: offerID}
	if err := getJSON(t.b(bucketOfferUsage), []byte(offerID), &u); err != nil && !errors.Is(err, platform.ErrNotFound) {
		return u, err
	}
	return u, nil
}

func (t *txn) PutOfferUsage(u platform.OfferUsage) error {
	if err := putJSON(t.b(bucketOfferUsage), []byte(u.OfferID), u); err != nil {
		return fmt.Errorf("put usage of offer %s: %w", u.OfferID, err)
	}
	return nil
}

func (t *txn) CustomerUsage(customerID, offerID string) (platform.CustomerUsage, error) {
	u := platform.CustomerUsage{CustomerID: customerID, OfferID: offerID}
	if err := getJSON(t.b(bucketCustomerUsage), key(customerID, offerID), &u); err != nil && !errors.Is(err, platform.ErrNotFound) {
		return u, err
	}
	return u, nil
}

func (t *txn) PutCustomerUsage(u platform.CustomerUsage) error {
	if err := putJSON(t.b(bucketCustomerUsage), key(u.CustomerID, u.OfferID), u); err != nil {
		return fmt.Errorf("put usage of offer %s by customer %s: %w", u.OfferID, u.CustomerID, err)
	}
	return nil
}

// --- tills ---

func (t *txn) Till(storeID, tillID string) (platform.Till, error) {
	var tl platform.Till
	err := getJSON(t.b(bucketTills), key(storeID, tillID), &tl)
	return tl, err
}

func (t *txn) TillByTokenHash(hash string) (platform.Till, error) {
	if hash == "" {
		return platform.Till{}, platform.ErrNotFound
	}
	k := t.b(bucketTillsByHash).Get([]byte(hash))
	if k == nil {
		return platform.Till{}, platform.ErrNotFound
	}
	var tl platform.Till
	if err := getJSON(t.b(bucketTills), k, &tl); err != nil {
		return tl, fmt.Errorf("till named by the token index: %w", err)
	}
	return tl, nil
}

func (t *txn) Tills(storeID string) ([]platform.Till, error) {
	out := []platform.Till{}
	c := t.b(bucketTills).Cursor()
	var pfx []byte
	if storeID != "" {
		pfx = prefix(storeID)
	}
	for k, v := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, v = c.Next() {
		var tl platform.Till
		if err := json.Unmarshal(v, &tl); err != nil {
			return nil, fmt.Errorf("decode till %q: %w", k, err)
		}
		out = append(out, tl)
	}
	return out, nil
}

func (t *txn) PutTill(tl platform.Till) error {
	k := key(tl.StoreID, tl.TillID)
	byHash := t.b(bucketTillsByHash)
	old, err := t.Till(tl.StoreID, tl.TillID)
	switch {
	case errors.Is(err, platform.ErrNotFound):
	case err != nil:
		return fmt.Errorf("put till %s/%s: %w", tl.StoreID, tl.TillID, err)
	case old.TokenHash != "" && old.TokenHash != tl.TokenHash:
		if err := byHash.Delete([]byte(old.TokenHash)); err != nil {
			return fmt.Errorf("put till %s/%s: drop old token: %w", tl.StoreID, tl.TillID, err)
		}
	}
	if tl.TokenHash != "" {
		if other := byHash.Get([]byte(tl.TokenHash)); other != nil && !bytes.Equal(other, k) {
			return fmt.Errorf("put till %s/%s: token hash in use: %w", tl.StoreID, tl.TillID, platform.ErrExists)
		}
		if err := byHash.Put([]byte(tl.TokenHash), k); err != nil {
			return fmt.Errorf("put till %s/%s: index token: %w", tl.StoreID, tl.TillID, err)
		}
	}
	if err := putJSON(t.b(bucketTills), k, tl); err != nil {
		return fmt.Errorf("put till %s/%s: %w", tl.StoreID, tl.TillID, err)
	}
	return nil
}

// --- conflicts ---

func (t *txn) Conflict(id string) (platform.Conflict, error) {
	var c platform.Conflict
	err := getJSON(t.b(bucketConflicts), []byte(id), &c)
	return c, err
}

func (t *txn) OpenConflict(code, kind string) (platform.Conflict, error) {
	id := t.b(bucketConflictsOpen).Get(key(code, kind))
	if id == nil {
		return platform.Conflict{}, platform.ErrNotFound
	}
	return t.Conflict(string(id))
}

func (t *txn) Conflicts(status, after string, limit int) ([]platform.Conflict, error) {
	if status == "" {
		return list[platform.Conflict](t.b(bucketConflicts), after, limit)
	}
	out := []platform.Conflict{}
	pfx := prefix(status)
	start := pfx
	if after != "" {
		start = append(bytes.Clone(pfx), after...)
	}
	c := t.b(bucketConflictsByStatus).Cursor()
	for k, _ := c.Seek(start); k != nil && bytes.HasPrefix(k, pfx); k, _ = c.Next() {
		id := string(k[len(pfx):])
		if after != "" && id <= after {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		cf, err := t.Conflict(id)
		if err != nil {
			return nil, fmt.Errorf("conflict %s named by the status index: %w", id, err)
		}
		out = append(out, cf)
	}
	return out, nil
}

func (t *txn) indexConflict(c platform.Conflict, add bool) error {
	byStatus := t.appendOnly(bucketConflictsByStatus)
	open := t.b(bucketConflictsOpen)
	if !add {
		if err := byStatus.Delete(key(c.Status, c.ID)); err != nil {
			return err
		}
		if c.Status == platform.ConflictOpen {
			if cur := open.Get(key(c.Code, c.Kind)); string(cur) == c.ID {
				return open.Delete(key(c.Code, c.Kind))
			}
		}
		return nil
	}
	if c.Status == platform.ConflictOpen {
		if cur := open.Get(key(c.Code, c.Kind)); cur != nil && string(cur) != c.ID {
			return fmt.Errorf("case %s is already open for %s/%s: %w", cur, c.Code, c.Kind, platform.ErrExists)
		}
		if err := open.Put(key(c.Code, c.Kind), []byte(c.ID)); err != nil {
			return err
		}
	}
	return byStatus.Put(key(c.Status, c.ID), nil)
}

func (t *txn) InsertConflict(c platform.Conflict) error {
	bk := t.appendOnly(bucketConflicts)
	if bk.Get([]byte(c.ID)) != nil {
		return fmt.Errorf("insert conflict %s: %w", c.ID, platform.ErrExists)
	}
	if err := t.indexConflict(c, true); err != nil {
		return fmt.Errorf("insert conflict %s: %w", c.ID, err)
	}
	if err := putJSON(bk, []byte(c.ID), c); err != nil {
		return fmt.Errorf("insert conflict %s: %w", c.ID, err)
	}
	return nil
}

func (t *txn) UpdateConflict(c platform.Conflict) error {
	old, err := t.Conflict(c.ID)
	if err != nil {
		return fmt.Errorf("update conflict %s: %w", c.ID, err)
	}
	if err := t.indexConflict(old, false); err != nil {
		return fmt.Errorf("update conflict %s: %w", c.ID, err)
	}
	if err := t.indexConflict(c, true); err != nil {
		return fmt.Errorf("update conflict %s: %w", c.ID, err)
	}
	if err := putJSON(t.b(bucketConflicts), []byte(c.ID), c); err != nil {
		return fmt.Errorf("update conflict %s: %w", c.ID, err)
	}
	return nil
}

// --- change log ---

func (t *txn) AppendChange(c platform.Change) (uint64, error) {
	bk := t.appendOnly(bucketChanges)
	// bbolt serialises writers and the sequence commits with the transaction, so no
	// reader can see seq N+1 before N: the log is gap-free as seen by readers.
	seq, err := bk.NextSequence()
	if err != nil {
		return 0, fmt.Errorf("append change: %w", err)
	}
	c.Seq = seq
	if err := putJSON(bk, u64(seq), c); err != nil {
		return 0, fmt.Errorf("append change %d: %w", seq, err)
	}
	return seq, nil
}

func (t *txn) DeleteChangesThrough(seq uint64, limit int) (int, error) {
	bk := t.b(bucketChanges)
	// Keys are collected first: a bbolt cursor must not be trusted to step past a key
	// deleted under it.
	var keys [][]byte
	c := bk.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = c.Next() {
		if limit > 0 && len(keys) >= limit {
			break
		}
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := bk.Delete(k); err != nil {
			return 0, fmt.Errorf("delete change %d: %w", binary.BigEndian.Uint64(k), err)
		}
	}
	return len(keys), nil
}

func (t *txn) ChangesSince(seq uint64, limit int) ([]platform.Change, error) {
	out := []platform.Change{}
	c := t.b(bucketChanges).Cursor()
	for k, v := c.Seek(u64(seq + 1)); k != nil; k, v = c.Next() {
		if limit > 0 && len(out) >= limit {
			break
		}
		var ch platform.Change
		if err := json.Unmarshal(v, &ch); err != nil {
			return nil, fmt.Errorf("decode change %x: %w", k, err)
		}
		out = append(out, ch)
	}
	return out, nil
}

func (t *txn) LastChangeSeq() (uint64, error) {
	return t.b(bucketChanges).Sequence(), nil
}

// --- anomalies and reports ---

func (t *txn) InsertAnomaly(a platform.Anomaly) error {
	bk := t.appendOnly(bucketAnomalies)
	if bk.Get([]byte(a.ID)) != nil {
		return fmt.Errorf("insert anomaly %s: %w", a.ID, platform.ErrExists)
	}
	if err := putJSON(bk, []byte(a.ID), a); err != nil {
		return fmt.Errorf("insert anomaly %s: %w", a.ID, err)
	}
	return nil
}

func (t *txn) Anomalies(after string, limit int) ([]platform.Anomaly, error) {
	return list[platform.Anomaly](t.b(bucketAnomalies), after, limit)
}

func (t *txn) PutReportPart(id string, part int, data []byte) error {
	if part < 0 {
		return fmt.Errorf("put report %s part %d: negative part", id, part)
	}
	if err := t.appendOnly(bucketReports).Put(partKey(id, part), data); err != nil {
		return fmt.Errorf("put report %s part %d: %w", id, part, err)
	}
	return nil
}

func (t *txn) ReportPart(id string, part int) ([]byte, error) {
	v := t.b(bucketReports).Get(partKey(id, part))
	if v == nil {
		return nil, platform.ErrNotFound
	}
	return bytes.Clone(v), nil
}
