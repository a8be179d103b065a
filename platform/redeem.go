package platform

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// TillRef names the authenticated till a request comes from.
type TillRef struct {
	StoreID string `json:"store_id"`
	TillID  string `json:"till_id"`
}

// RedeemRequest is an online redemption asked for by a till. RedemptionID is the
// till's UUIDv7, made once and reused on every retry and on the offline fallback;
// WallTime and HLC are the till's clock readings, kept on the record.
type RedeemRequest = wire.RedeemRequest

// RedeemResult is the answer to an online redemption, with the platform's clock.
type RedeemResult = wire.RedeemResponse

func checkRedeemRequest(req RedeemRequest) error {
	if err := checkID("redemption_id", req.RedemptionID); err != nil {
		return err
	}
	if err := checkID("transaction_id", req.TransactionID); err != nil {
		return err
	}
	if err := checkCode(req.Code); err != nil {
		return err
	}
	if req.CustomerID != "" {
		if err := checkID("customer_id", req.CustomerID); err != nil {
			return err
		}
	}
	if err := req.Bill.Validate(); err != nil {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "bill: %s", tillkeep.ErrorMessage(err))
	}
	return nil
}

func resultOf(r Redemption, now time.Time) RedeemResult {
	return RedeemResult{RedemptionID: r.ID, Mode: r.Mode, Discount: r.Discount, Status: r.Status, ServerTime: now}
}

// Redeem decides an online redemption for a till and, when the rules allow it,
// consumes every limit and records the redemption in one transaction, answering only
// after the commit. A refusal is a *tillkeep.Error with the refusal code and changes
// nothing.
//
// It is idempotent by redemption id and by (till, transaction id): a retry with the
// same content gets the first outcome; the same key with other content is refused with
// idempotency_key_reuse and recorded as an anomaly.
func (s *Service) Redeem(ctx context.Context, till TillRef, req RedeemRequest) (RedeemResult, error) {
	if err := checkRedeemRequest(req); err != nil {
		return RedeemResult{}, err
	}
	hash := requestHash(till.StoreID, till.TillID, req.TransactionID, req.Code, req.CustomerID, req.Bill)

	// The code's offer tells which offer-usage row to lock first; a coupon never changes
	// offer, so reading it outside the write transaction is safe.
	offerID := ""
	err := s.st.View(ctx, func(tx ReadTx) error {
		offerID = ""
		c, err := tx.Coupon(req.Code)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		offerID = c.OfferID
		return err
	})
	if err != nil {
		return RedeemResult{}, storageErr(err, "look up coupon")
	}

	var (
		res     RedeemResult
		refusal *tillkeep.Error
		reuse   *tillkeep.Error
		fx      effects
	)
	err = s.st.Update(ctx, func(tx Tx) error {
		res, refusal, reuse, fx = RedeemResult{}, nil, nil, effects{}
		l := s.newLedger(tx)

		prior, err := priorRedemption(tx, till, req.RedemptionID, req.TransactionID)
		if err != nil {
			return err
		}
		if prior != nil {
			if prior.StoreID == till.StoreID && prior.TillID == till.TillID && prior.RequestHash == hash {
				res = resultOf(*prior, l.now)
				return nil
			}
			reuse = tillkeep.Errorf(tillkeep.CodeIdempotencyReuse,
				"redemption %s / transaction %s was already used for another redemption (%s); a new redemption needs new ids",
				req.RedemptionID, req.TransactionID, prior.ID)
			fx.anomalies = append(fx.anomalies, AnomalyIdempotencyReuse)
			return l.anomaly(AnomalyIdempotencyReuse, till, req.RedemptionID,
				fmt.Sprintf("online redemption reused redemption %s / transaction %s of redemption %s with other content (code %s)", req.RedemptionID, req.TransactionID, prior.ID, req.Code))
		}

		if offerID == "" {
			refusal = tillkeep.Errorf(tillkeep.CodeUnknownCoupon, "This coupon code is not known.")
			return nil
		}
		// Lock order: offer usage, coupon, customer usage.
		ou, err := l.offerUsageRow(offerID)
		if err != nil {
			return err
		}
		c, err := l.coupon(req.Code)
		if err != nil {
			return err
		}
		if c == nil || c.c.OfferID != offerID {
			return fmt.Errorf("coupon %s changed offer during a redemption", req.Code)
		}
		var cu *custUsageRow
		if req.CustomerID != "" {
			if cu, err = l.customerUsageRow(req.CustomerID, offerID); err != nil {
				return err
			}
		}
		o, err := l.offer(offerID)
		if err != nil {
			return err
		}
		if o == nil {
			return fmt.Errorf("coupon %s names offer %s, which does not exist", req.Code, offerID)
		}
		st, err := l.store(till.StoreID)
		if err != nil {
			return err
		}
		var profile *tillkeep.Customer
		if req.CustomerID != "" {
			p, err := tx.Customer(req.CustomerID)
			switch {
			case err == nil:
				profile = &p
			case !errors.Is(err, ErrNotFound):
				return err
			}
		}
		d := tillkeep.Evaluate(tillkeep.Attempt{
			Offer: o, Coupon: &c.c, Store: st, TillID: till.TillID,
			CustomerID: req.CustomerID, Customer: profile, Bill: req.Bill,
			At: l.now, Location: s.storeLocation(st), Usage: usageOf(&c.c, ou, cu),
		})
		if d.Err != nil {
			refusal = d.Err
			return nil
		}
		l.consume(c, o, ou, cu, l.now)
		r := Redemption{
			ID: req.RedemptionID, Code: req.Code, OfferID: offerID,
			StoreID: till.StoreID, TillID: till.TillID, TransactionID: req.TransactionID,
			CustomerID: req.CustomerID, Bill: req.Bill, Discount: d.Discount,
			Mode: tillkeep.ModeOnline, Status: tillkeep.RedemptionAccepted,
			At: req.WallTime.UTC(), EventAt: l.now, ReceivedAt: l.now, HLC: req.HLC,
			RequestHash: hash, Consumed: true, LastStatusChangeOn: l.now,
		}
		if r.At.IsZero() {
			r.At = l.now
		}
		// The platform decided at its own time; the till's wall clock is only kept and
		// compared, so a till online with a wrong clock is flagged like an offline one.
		if skew := r.At.Sub(l.now); skew.Abs() > s.cfg.MaxClockSkew && s.cfg.MaxClockSkew > 0 {
			r.Flags = append(r.Flags, FlagClockSkew)
			r.SkewMS = skew.Milliseconds()
			l.fx.skewed++
		}
		if err := tx.InsertRedemption(r); err != nil {
			return err
		}
		if err := l.change(Change{Entity: EntityCoupon, Key: r.Code, Event: EventRedeemed, OfferID: offerID}); err != nil {
			return err
		}
		if err := l.flush(); err != nil {
			return err
		}
		res = resultOf(r, l.now)
		fx = l.fx
		fx.recorded = append(fx.recorded, [2]string{r.Mode, r.Status})
		return nil
	})
	if err != nil {
		return RedeemResult{}, storageErr(err, "record redemption")
	}
	s.report(fx)
	switch {
	case reuse != nil:
		s.log.Warn("refused reuse of an idempotency key", "store", till.StoreID, "till", till.TillID,
			"redemption_id", req.RedemptionID, "transaction_id", req.TransactionID)
		return RedeemResult{}, reuse
	case refusal != nil:
		s.m.refusal(string(refusal.Code))
		return RedeemResult{}, refusal
	}
	return res, nil
}

// priorRedemption finds a redemption already recorded under the same redemption id or
// the same POS transaction of this till.
func priorRedemption(tx ReadTx, till TillRef, redemptionID, transactionID string) (*Redemption, error) {
	r, err := tx.Redemption(redemptionID)
	if err == nil {
		return &r, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if transactionID == "" {
		return nil, nil
	}
	r, err = tx.RedemptionByTransaction(till.StoreID, till.TillID, transactionID)
	if err == nil {
		return &r, nil
	}
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return nil, err
}

// anomaly records a refused or suspicious request inside the ledger's transaction.
func (l *ledger) anomaly(kind string, till TillRef, redemptionID, detail string) error {
	id, err := newID()
	if err != nil {
		return err
	}
	return l.tx.InsertAnomaly(Anomaly{ID: id, At: l.now, Kind: kind, StoreID: till.StoreID, TillID: till.TillID,
		RedemptionID: redemptionID, Detail: detail})
}

// recordAnomaly records an anomaly in its own transaction (for refusals that change
// nothing else, such as a till acting as another).
func (s *Service) recordAnomaly(ctx context.Context, kind string, till TillRef, redemptionID, detail string) {
	err := s.st.Update(ctx, func(tx Tx) error {
		return s.newLedger(tx).anomaly(kind, till, redemptionID, detail)
	})
	if err != nil {
		s.log.Error("record anomaly", "kind", kind, "err", err)
		return
	}
	s.m.anomaly(kind)
}

// ValidateRequest asks whether a code could be redeemed now, changing nothing.
type ValidateRequest = wire.ValidateRequest

// ValidateResult is the answer to a validation: valid with the discount, or the
// refusal's code (reason), rule and message.
type ValidateResult = wire.ValidateResponse

// Validate judges a code for a till online, as Redeem would at this moment, without
// consuming anything.
func (s *Service) Validate(ctx context.Context, till TillRef, req ValidateRequest) (ValidateResult, error) {
	if err := checkCode(req.Code); err != nil {
		return ValidateResult{}, err
	}
	if req.CustomerID != "" {
		if err := checkID("customer_id", req.CustomerID); err != nil {
			return ValidateResult{}, err
		}
	}
	if err := req.Bill.Validate(); err != nil {
		return ValidateResult{}, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "bill: %s", tillkeep.ErrorMessage(err))
	}
	var d tillkeep.Decision
	err := s.st.View(ctx, func(tx ReadTx) error {
		d = tillkeep.Decision{}
		a, err := s.attemptFor(tx, till, req.Code, req.CustomerID, req.Bill, s.now())
		if err != nil {
			return err
		}
		d = tillkeep.Evaluate(a)
		return nil
	})
	if err != nil {
		return ValidateResult{}, storageErr(err, "validate coupon")
	}
	if d.Err != nil {
		return ValidateResult{Reason: string(d.Err.Code), Rule: d.Err.Rule, Message: d.Err.Message}, nil
	}
	disc := d.Discount
	return ValidateResult{Valid: true, Discount: &disc}, nil
}

// attemptFor gathers an Attempt from a read transaction.
func (s *Service) attemptFor(tx ReadTx, till TillRef, code, customerID string, bill tillkeep.Money, at time.Time) (tillkeep.Attempt, error) {
	a := tillkeep.Attempt{TillID: till.TillID, CustomerID: customerID, Bill: bill, At: at}
	c, err := tx.Coupon(code)
	if errors.Is(err, ErrNotFound) {
		return a, nil
	}
	if err != nil {
		return a, err
	}
	a.Coupon = &c
	if o, err := tx.Offer(c.OfferID); err == nil {
		a.Offer = &o
	} else if !errors.Is(err, ErrNotFound) {
		return a, err
	}
	if st, err := tx.Store(till.StoreID); err == nil {
		a.Store = &st
	} else if !errors.Is(err, ErrNotFound) {
		return a, err
	}
	a.Location = s.storeLocation(a.Store)
	ou, err := tx.OfferUsage(c.OfferID)
	if err != nil {
		return a, err
	}
	a.Usage = tillkeep.Usage{CouponRedemptions: c.Redemptions, OfferRedemptions: ou.Redemptions}
	if customerID != "" {
		cu, err := tx.CustomerUsage(customerID, c.OfferID)
		if err != nil {
			return a, err
		}
		a.Usage.CustomerRedemptions = cu.Redemptions
		a.Usage.CustomerLastRedemption = cu.LastRedeemedAt
		if p, err := tx.Customer(customerID); err == nil {
			a.Customer = &p
		} else if !errors.Is(err, ErrNotFound) {
			return a, err
		}
	}
	return a, nil
}

// ReverseResult is the answer to a reversal.
type ReverseResult = wire.ReverseResponse

// TillReverse reverses one of the till's own redemptions online: the limits it used are
// released in one transaction. Reversing it again answers the same.
func (s *Service) TillReverse(ctx context.Context, till TillRef, redemptionID string) (ReverseResult, error) {
	if err := checkID("redemption id", redemptionID); err != nil {
		return ReverseResult{}, err
	}
	r, err := s.reverse(ctx, redemptionID, "till", func(r Redemption) error {
		if r.StoreID != till.StoreID || r.TillID != till.TillID {
			// A till acts only as itself: another till's redemption is not its to undo.
			return tillkeep.Errorf(tillkeep.CodeForbidden, "a till may reverse only its own redemptions")
		}
		return nil
	})
	if tillkeep.ErrorCode(err) == tillkeep.CodeForbidden {
		s.log.Warn("till refused: reversal of another till's redemption",
			"store_id", till.StoreID, "till_id", till.TillID, "redemption_id", redemptionID)
	}
	if err != nil {
		return ReverseResult{}, err
	}
	return ReverseResult{RedemptionID: r.ID, Status: r.Status}, nil
}

// ReverseRedemption reverses a redemption for ops: the coupon is reinstated (its use
// released, active again unless revoked), and the redemption records is_reversed and
// last_status_change_on. Reversing a reversed redemption changes nothing.
func (s *Service) ReverseRedemption(ctx context.Context, redemptionID, principal string) (Redemption, error) {
	if err := checkID("redemption id", redemptionID); err != nil {
		return Redemption{}, err
	}
	return s.reverse(ctx, redemptionID, principal, nil)
}

// reverse is the one reversal path (till, ops). allowed may refuse before anything
// changes. Lock order: the redemption, then its limit rows, then its case.
func (s *Service) reverse(ctx context.Context, redemptionID, by string, allowed func(Redemption) error) (Redemption, error) {
	var (
		out     Redemption
		refusal error
		fx      effects
	)
	err := s.st.Update(ctx, func(tx Tx) error {
		out, refusal, fx = Redemption{}, nil, effects{}
		r, err := tx.Redemption(redemptionID)
		if errors.Is(err, ErrNotFound) {
			refusal = tillkeep.Errorf(tillkeep.CodeNotFound, "redemption %s is not known to the platform", redemptionID)
			return nil
		}
		if err != nil {
			return err
		}
		if allowed != nil {
			if refusal = allowed(r); refusal != nil {
				return nil
			}
		}
		l := s.newLedger(tx)
		if err := l.lockRows([]string{r.OfferID}, []string{r.Code}, [][2]string{{r.CustomerID, r.OfferID}}); err != nil {
			return err
		}
		if _, err := l.reverse(&r, by); err != nil {
			return err
		}
		if err := l.flush(); err != nil {
			return err
		}
		out, fx = r, l.fx
		return nil
	})
	if err != nil {
		return Redemption{}, storageErr(err, "reverse redemption")
	}
	if refusal != nil {
		return Redemption{}, refusal
	}
	s.report(fx)
	return out, nil
}
