package platform

import (
	"context"
	"slices"

	"github.com/tillkeep/tillkeep"
)

// Revocation scopes of an offer.
const (
	// ScopeUnredeemed revokes every coupon of the offer that can still be redeemed,
	// issued or not.
	ScopeUnredeemed = "unredeemed"
	// ScopeUnissued revokes the offer's coupons that were issued to nobody.
	ScopeUnissued = "unissued"
	// ScopeCustomers revokes every active coupon of the offer held by the customers.
	ScopeCustomers = "customers"
)

// revokeChunk bounds the coupons one revocation transaction changes.
const revokeChunk = 5_000

// RevokeRequest is the body of POST /v1/coupons/revoke: codes, or an offer and a scope.
type RevokeRequest struct {
	Codes     []string `json:"codes,omitempty"`
	OfferID   string   `json:"offer_id,omitempty"`
	Scope     string   `json:"scope,omitempty"`
	Customers []string `json:"customers,omitempty"`
}

// RevokeResult counts revoked coupons; Skipped counts the named or scanned coupons that
// were not (redeemed, already revoked, unknown).
type RevokeResult struct {
	Revoked int64 `json:"revoked"`
	Skipped int64 `json:"skipped"`
}

// Revoke revokes coupons. Only active coupons are revoked: a redeemed coupon cannot be
// (it is skipped and not counted), and a revoked one stays as it is. Each coupon's
// revocation is in the change log, so tills learn it. Large scopes are revoked a chunk
// per transaction; each chunk is atomic.
func (s *Service) Revoke(ctx context.Context, req RevokeRequest, progress Progress) (RevokeResult, error) {
	var res RevokeResult
	if len(req.Codes) > 0 {
		if req.OfferID != "" || req.Scope != "" || len(req.Customers) > 0 {
			return res, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "give either codes, or offer_id with scope")
		}
		for _, code := range req.Codes {
			if err := checkCode(code); err != nil {
				return res, err
			}
		}
		for start := 0; start < len(req.Codes); start += revokeChunk {
			chunk := req.Codes[start:min(start+revokeChunk, len(req.Codes))]
			r, err := s.revokeCodes(ctx, chunk)
			res.Revoked += r.Revoked
			res.Skipped += r.Skipped
			if err != nil {
				return res, err
			}
		}
		s.finishRevoke(res, "codes", "")
		return res, nil
	}
	if req.OfferID == "" {
		return res, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "give codes, or offer_id with scope %q, %q or %q", ScopeUnredeemed, ScopeUnissued, ScopeCustomers)
	}
	if _, err := s.GetOffer(ctx, req.OfferID); err != nil {
		return res, err
	}
	switch req.Scope {
	case ScopeUnredeemed, ScopeUnissued:
		if len(req.Customers) > 0 {
			return res, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "customers are only for scope %q", ScopeCustomers)
		}
		after := ""
		for {
			r, last, err := s.revokeOfferPage(ctx, req.OfferID, req.Scope, after)
			res.Revoked += r.Revoked
			res.Skipped += r.Skipped
			if err != nil {
				return res, err
			}
			if progress != nil {
				progress(res.Revoked + res.Skipped)
			}
			if last == "" {
				break
			}
			after = last
		}
	case ScopeCustomers:
		if len(req.Customers) == 0 {
			return res, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "scope %q needs customers", ScopeCustomers)
		}
		for _, c := range req.Customers {
			if err := checkID("customer id", c); err != nil {
				return res, err
			}
		}
		const perTx = 500
		for start := 0; start < len(req.Customers); start += perTx {
			r, err := s.revokeCustomers(ctx, req.OfferID, req.Customers[start:min(start+perTx, len(req.Customers))])
			res.Revoked += r.Revoked
			res.Skipped += r.Skipped
			if err != nil {
				return res, err
			}
		}
	default:
		return res, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "scope must be %q, %q or %q, not %q", ScopeUnredeemed, ScopeUnissued, ScopeCustomers, req.Scope)
	}
	s.finishRevoke(res, req.Scope, req.OfferID)
	return res, nil
}

func (s *Service) finishRevoke(res RevokeResult, scope, offerID string) {
	s.m.coupons("revoked", res.Revoked)
	s.log.Info("coupons revoked", "scope", scope, "offer", offerID, "revoked", res.Revoked, "skipped", res.Skipped)
}

// revokeRow revokes one coupon of the working set if it is active.
func (l *ledger) revokeIfActive(c *couponRow, res *RevokeResult) error {
	if c == nil || c.c.Status != tillkeep.CouponActive {
		res.Skipped++
		return nil
	}
	res.Revoked++
	return l.revokeCoupon(c)
}

func (s *Service) revokeCodes(ctx context.Context, codes []string) (RevokeResult, error) {
	var res RevokeResult
	err := s.st.Update(ctx, func(tx Tx) error {
		res = RevokeResult{}
		l := s.newLedger(tx)
		if err := l.lockRows(nil, codes, nil); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, code := range codes {
			if seen[code] {
				continue
			}
			seen[code] = true
			c, err := l.coupon(code)
			if err != nil {
				return err
			}
			if err := l.revokeIfActive(c, &res); err != nil {
				return err
			}
		}
		return l.flush()
	})
	return res, storageErr(err, "revoke coupons")
}

// revokeOfferPage revokes one page of an offer's coupons after "after" and returns the
// last code it looked at ("" when the offer has no more).
func (s *Service) revokeOfferPage(ctx context.Context, offerID, scope, after string) (RevokeResult, string, error) {
	var (
		res  RevokeResult
		last string
	)
	err := s.st.Update(ctx, func(tx Tx) error {
		res, last = RevokeResult{}, ""
		var page []tillkeep.Coupon
		var err error
		if scope == ScopeUnissued {
			page, err = tx.UnissuedCoupons(offerID, after, revokeChunk)
		} else {
			page, err = tx.CouponsByOffer(offerID, after, revokeChunk)
		}
		if err != nil || len(page) == 0 {
			return err
		}
		l := s.newLedger(tx)
		for _, c := range page {
			row, err := l.coupon(c.Code)
			if err != nil {
				return err
			}
			if scope == ScopeUnissued && row != nil && row.c.CustomerID != "" {
				continue
			}
			// Only active coupons count: redeemed and revoked ones are simply passed.
			if row != nil && row.c.Status != tillkeep.CouponActive {
				continue
			}
			if err := l.revokeIfActive(row, &res); err != nil {
				return err
			}
		}
		last = page[len(page)-1].Code
		return l.flush()
	})
	return res, last, storageErr(err, "revoke coupons")
}

func (s *Service) revokeCustomers(ctx context.Context, offerID string, customers []string) (RevokeResult, error) {
	var res RevokeResult
	err := s.st.Update(ctx, func(tx Tx) error {
		res = RevokeResult{}
		var codes []string
		for _, cust := range customers {
			cs, err := tx.CouponsByCustomer(cust, offerID)
			if err != nil {
				return err
			}
			for _, c := range cs {
				codes = append(codes, c.Code)
			}
		}
		slices.Sort(codes)
		codes = slices.Compact(codes)
		l := s.newLedger(tx)
		if err := l.lockRows(nil, codes, nil); err != nil {
			return err
		}
		for _, code := range codes {
			row, err := l.coupon(code)
			if err != nil {
				return err
			}
			if err := l.revokeIfActive(row, &res); err != nil {
				return err
			}
		}
		return l.flush()
	})
	return res, storageErr(err, "revoke coupons")
}
