package boltstore

import (
	"bytes"
	"encoding/binary"
	"time"
)

// Buckets. Records are JSON values under their natural key; index buckets hold keys
// made of NUL-separated parts (ids never contain NUL: the service refuses control
// characters in ids and codes) and empty or short values.
var (
	bucketMeta      = []byte("meta")
	bucketStores    = []byte("stores")
	bucketCustomers = []byte("customers")
	bucketOffers    = []byte("offers")

	bucketCoupons = []byte("coupons") // code → coupon
	// offer \x00 code → ""
	bucketCouponsByOffer = []byte("coupons_by_offer")
	// offer \x00 code → "" while the coupon is active and issued to nobody
	bucketCouponsUnissued = []byte("coupons_unissued")
	// customer \x00 offer \x00 code → ""
	bucketCouponsByCustomer = []byte("coupons_by_customer")

	bucketRedemptions = []byte("redemptions") // id → redemption
	// code \x00 id → ""
	bucketRedemptionsByCoupon = []byte("redemptions_by_coupon")
	// store \x00 till \x00 transaction → id (the first one recorded)
	bucketRedemptionsByTxn = []byte("redemptions_by_txn")
	// event time (8 bytes, big-endian Unix ns) id → ""
	bucketRedemptionsByTime = []byte("redemptions_by_time")

	bucketOfferUsage    = []byte("offer_usage")    // offer → usage
	bucketCustomerUsage = []byte("customer_usage") // customer \x00 offer → usage

	bucketTills       = []byte("tills")         // store \x00 till → till
	bucketTillsByHash = []byte("tills_by_hash") // token hash → store \x00 till

	bucketConflicts = []byte("conflicts") // id → case
	// code \x00 kind → id, for open cases only
	bucketConflictsOpen = []byte("conflicts_open")
	// status \x00 id → ""
	bucketConflictsByStatus = []byte("conflicts_by_status")

	bucketChanges   = []byte("changes")   // seq (8 bytes, big-endian) → change
	bucketAnomalies = []byte("anomalies") // id → anomaly
	bucketReports   = []byte("reports")   // id \x00 part (4 bytes, big-endian) → bytes

	allBuckets = [][]byte{
		bucketMeta, bucketStores, bucketCustomers, bucketOffers,
		bucketCoupons, bucketCouponsByOffer, bucketCouponsUnissued, bucketCouponsByCustomer,
		bucketRedemptions, bucketRedemptionsByCoupon, bucketRedemptionsByTxn, bucketRedemptionsByTime,
		bucketOfferUsage, bucketCustomerUsage,
		bucketTills, bucketTillsByHash,
		bucketConflicts, bucketConflictsOpen, bucketConflictsByStatus,
		bucketChanges, bucketAnomalies, bucketReports,
	}
)

// appendOnlyFill is the FillPercent of buckets whose keys only grow (sequences, UUIDv7
// ids, time-ordered index keys): pages split near full instead of half full, so the
// file stays about half the size.
const appendOnlyFill = 0.95

// key joins parts with NUL.
func key(parts ...string) []byte {
	n := len(parts) - 1
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

// prefix is key(parts...) followed by NUL: every key that extends parts.
func prefix(parts ...string) []byte { return append(key(parts...), 0) }

// lastPart returns what follows the last NUL of k.
func lastPart(k []byte) string {
	if i := bytes.LastIndexByte(k, 0); i >= 0 {
		return string(k[i+1:])
	}
	return string(k)
}

func u64(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

// timeKey orders times before 1970 first (they do not occur, but must not wrap).
func timeKey(t time.Time, id string) []byte {
	ns := uint64(t.UnixNano()) ^ (1 << 63)
	b := make([]byte, 0, 8+len(id))
	b = binary.BigEndian.AppendUint64(b, ns)
	return append(b, id...)
}

func partKey(id string, part int) []byte {
	b := append([]byte(id), 0)
	return binary.BigEndian.AppendUint32(b, uint32(part))
}
