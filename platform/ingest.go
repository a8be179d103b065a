package platform

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// MaxJournalEntries bounds one upload batch (the body limit bounds its bytes).
const MaxJournalEntries = 20_000

// JournalUpload is one batch of a till's journal. Its Epoch is the platform epoch the
// till last saw ("" before its first upload). It is informational: acknowledgement is by
// sequence, and the answer carries the current epoch so the till can notice a different
// database.
type JournalUpload = wire.PushRequest

// JournalAck answers an upload, after its commit. ResumeFrom is set when the batch had
// a gap: the till must send again from this sequence (acked_seq + 1); entries after the
// gap were not applied.
type JournalAck = wire.PushResponse

// EntryResult is the platform's verdict on one applied (or already applied) entry.
type EntryResult = wire.EntryResult

// EntryIgnored is the result status of a reversal the platform could not apply.
const EntryIgnored = wire.EntryIgnored

// JournalPosition is a till's acknowledged point, with the platform's clock.
type JournalPosition = wire.AckState

// JournalPosition returns the till's acknowledged sequence, the epoch and the
// platform's clock (the till seeds its hybrid logical clock from it).
func (s *Service) JournalPosition(ctx context.Context, till TillRef) (JournalPosition, error) {
	var pos JournalPosition
	err := s.st.View(ctx, func(tx ReadTx) error {
		t, err := tx.Till(till.StoreID, till.TillID)
		if err != nil {
			return notFound(err, "till %s/%s is not enrolled", till.StoreID, till.TillID)
		}
		pos = JournalPosition{Epoch: s.st.Epoch(), AckedSeq: t.AckedSeq, ServerTime: s.now()}
		return nil
	})
	return pos, storageErr(err, "read journal position")
}

func checkEntry(e tillkeep.JournalEntry) error {
	if e.Seq == 0 {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "journal entry with redemption %q has seq 0; sequences start at 1", e.RedemptionID)
	}
	if err := checkID("redemption_id", e.RedemptionID); err != nil {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "journal entry %d: %s", e.Seq, tillkeep.ErrorMessage(err))
	}
	switch e.Kind {
	case tillkeep.EntryRedemption:
		if err := checkCode(e.Code); err != nil {
			return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "journal entry %d: %s", e.Seq, tillkeep.ErrorMessage(err))
		}
		if e.CustomerID != "" {
			if err := checkID("customer_id", e.CustomerID); err != nil {
				return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "journal entry %d: %s", e.Seq, tillkeep.ErrorMessage(err))
			}
		}
		if e.TransactionID != "" {
			if err := checkID("transaction_id", e.TransactionID); err != nil {
				return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "journal entry %d: %s", e.Seq, tillkeep.ErrorMessage(err))
			}
		}
	case tillkeep.EntryReversal:
	default:
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "journal entry %d has kind %q; want %q or %q", e.Seq, e.Kind, tillkeep.EntryRedemption, tillkeep.EntryReversal)
	}
	return nil
}

// Ingest applies one journal upload of a till in one transaction and answers after
// the commit.
//
//   - Entries at or below the till's acknowledged sequence are duplicates: they are
//     answered from the ledger and not applied again (redemption ids are also unique
//     forever, so a redemption already recorded online is acknowledged, not redone).
//   - The next contiguous entries are applied; a gap stops the batch, and ResumeFrom
//     names the sequence to send next.
//   - Every redemption entry is recorded: the customer got the discount. The rule
//     engine judges it at its event time (the HLC's physical time, never later than
//     receipt); when it broke a rule, it is recorded as a conflict and attached to the
//     one open case of its (code, kind), and its limit use is still counted.
//   - A business conflict never fails the upload.
//
// Entries of another till refuse the whole upload with forbidden (and an anomaly).
func (s *Service) Ingest(ctx context.Context, till TillRef, up JournalUpload) (JournalAck, error) {
	if len(up.Entries) > MaxJournalEntries {
		return JournalAck{}, tillkeep.Errorf(tillkeep.CodeBodyTooLarge, "an upload holds at most %d entries, not %d", MaxJournalEntries, len(up.Entries))
	}
	entries := slices.Clone(up.Entries)
	slices.SortStableFunc(entries, func(a, b tillkeep.JournalEntry) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	for _, e := range entries {
		if e.StoreID != till.StoreID || e.TillID != till.TillID {
			detail := fmt.Sprintf("till %s/%s uploaded entry %d (redemption %s) as till %s/%s", till.StoreID, till.TillID, e.Seq, e.RedemptionID, e.StoreID, e.TillID)
			s.log.Warn("refused a journal upload with entries of another till", "store", till.StoreID, "till", till.TillID,
				"entry_store", e.StoreID, "entry_till", e.TillID, "seq", e.Seq)
			s.recordAnomaly(ctx, AnomalyTillImpersonation, till, e.RedemptionID, detail)
			return JournalAck{}, tillkeep.Errorf(tillkeep.CodeForbidden, "entry %d belongs to till %s/%s; a till may upload only its own journal", e.Seq, e.StoreID, e.TillID)
		}
		if err := checkEntry(e); err != nil {
			return JournalAck{}, err
		}
	}
	if up.Epoch != "" && up.Epoch != s.st.Epoch() {
		s.log.Info("journal upload from a till that knew another platform epoch", "store", till.StoreID, "till", till.TillID,
			"till_epoch", up.Epoch, "epoch", s.st.Epoch())
	}

	// Learn the offer of every code and the target of every reversal outside the write
	// transaction (neither changes), so the transaction can lock its rows in order.
	plan, err := s.planIngest(ctx, entries)
	if err != nil {
		return JournalAck{}, storageErr(err, "prepare journal upload")
	}

	var (
		ack   JournalAck
		fx    effects
		stats ingestStats
	)
	err = s.st.Update(ctx, func(tx Tx) error {
		ack, fx, stats = JournalAck{}, effects{}, ingestStats{}
		t, err := tx.Till(till.StoreID, till.TillID)
		if err != nil {
			return notFound(err, "till %s/%s is not enrolled", till.StoreID, till.TillID)
		}
		l := s.newLedger(tx)
		// Lock order: till (above), reversal targets, offer usage, coupons, customer usage.
		targets := map[string]*Redemption{}
		for _, id := range plan.reversalTargets {
			r, err := tx.Redemption(id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			targets[id] = &r
		}
		if err := l.lockRows(plan.offerIDs, plan.codes, plan.customers); err != nil {
			return err
		}

		acked := t.AckedSeq
		ack.Results = make([]EntryResult, 0, len(entries))
		for i, e := range entries {
			if e.Seq <= acked {
				res, err := duplicateResult(tx, e)
				if err != nil {
					return err
				}
				ack.Results = append(ack.Results, res)
				stats.duplicates++
				continue
			}
			if e.Seq != acked+1 {
				ack.ResumeFrom = acked + 1
				stats.afterGap = len(entries) - i
				break
			}
			var res EntryResult
			switch e.Kind {
			case tillkeep.EntryRedemption:
				res, err = l.applyRedemption(e, &stats)
			case tillkeep.EntryReversal:
				res, err = l.applyReversal(e, till, targets)
			}
			if err != nil {
				return fmt.Errorf("apply journal entry %d of till %s/%s: %w", e.Seq, till.StoreID, till.TillID, err)
			}
			ack.Results = append(ack.Results, res)
			acked = e.Seq
			stats.applied++
		}
		if err := l.flush(); err != nil {
			return err
		}
		t.AckedSeq = acked
		t.LastSeenAt = l.now
		if err := tx.PutTill(t); err != nil {
			return err
		}
		ack.Epoch, ack.AckedSeq, ack.ServerTime = s.st.Epoch(), acked, l.now
		fx = l.fx
		return nil
	})
	if err != nil {
		return JournalAck{}, storageErr(err, "apply journal upload")
	}
	s.report(fx)
	s.m.journal("applied", stats.applied)
	s.m.journal("duplicate", stats.duplicates)
	s.m.journal("after_gap", stats.afterGap)
	if fx.skewed > 0 {
		s.log.Warn("till clock is off: redemptions flagged clock_skew", "store", till.StoreID, "till", till.TillID,
			"count", fx.skewed, "max_skew", s.cfg.MaxClockSkew, "worst_skew", stats.worstSkew)
	}
	if ack.ResumeFrom != 0 {
		s.log.Info("journal upload has a gap; asked the till to resend", "store", till.StoreID, "till", till.TillID,
			"acked_seq", ack.AckedSeq, "resume_from", ack.ResumeFrom)
	}
	if len(fx.joined) > 0 {
		s.log.Warn("journal upload flagged conflicts", "store", till.StoreID, "till", till.TillID,
			"conflicts", len(fx.joined), "new_cases", len(fx.opened))
	}
	return ack, nil
}

type ingestStats struct {
	applied, duplicates, afterGap int
	worstSkew                     time.Duration
}

// ingestPlan lists the rows an upload may lock, learned in a read transaction.
type ingestPlan struct {
	offerIDs        []string
	codes           []string
	customers       [][2]string
	reversalTargets []string
}

func (s *Service) planIngest(ctx context.Context, entries []tillkeep.JournalEntry) (ingestPlan, error) {
	var p ingestPlan
	err := s.st.View(ctx, func(tx ReadTx) error {
		p = ingestPlan{}
		offers := map[string]string{}
		for _, e := range entries {
			code, customer := e.Code, e.CustomerID
			if e.Kind == tillkeep.EntryReversal {
				p.reversalTargets = append(p.reversalTargets, e.RedemptionID)
				r, err := tx.Redemption(e.RedemptionID)
				if errors.Is(err, ErrNotFound) {
					continue // its redemption may come earlier in this batch
				}
				if err != nil {
					return err
				}
				code, customer = r.Code, r.CustomerID
			}
			offerID, seen := offers[code]
			if !seen {
				c, err := tx.Coupon(code)
				switch {
				case err == nil:
					offerID = c.OfferID
				case !errors.Is(err, ErrNotFound):
					return err
				}
				offers[code] = offerID
			}
			p.codes = append(p.codes, code)
			if offerID != "" {
				p.offerIDs = append(p.offerIDs, offerID)
				if customer != "" {
					p.customers = append(p.customers, [2]string{customer, offerID})
				}
			}
		}
		return nil
	})
	return p, err
}

// duplicateResult answers an entry at or below the acknowledged point from the ledger.
func duplicateResult(tx ReadTx, e tillkeep.JournalEntry) (EntryResult, error) {
	res := EntryResult{Seq: e.Seq, RedemptionID: e.RedemptionID, Duplicate: true, Status: EntryIgnored}
	r, err := tx.Redemption(e.RedemptionID)
	switch {
	case errors.Is(err, ErrNotFound):
		return res, nil
	case err != nil:
		return res, err
	}
	res.Status, res.ConflictKind, res.ConflictID = r.Status, r.ConflictKind, r.ConflictID
	return res, nil
}

// eventTime is when the platform judges an uploaded redemption to have happened: the
// HLC's physical time (seeded from the platform's clock at each sync, so it is not the
// till's raw clock), else the till's wall time, never later than the receipt. It also
// returns the till wall clock's skew against that time, and whether it exceeds max.
func eventTime(e tillkeep.JournalEntry, received time.Time, maxSkew time.Duration) (at time.Time, skew time.Duration, flagged bool) {
	switch {
	case e.HLC.WallMS > 0:
		at = time.UnixMilli(e.HLC.WallMS).UTC()
	case !e.WallTime.IsZero():
		at = e.WallTime.UTC()
	default:
		at = received
	}
	// A stamp from the future is a till clock running ahead.
	if ahead := at.Sub(received); ahead > maxSkew {
		flagged = true
		skew = ahead
	}
	if at.After(received) {
		at = received
	}
	if !e.WallTime.IsZero() {
		d := e.WallTime.Sub(at)
		if d.Abs() > maxSkew {
			flagged = true
		}
		if d.Abs() > skew.Abs() {
			skew = d
		}
	}
	return at, skew, flagged
}

// applyRedemption records one uploaded redemption and reconciles it.
func (l *ledger) applyRedemption(e tillkeep.JournalEntry, stats *ingestStats) (EntryResult, error) {
	res := EntryResult{Seq: e.Seq, RedemptionID: e.RedemptionID}
	hash := requestHash(e.StoreID, e.TillID, e.TransactionID, e.Code, e.CustomerID, e.Bill)

	if prior, err := l.tx.Redemption(e.RedemptionID); err == nil {
		// Recorded before: an online redemption the till journaled, or the same entry
		// under a new sequence after a till restore. Acknowledge, never apply twice.
		if prior.StoreID != e.StoreID || prior.TillID != e.TillID || prior.RequestHash != hash {
			l.fx.anomalies = append(l.fx.anomalies, AnomalyJournal)
			if err := l.anomaly(AnomalyJournal, TillRef{e.StoreID, e.TillID}, e.RedemptionID,
				fmt.Sprintf("journal entry %d reuses redemption id %s of another redemption (code %s)", e.Seq, e.RedemptionID, prior.Code)); err != nil {
				return res, err
			}
		} else if prior.Seq == 0 {
			prior.Seq = e.Seq
			if err := l.tx.UpdateRedemption(prior); err != nil {
				return res, err
			}
		}
		res.Status, res.ConflictKind, res.ConflictID, res.Duplicate = prior.Status, prior.ConflictKind, prior.ConflictID, true
		return res, nil
	} else if !errors.Is(err, ErrNotFound) {
		return res, err
	}

	// The same POS transaction under a new redemption id: the platform accepted it
	// online, the till died before journaling the answer, and the POS's retry was
	// decided offline under a fresh id. Same till, transaction, code, bill and customer
	// (the request hash) is the same redemption, never a second one — the till's
	// idempotency index guarantees a transaction is redeemed at most once.
	if prior, err := l.tx.RedemptionByTransaction(e.StoreID, e.TillID, e.TransactionID); err == nil && prior.RequestHash == hash {
		l.fx.anomalies = append(l.fx.anomalies, AnomalyJournal)
		if err := l.anomaly(AnomalyJournal, TillRef{e.StoreID, e.TillID}, e.RedemptionID,
			fmt.Sprintf("journal entry %d records transaction %s, already held as redemption %s, under the new id %s: taken as the same redemption",
				e.Seq, e.TransactionID, prior.ID, e.RedemptionID)); err != nil {
			return res, err
		}
		res.Status, res.ConflictKind, res.ConflictID, res.Duplicate = prior.Status, prior.ConflictKind, prior.ConflictID, true
		return res, nil
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return res, err
	}

	at, skew, skewed := eventTime(e, l.now, l.s.cfg.MaxClockSkew)
	mode := e.Mode
	if mode != tillkeep.ModeOnline {
		mode = tillkeep.ModeOffline
	}
	r := Redemption{
		ID: e.RedemptionID, Code: e.Code, OfferID: e.OfferID, StoreID: e.StoreID, TillID: e.TillID,
		TransactionID: e.TransactionID, CustomerID: e.CustomerID, Bill: e.Bill, Discount: e.Discount,
		Mode: mode, Status: tillkeep.RedemptionAccepted,
		At: e.WallTime.UTC(), EventAt: at, ReceivedAt: l.now, HLC: e.HLC, Seq: e.Seq,
		RequestHash: hash, LastStatusChangeOn: l.now, SkewMS: skew.Milliseconds(),
	}
	if r.At.IsZero() {
		r.At = at
	}
	if skewed {
		r.Flags = append(r.Flags, FlagClockSkew)
		l.fx.skewed++
		if skew.Abs() > stats.worstSkew.Abs() {
			stats.worstSkew = skew
		}
	}

	c, err := l.coupon(e.Code)
	if err != nil {
		return res, err
	}
	var kind, rule string
	var o *tillkeep.Offer
	if c == nil {
		kind = KindUnknownCoupon
	} else {
		r.OfferID = c.c.OfferID // the platform's record is the authority
		if o, err = l.offer(c.c.OfferID); err != nil {
			return res, err
		}
		if o == nil {
			return res, fmt.Errorf("coupon %s names offer %s, which does not exist", e.Code, c.c.OfferID)
		}
		ou, err := l.offerUsageRow(o.ID)
		if err != nil {
			return res, err
		}
		var cu *custUsageRow
		if e.CustomerID != "" {
			if cu, err = l.customerUsageRow(e.CustomerID, o.ID); err != nil {
				return res, err
			}
		}
		st, err := l.store(e.StoreID)
		if err != nil {
			return res, err
		}
		var profile *tillkeep.Customer
		if e.CustomerID != "" {
			p, err := l.tx.Customer(e.CustomerID)
			switch {
			case err == nil:
				profile = &p
			case !errors.Is(err, ErrNotFound):
				return res, err
			}
		}
		// Judge the coupon as it was at the event: a revocation that came later (for
		// instance an auto-revocation caused by this very double use) does not make the
		// redemption "after revocation".
		asOf := c.c
		if asOf.Status == tillkeep.CouponRevoked && asOf.RevokedAt.After(at) {
			asOf.Status = tillkeep.CouponActive
		}
		d := tillkeep.Evaluate(tillkeep.Attempt{
			Offer: o, Coupon: &asOf, Store: st, TillID: e.TillID,
			CustomerID: e.CustomerID, Customer: profile, Bill: e.Bill, At: at,
			Location: l.s.storeLocation(st), Usage: usageOf(&asOf, ou, cu),
			Offline: mode == tillkeep.ModeOffline,
		})
		switch {
		case d.Err != nil:
			kind, rule = conflictKind(d.Err)
		case e.Discount.Amount > d.Discount.Amount ||
			e.Discount.Amount > 0 && !strings.EqualFold(e.Discount.Currency, d.Discount.Currency):
			// The till gave more than the offer grants (or in another currency).
			kind, rule = KindRuleViolation, "discount"
		}
		// The discount was given: every limit counts it, conflict or not.
		l.consume(c, o, ou, cu, at)
		r.Consumed = true
		if err := l.change(Change{Entity: EntityCoupon, Key: e.Code, Event: EventRedeemed, OfferID: o.ID}); err != nil {
			return res, err
		}
	}
	if kind != "" {
		r.Status = tillkeep.RedemptionConflict
	}
	if err := l.tx.InsertRedemption(r); err != nil {
		return res, err
	}
	if kind != "" {
		if err := l.flag(&r, kind, rule, c, o); err != nil {
			return res, err
		}
	}
	l.fx.recorded = append(l.fx.recorded, [2]string{r.Mode, r.Status})
	res.Status, res.ConflictKind, res.ConflictID = r.Status, r.ConflictKind, r.ConflictID
	return res, nil
}

// applyReversal applies an uploaded reversal of one of the till's redemptions.
func (l *ledger) applyReversal(e tillkeep.JournalEntry, till TillRef, targets map[string]*Redemption) (EntryResult, error) {
	res := EntryResult{Seq: e.Seq, RedemptionID: e.RedemptionID}
	r, err := l.tx.Redemption(e.RedemptionID) // it may have been recorded earlier in this batch
	if errors.Is(err, ErrNotFound) {
		// A reversal of a redemption the platform holds under the id of an earlier
		// attempt of the same POS transaction (see applyRedemption).
		if prior, perr := l.tx.RedemptionByTransaction(till.StoreID, till.TillID, e.TransactionID); perr == nil && prior.Code == e.Code {
			r, err = prior, nil
		} else if perr != nil && !errors.Is(perr, ErrNotFound) {
			return res, perr
		}
	}
	if errors.Is(err, ErrNotFound) {
		res.Status = EntryIgnored
		l.fx.anomalies = append(l.fx.anomalies, AnomalyJournal)
		return res, l.anomaly(AnomalyJournal, till, e.RedemptionID,
			fmt.Sprintf("journal entry %d reverses redemption %s, which the platform does not hold", e.Seq, e.RedemptionID))
	}
	if err != nil {
		return res, err
	}
	_ = targets // read earlier only to take its lock in order
	if r.StoreID != till.StoreID || r.TillID != till.TillID {
		res.Status = EntryIgnored
		l.fx.anomalies = append(l.fx.anomalies, AnomalyJournal)
		return res, l.anomaly(AnomalyJournal, till, e.RedemptionID,
			fmt.Sprintf("journal entry %d reverses redemption %s of till %s/%s", e.Seq, e.RedemptionID, r.StoreID, r.TillID))
	}
	if _, err := l.reverse(&r, "journal"); err != nil {
		return res, err
	}
	res.Status, res.ConflictKind, res.ConflictID = r.Status, r.ConflictKind, r.ConflictID
	return res, nil
}
