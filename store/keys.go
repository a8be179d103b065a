package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
)

// Top-level buckets.
var (
	bucketMeta         = []byte("meta")
	bucketCatalog      = []byte("catalog")      // one sub-bucket per catalog generation
	bucketJournal      = []byte("journal")      // seq (8 bytes BE) → JournalEntry JSON
	bucketRedemptions  = []byte("redemptions")  // redemption id → seq, reversal seq (2×8 bytes BE)
	bucketTransactions = []byte("transactions") // transaction_id → Outcome JSON
	// Local use of entries the cached catalog does not reflect yet.
	bucketLocalCoupon   = []byte("local_coupon")   // code → count (uvarint)
	bucketLocalCustomer = []byte("local_customer") // offer id 0x00 customer id → count (uvarint), last (8 bytes BE unix ns)
	bucketLocalOffer    = []byte("local_offer")    // offer id → count (uvarint)
)

// topBuckets are created on a new file and expected on an existing one.
var topBuckets = [][]byte{
	bucketMeta, bucketCatalog, bucketJournal, bucketRedemptions, bucketTransactions,
	bucketLocalCoupon, bucketLocalCustomer, bucketLocalOffer,
}

// Keys of the meta bucket.
var (
	metaSchema   = []byte("schema_version")
	metaStoreID  = []byte("store_id")
	metaTillID   = []byte("till_id")
	metaLastSeq  = []byte("last_seq")
	metaAckedSeq = []byte("acked_seq")
	metaPruned   = []byte("pruned_seq") // entries up to here were deleted
	metaOffline  = []byte("offline_redemptions")
	metaLastHLC  = []byte("last_hlc")
	metaCatGen   = []byte("catalog_generation") // active generation; absent: no catalog yet
	metaNextGen  = []byte("catalog_next_generation")
	metaCatSeq   = []byte("catalog_seq")
	metaSyncedAt = []byte("catalog_synced_at")
	metaReflects = []byte("catalog_reflects_till_seq")
	bucketCursor = []byte("cursors") // nested in meta: name → value
)

// Inside a catalog generation bucket.
var (
	genStore     = []byte("store")     // key "record" → Store JSON
	genOffers    = []byte("offers")    // offer id → uvarint offer number, Offer JSON
	genOfferNums = []byte("offer_ids") // offer number (4 bytes BE) → offer id
	genCoupons   = []byte("coupons")   // code → compact coupon (couponcodec.go)
	keyRecord    = []byte("record")
	keyNCoupons  = []byte("n_coupons")
	keyNOffers   = []byte("n_offers")
	keyNextOffer = []byte("next_offer_number")
)

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func getU64(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putU64(b *bolt.Bucket, key []byte, v uint64) error {
	return b.Put(key, u64(v))
}

func seqKey(seq uint64) []byte { return u64(seq) }

func getTime(b *bolt.Bucket, key []byte) time.Time {
	v := b.Get(key)
	if len(v) != 8 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
}

func putTime(b *bolt.Bucket, key []byte, t time.Time) error {
	if t.IsZero() {
		return b.Delete(key)
	}
	return b.Put(key, u64(uint64(t.UnixNano())))
}

func getHLC(b *bolt.Bucket) tillkeep.HLC {
	v := b.Get(metaLastHLC)
	if len(v) != 12 {
		return tillkeep.HLC{}
	}
	return tillkeep.HLC{WallMS: int64(binary.BigEndian.Uint64(v)), Logical: binary.BigEndian.Uint32(v[8:])}
}

func putHLC(b *bolt.Bucket, h tillkeep.HLC) error {
	v := make([]byte, 12)
	binary.BigEndian.PutUint64(v, uint64(h.WallMS))
	binary.BigEndian.PutUint32(v[8:], h.Logical)
	return b.Put(metaLastHLC, v)
}

func genKey(gen uint64) []byte { return append([]byte("g"), u64(gen)...) }

// redemptionRef is the value of the redemption index: where the redemption and its
// reversal sit in the journal, and its transaction, so that a reversal can be answered
// again even after the journal was pruned.
type redemptionRef struct {
	Seq           uint64
	ReversalSeq   uint64 // 0: not reversed
	TransactionID string
}

func (r redemptionRef) encode() []byte {
	b := make([]byte, 16, 16+len(r.TransactionID))
	binary.BigEndian.PutUint64(b, r.Seq)
	binary.BigEndian.PutUint64(b[8:], r.ReversalSeq)
	return append(b, r.TransactionID...)
}

func decodeRedemptionRef(v []byte) (redemptionRef, error) {
	if len(v) < 16 {
		return redemptionRef{}, fmt.Errorf("redemption index value has %d bytes, want at least 16", len(v))
	}
	return redemptionRef{
		Seq:           binary.BigEndian.Uint64(v),
		ReversalSeq:   binary.BigEndian.Uint64(v[8:]),
		TransactionID: string(v[16:]),
	}, nil
}

func decodeSeq(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

func customerKey(offerID, customerID string) []byte {
	k := make([]byte, 0, len(offerID)+1+len(customerID))
	k = append(k, offerID...)
	k = append(k, 0)
	return append(k, customerID...)
}

// customerUse is the value of the local_customer bucket.
type customerUse struct {
	Count int
	Last  time.Time
}

func (u customerUse) encode() []byte {
	b := binary.AppendUvarint(make([]byte, 0, 18), uint64(u.Count))
	var ns int64
	if !u.Last.IsZero() {
		ns = u.Last.UnixNano()
	}
	return binary.BigEndian.AppendUint64(b, uint64(ns))
}

func decodeCustomerUse(v []byte) customerUse {
	n, k := binary.Uvarint(v)
	if k <= 0 || len(v) != k+8 {
		return customerUse{}
	}
	u := customerUse{Count: int(n)}
	if ns := int64(binary.BigEndian.Uint64(v[k:])); ns != 0 {
		u.Last = time.Unix(0, ns).UTC()
	}
	return u
}

func getCount(b *bolt.Bucket, key []byte) int {
	n, k := binary.Uvarint(b.Get(key))
	if k <= 0 {
		return 0
	}
	return int(n)
}

func putCount(b *bolt.Bucket, key []byte, n int) error {
	if n <= 0 {
		return b.Delete(key)
	}
	return b.Put(key, binary.AppendUvarint(nil, uint64(n)))
}
