package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/tillkeep/tillkeep"
)

// A store may cache a million coupons, so a cached coupon is a few dozen bytes of binary
// rather than ~250 bytes of JSON. The key is the code; the value is:
//
//	byte    format (couponFormat1)
//	byte    flags: bits 0-4 say which optional fields follow (flag* below);
//	        bits 6-7 are the status when it is one of the four known ones
//	uvarint offer number (see genOfferNums; offer ids can be long, numbers are not)
//	uvarint redemptions
//	[uvarint length, bytes]     customer id        (flagCustomer)
//	[varint seconds, uvarint ns] issued_at         (flagIssued)
//	[varint seconds, uvarint ns] created_at        (flagCreated)
//	[varint seconds, uvarint ns] expires_at        (flagExpires)
//	[varint seconds, uvarint ns] revoked_at        (flagRevoked)
//	[uvarint length, bytes]     status             (flagStatusText: not a known status)
//
// Times come back in UTC. A new layout gets a new format byte; decoders keep reading
// the old ones.
const couponFormat1 = 1

const (
	flagCustomer = 1 << iota
	flagIssued
	flagCreated
	flagExpires
	flagRevoked
	flagStatusText
	statusShift = 6
)

var knownStatuses = [...]string{tillkeep.CouponActive, tillkeep.CouponRedeemed, tillkeep.CouponRevoked, tillkeep.CouponExpired}

func statusIndex(s string) (byte, bool) {
	for i, k := range knownStatuses {
		if s == k {
			return byte(i), true
		}
	}
	return 0, false
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// encodeCoupon returns the stored form of c, which refers to its offer by offerNum.
func encodeCoupon(c *tillkeep.Coupon, offerNum uint32) []byte {
	b := make([]byte, 2, 24+len(c.CustomerID))
	b[0] = couponFormat1
	var flags byte
	if st, ok := statusIndex(c.Status); ok {
		flags |= st << statusShift
	} else {
		flags |= flagStatusText
	}
	b = binary.AppendUvarint(b, uint64(offerNum))
	b = binary.AppendUvarint(b, uint64(c.Redemptions))
	if c.CustomerID != "" {
		flags |= flagCustomer
		b = binary.AppendUvarint(b, uint64(len(c.CustomerID)))
		b = append(b, c.CustomerID...)
	}
	for _, f := range []struct {
		t    time.Time
		flag byte
	}{{c.IssuedAt, flagIssued}, {c.CreatedAt, flagCreated}, {c.ExpiresAt, flagExpires}, {c.RevokedAt, flagRevoked}} {
		if !f.t.IsZero() {
			flags |= f.flag
			b = appendTime(b, f.t)
		}
	}
	if flags&flagStatusText != 0 {
		b = binary.AppendUvarint(b, uint64(len(c.Status)))
		b = append(b, c.Status...)
	}
	b[1] = flags
	return b
}

var errCouponTruncated = errors.New("truncated coupon record")

type couponReader struct {
	b   []byte
	err error
}

func (r *couponReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCouponTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *couponReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCouponTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *couponReader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if uint64(len(r.b)) < n {
		r.err = errCouponTruncated
		return ""
	}
	s := string(r.b[:n]) // copies: the slice dies with the transaction
	r.b = r.b[n:]
	return s
}

func (r *couponReader) time() time.Time {
	sec := r.varint()
	ns := r.uvarint()
	if r.err != nil {
		return time.Time{}
	}
	if ns >= 1e9 {
		r.err = fmt.Errorf("coupon time has %d nanoseconds", ns)
		return time.Time{}
	}
	return time.Unix(sec, int64(ns)).UTC()
}

// decodeCoupon parses a stored coupon; the caller fills OfferID from the offer number.
func decodeCoupon(code []byte, v []byte) (tillkeep.Coupon, uint32, error) {
	c := tillkeep.Coupon{Code: string(code)}
	if len(v) < 2 {
		return c, 0, fmt.Errorf("decode coupon %q: %w", code, errCouponTruncated)
	}
	if v[0] != couponFormat1 {
		return c, 0, fmt.Errorf("decode coupon %q: unknown format %d", code, v[0])
	}
	flags := v[1]
	r := couponReader{b: v[2:]}
	num := r.uvarint()
	c.Redemptions = int(r.uvarint())
	if flags&flagCustomer != 0 {
		c.CustomerID = r.str()
	}
	if flags&flagIssued != 0 {
		c.IssuedAt = r.time()
	}
	if flags&flagCreated != 0 {
		c.CreatedAt = r.time()
	}
	if flags&flagExpires != 0 {
		c.ExpiresAt = r.time()
	}
	if flags&flagRevoked != 0 {
		c.RevokedAt = r.time()
	}
	if flags&flagStatusText != 0 {
		c.Status = r.str()
	} else {
		c.Status = knownStatuses[flags>>statusShift]
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err == nil && num > 1<<32-1 {
		r.err = fmt.Errorf("offer number %d out of range", num)
	}
	if r.err != nil {
		return c, 0, fmt.Errorf("decode coupon %q: %w", code, r.err)
	}
	return c, uint32(num), nil
}

// couponOfferNum reads only the offer number of a stored coupon, for scans that look
// for the coupons of one offer.
func couponOfferNum(v []byte) (uint32, bool) {
	if len(v) < 3 || v[0] != couponFormat1 {
		return 0, false
	}
	n, k := binary.Uvarint(v[2:])
	if k <= 0 || n > 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}
