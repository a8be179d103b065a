package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform/codegen"
)

// Coupon error reasons, in the "errors" of a coupon batch.
const (
	ReasonDuplicateCode = "duplicate_code"
	ReasonInvalidCode   = "invalid_code"
)

// couponChunk is how many coupons one transaction inserts: large enough to amortise the
// commit's fsyncs, small enough to keep a transaction's dirty pages in tens of MB.
const couponChunk = 10_000

// maxRowErrors bounds the errors listed in an answer; the report holds them all.
const maxRowErrors = 1000

// CouponsRequest is the body of POST /v1/offers/{id}/coupons: exactly one of its fields.
type CouponsRequest struct {
	Codes            []string                 `json:"codes,omitempty"`
	Generate         *codegen.Spec            `json:"generate,omitempty"`
	Common           *CommonCodeRequest       `json:"common,omitempty"`
	RandomizedCommon *RandomizedCommonRequest `json:"randomized_common,omitempty"`
}

// CommonCodeRequest creates an offer's one common code.
type CommonCodeRequest struct {
	Code string `json:"code"`
}

// RandomizedCommonRequest creates codes made of a fixed part, unique in the
// organisation, and a random part.
type RandomizedCommonRequest struct {
	Fixed  string `json:"fixed"`
	Count  int64  `json:"count"`
	Length int    `json:"length"`
}

// CouponError is one refused code of a batch.
type CouponError struct {
	Code    string `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// CreateResult answers a coupon batch.
type CreateResult struct {
	Created int64         `json:"created"`
	Errors  []CouponError `json:"errors"`
}

// Progress reports how many rows or codes a long operation has done.
type Progress func(done int64)

// CreateCoupons runs one coupon batch request. A batch of which nothing was created is
// refused with nothing_created (the errors say why).
func (s *Service) CreateCoupons(ctx context.Context, offerID string, req CouponsRequest, progress Progress) (CreateResult, error) {
	n := 0
	for _, set := range []bool{req.Codes != nil, req.Generate != nil, req.Common != nil, req.RandomizedCommon != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return CreateResult{}, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "give exactly one of codes, generate, common or randomized_common")
	}
	var (
		res CreateResult
		err error
	)
	switch {
	case req.Codes != nil:
		res, err = s.createCodes(ctx, offerID, req.Codes)
	case req.Generate != nil:
		res, err = s.generate(ctx, offerID, *req.Generate, progress)
	case req.Common != nil:
		res, err = s.createCommon(ctx, offerID, req.Common.Code)
	default:
		res, err = s.generateRandomizedCommon(ctx, offerID, *req.RandomizedCommon, progress)
	}
	if err != nil {
		return res, err
	}
	s.m.coupons("created", res.Created)
	if res.Created == 0 {
		return res, tillkeep.Errorf(tillkeep.CodeNothingCreated, "no coupon was created: %s", summarize(res.Errors))
	}
	return res, nil
}

// summarize counts errors by reason for a human message.
func summarize(errs []CouponError) string {
	if len(errs) == 0 {
		return "the batch was empty"
	}
	counts := map[string]int{}
	var order []string
	for _, e := range errs {
		if counts[e.Reason] == 0 {
			order = append(order, e.Reason)
		}
		counts[e.Reason]++
	}
	msg := ""
	for i, r := range order {
		if i > 0 {
			msg += ", "
		}
		msg += strconv.Itoa(counts[r]) + " " + r
	}
	return msg
}

// offerOfKind loads an offer and checks that it makes codes of kind.
func offerOfKind(tx ReadTx, offerID, kind, how string) (tillkeep.Offer, error) {
	o, err := tx.Offer(offerID)
	if err != nil {
		return o, notFound(err, "offer %s is not known", offerID)
	}
	k := o.CodeKind
	if k == "" {
		k = tillkeep.CodeKindUnique
	}
	if k != kind {
		return o, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "offer %s has code_kind %s; %s is for offers of code_kind %s", offerID, k, how, kind)
	}
	return o, nil
}

func (s *Service) checkOfferKind(ctx context.Context, offerID, kind, how string) (tillkeep.Offer, error) {
	var o tillkeep.Offer
	err := s.st.View(ctx, func(tx ReadTx) error {
		var err error
		o, err = offerOfKind(tx, offerID, kind, how)
		return err
	})
	return o, storageErr(err, "read offer")
}

// insertCoupons inserts coupons of one offer inside a ledger's transaction, counting
// them on the offer's usage row and logging a change for each. It returns the codes
// that already existed (skipped), in input order.
func (l *ledger) insertCoupons(offerID string, cs []tillkeep.Coupon) (created int64, existing []string, err error) {
	ou, err := l.offerUsageRow(offerID)
	if err != nil {
		return 0, nil, err
	}
	existing, err = l.tx.InsertCoupons(cs)
	if err != nil {
		return 0, nil, err
	}
	// A code given k times of which m were skipped was inserted (once, the first time)
	// when m < k.
	occurrences := make(map[string]int, len(cs))
	for _, c := range cs {
		occurrences[c.Code]++
	}
	skipped := make(map[string]int, len(existing))
	for _, code := range existing {
		skipped[code]++
	}
	for _, c := range cs {
		k := occurrences[c.Code]
		if k == 0 {
			continue // already counted
		}
		occurrences[c.Code] = 0
		if skipped[c.Code] < k {
			created++
			if err := l.change(Change{Entity: EntityCoupon, Key: c.Code, Event: EventCreated, OfferID: offerID}); err != nil {
				return 0, nil, err
			}
		}
	}
	ou.u.Coupons += created
	ou.dirty = created > 0
	return created, existing, nil
}

// createCodes creates coupons from given codes; invalid and existing codes are listed
// in the errors and the rest go through.
func (s *Service) createCodes(ctx context.Context, offerID string, codes []string) (CreateResult, error) {
	res := CreateResult{Errors: []CouponError{}}
	if _, err := s.checkOfferKind(ctx, offerID, tillkeep.CodeKindUnique, "a list of codes"); err != nil {
		return res, err
	}
	now := s.now()
	valid := make([]tillkeep.Coupon, 0, min(len(codes), couponChunk))
	addErr := func(e CouponError) {
		if len(res.Errors) < maxRowErrors {
			res.Errors = append(res.Errors, e)
		}
	}
	flushChunk := func() error {
		if len(valid) == 0 {
			return nil
		}
		var created int64
		var existing []string
		err := s.st.Update(ctx, func(tx Tx) error {
			l := s.newLedger(tx)
			var err error
			if created, existing, err = l.insertCoupons(offerID, valid); err != nil {
				return err
			}
			return l.flush()
		})
		if err != nil {
			return storageErr(err, "create coupons")
		}
		res.Created += created
		for _, code := range existing {
			addErr(CouponError{Code: code, Reason: ReasonDuplicateCode, Message: "the code already exists"})
		}
		valid = valid[:0]
		return nil
	}
	for _, code := range codes {
		if err := checkCode(code); err != nil {
			addErr(CouponError{Code: code, Reason: ReasonInvalidCode, Message: tillkeep.ErrorMessage(err)})
			continue
		}
		valid = append(valid, tillkeep.Coupon{Code: code, OfferID: offerID, Status: tillkeep.CouponActive, CreatedAt: now})
		if len(valid) == couponChunk {
			if err := flushChunk(); err != nil {
				return res, err
			}
		}
	}
	return res, flushChunk()
}

// createCommon creates an offer's common code: one code that every customer uses.
func (s *Service) createCommon(ctx context.Context, offerID, code string) (CreateResult, error) {
	res := CreateResult{Errors: []CouponError{}}
	if err := checkCode(code); err != nil {
		res.Errors = append(res.Errors, CouponError{Code: code, Reason: ReasonInvalidCode, Message: tillkeep.ErrorMessage(err)})
		return res, nil
	}
	var refusal error
	err := s.st.Update(ctx, func(tx Tx) error {
		res, refusal = CreateResult{Errors: []CouponError{}}, nil
		if _, err := offerOfKind(tx, offerID, tillkeep.CodeKindCommon, "a common code"); err != nil {
			refusal = err
			return nil
		}
		l := s.newLedger(tx)
		ou, err := l.offerUsageRow(offerID)
		if err != nil {
			return err
		}
		if ou.u.Coupons > 0 {
			refusal = tillkeep.Errorf(tillkeep.CodeConflict, "offer %s already has its common code", offerID)
			return nil
		}
		created, existing, err := l.insertCoupons(offerID, []tillkeep.Coupon{{Code: code, OfferID: offerID, Status: tillkeep.CouponActive, CreatedAt: l.now}})
		if err != nil {
			return err
		}
		res.Created = created
		for _, c := range existing {
			res.Errors = append(res.Errors, CouponError{Code: c, Reason: ReasonDuplicateCode, Message: "the code already exists"})
		}
		return l.flush()
	})
	if err != nil {
		return res, storageErr(err, "create common code")
	}
	return res, refusal
}

// generate makes count unique codes for a unique-code offer. The series' secret key and
// counter persist in the storage (meta), so that later requests continue the same
// permutation and never repeat a code; codes are made and inserted a chunk at a time,
// so memory stays flat however many are asked for.
func (s *Service) generate(ctx context.Context, offerID string, spec codegen.Spec, progress Progress) (CreateResult, error) {
	res := CreateResult{Errors: []CouponError{}}
	if spec.Charset == "" {
		spec.Charset = codegen.DefaultCharset
	}
	if _, err := s.checkOfferKind(ctx, offerID, tillkeep.CodeKindUnique, "generate"); err != nil {
		return res, err
	}
	existing, err := s.offerCoupons(ctx, offerID)
	if err != nil {
		return res, err
	}
	// Refuse a count that would make guessing a valid code easy, before making any.
	if err := spec.Check(existing); err != nil {
		return res, err
	}
	key := fmt.Sprintf("codegen/%s/unique/%s/%d/%s", offerID, spec.Charset, spec.Length, spec.Prefix)
	fresh, err := codegen.NewState(spec, nil)
	if err != nil {
		return res, err
	}
	res.Created, err = s.generateSeries(ctx, offerID, key, fresh, spec.Count, nil, progress)
	return res, err
}

// metaRandomizedFixed holds the fixed parts of randomized common series: a JSON object
// from fixed part to offer id. Fixed parts must be unique in the organisation.
const metaRandomizedFixed = "randomized_common_fixed"

// generateRandomizedCommon makes count randomized common codes for an offer.
func (s *Service) generateRandomizedCommon(ctx context.Context, offerID string, req RandomizedCommonRequest, progress Progress) (CreateResult, error) {
	res := CreateResult{Errors: []CouponError{}}
	if _, err := s.checkOfferKind(ctx, offerID, tillkeep.CodeKindRandomizedCommon, "randomized_common"); err != nil {
		return res, err
	}
	existing, err := s.offerCoupons(ctx, offerID)
	if err != nil {
		return res, err
	}
	if err := codegen.CheckRandomizedCommon(req.Fixed, req.Length, req.Count, existing); err != nil {
		return res, err
	}
	fresh, err := codegen.NewRandomizedCommonState(req.Fixed, req.Length, nil)
	if err != nil {
		return res, err
	}
	key := fmt.Sprintf("codegen/%s/randomized_common/%s/%d", offerID, req.Fixed, req.Length)
	register := func(tx Tx) error {
		fixed := map[string]string{}
		raw, err := tx.Meta(metaRandomizedFixed)
		switch {
		case err == nil:
			if err := json.Unmarshal(raw, &fixed); err != nil {
				return fmt.Errorf("decode %s: %w", metaRandomizedFixed, err)
			}
		case !errors.Is(err, ErrNotFound):
			return err
		}
		for f, owner := range fixed {
			if owner != offerID && codegen.FixedPartsOverlap(f, req.Fixed) {
				return tillkeep.Errorf(tillkeep.CodeConflict, "fixed part %q overlaps fixed part %q of offer %s; fixed parts must be unique in the organisation", req.Fixed, f, owner)
			}
		}
		if fixed[req.Fixed] == offerID {
			return nil
		}
		fixed[req.Fixed] = offerID
		raw, err = json.Marshal(fixed)
		if err != nil {
			return err
		}
		return tx.PutMeta(metaRandomizedFixed, raw)
	}
	res.Created, err = s.generateSeries(ctx, offerID, key, fresh, req.Count, register, progress)
	return res, err
}

// offerCoupons is how many coupons an offer has.
func (s *Service) offerCoupons(ctx context.Context, offerID string) (int64, error) {
	var n int64
	err := s.st.View(ctx, func(tx ReadTx) error {
		u, err := tx.OfferUsage(offerID)
		n = u.Coupons
		return err
	})
	return n, storageErr(err, "read offer usage")
}

// generateSeries inserts count codes of the series stored under key (fresh when it is
// new), a chunk per transaction. Codes that collide with an existing coupon of another
// series are skipped and more are drawn. first runs in the first chunk's transaction.
// When interrupted it returns what it created so far with the error; the series state
// is saved with every chunk, so a new request continues it.
func (s *Service) generateSeries(ctx context.Context, offerID, key string, fresh codegen.State, count int64, first func(Tx) error, progress Progress) (int64, error) {
	var created int64
	for created < count {
		if err := ctx.Err(); err != nil {
			return created, storageErr(fmt.Errorf("generate codes: stopped after %d: %w", created, err), "generate codes")
		}
		want := min(int64(couponChunk), count-created)
		var n int64
		err := s.st.Update(ctx, func(tx Tx) error {
			n = 0
			if created == 0 && first != nil {
				if err := first(tx); err != nil {
					return err
				}
			}
			st := fresh
			raw, err := tx.Meta(key)
			switch {
			case err == nil:
				if err := json.Unmarshal(raw, &st); err != nil {
					return fmt.Errorf("decode code series %s: %w", key, err)
				}
			case !errors.Is(err, ErrNotFound):
				return err
			}
			g, err := codegen.NewGenerator(st)
			if err != nil {
				return err
			}
			l := s.newLedger(tx)
			codes := make([]string, want)
			batch := make([]tillkeep.Coupon, 0, want)
			for round := 0; n < want; round++ {
				if round == 20 {
					return tillkeep.Errorf(tillkeep.CodeConflict, "generated codes keep colliding with existing coupons; use longer codes or another prefix")
				}
				todo := codes[:want-n]
				if err := g.Fill(todo); err != nil {
					return err
				}
				batch = batch[:0]
				for _, code := range todo {
					batch = append(batch, tillkeep.Coupon{Code: code, OfferID: offerID, Status: tillkeep.CouponActive, CreatedAt: l.now})
				}
				inserted, _, err := l.insertCoupons(offerID, batch)
				if err != nil {
					return err
				}
				n += inserted
			}
			raw, err = json.Marshal(g.State())
			if err != nil {
				return err
			}
			if err := tx.PutMeta(key, raw); err != nil {
				return err
			}
			return l.flush()
		})
		if err != nil {
			return created, storageErr(err, "generate codes")
		}
		created += n
		if progress != nil {
			progress(created)
		}
	}
	return created, nil
}
