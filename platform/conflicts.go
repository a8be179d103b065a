package platform

import (
	"context"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/tillkeep/tillkeep"
)

// Resolution actions.
const (
	// ResolveAcceptLoss closes the case and changes nothing else: the discounts were
	// given and the business carries them.
	ResolveAcceptLoss = "accept_loss"
	// ResolveReverse reverses the case's redemptions that are in conflict (winners of
	// a double redemption stay), releasing the limits they used.
	ResolveReverse = "reverse"
	// ResolveReinstate gives the coupon back: a revoked coupon becomes active again (or
	// redeemed, when it is used up).
	ResolveReinstate = "reinstate"
)

const maxNoteLen = 2000

// ResolveRequest is the body of a resolution.
type ResolveRequest struct {
	Action string `json:"action"`
	Note   string `json:"note"`
}

// ConflictDetail is a case with its redemptions.
type ConflictDetail struct {
	Conflict
	Redemptions []Redemption `json:"redemptions"`
}

// ListConflicts lists cases by creation, optionally only those with status, from after
// (an id; "" for the start). next is the cursor of the following page, "" at the end.
func (s *Service) ListConflicts(ctx context.Context, status, after string, limit int) (cases []Conflict, next string, err error) {
	switch status {
	case "", ConflictOpen, ConflictResolved:
	default:
		return nil, "", tillkeep.Errorf(tillkeep.CodeInvalidRequest, "status must be %q or %q, not %q", ConflictOpen, ConflictResolved, status)
	}
	err = s.st.View(ctx, func(tx ReadTx) error {
		cases, err = tx.Conflicts(status, after, limit+1)
		return err
	})
	if err != nil {
		return nil, "", storageErr(err, "list conflicts")
	}
	if limit > 0 && len(cases) > limit {
		cases = cases[:limit]
		next = cases[limit-1].ID
	}
	return cases, next, nil
}

// GetConflict returns a case with its redemptions.
func (s *Service) GetConflict(ctx context.Context, id string) (ConflictDetail, error) {
	var d ConflictDetail
	err := s.st.View(ctx, func(tx ReadTx) error {
		cf, err := tx.Conflict(id)
		if err != nil {
			return notFound(err, "conflict %s is not known", id)
		}
		d = ConflictDetail{Conflict: cf, Redemptions: []Redemption{}}
		for _, rid := range cf.RedemptionIDs {
			r, err := tx.Redemption(rid)
			if err != nil {
				return fmt.Errorf("redemption %s of case %s: %w", rid, id, err)
			}
			d.Redemptions = append(d.Redemptions, r)
		}
		return nil
	})
	return d, storageErr(err, "read conflict")
}

// ResolveConflict closes an open case with an action, recording who (principal), what
// and when in its audit trail, in one transaction with the action's effects.
func (s *Service) ResolveConflict(ctx context.Context, id, principal string, req ResolveRequest) (Conflict, error) {
	switch req.Action {
	case ResolveAcceptLoss, ResolveReverse, ResolveReinstate:
	default:
		return Conflict{}, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "action must be %q, %q or %q, not %q",
			ResolveAcceptLoss, ResolveReverse, ResolveReinstate, req.Action)
	}
	if !utf8.ValidString(req.Note) || utf8.RuneCountInString(req.Note) > maxNoteLen {
		return Conflict{}, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "note must be UTF-8 text of at most %d characters", maxNoteLen)
	}
	// The members tell which rows to lock; read them first, outside the write.
	var plan Conflict
	err := s.st.View(ctx, func(tx ReadTx) error {
		var err error
		plan, err = tx.Conflict(id)
		return notFound(err, "conflict %s is not known", id)
	})
	if err != nil {
		return Conflict{}, storageErr(err, "read conflict")
	}

	var (
		out     Conflict
		refusal error
		fx      effects
	)
	err = s.st.Update(ctx, func(tx Tx) error {
		out, refusal, fx = Conflict{}, nil, effects{}
		l := s.newLedger(tx)
		// Lock order: redemptions, offer usage, coupon, customer usage, the case.
		members := map[string]*Redemption{}
		var offerIDs []string
		var customers [][2]string
		for _, rid := range plan.RedemptionIDs {
			r, err := tx.Redemption(rid)
			if err != nil {
				return fmt.Errorf("redemption %s of case %s: %w", rid, id, err)
			}
			members[rid] = &r
			if r.OfferID != "" {
				offerIDs = append(offerIDs, r.OfferID)
				customers = append(customers, [2]string{r.CustomerID, r.OfferID})
			}
		}
		if plan.OfferID != "" {
			offerIDs = append(offerIDs, plan.OfferID)
		}
		if err := l.lockRows(offerIDs, []string{plan.Code}, customers); err != nil {
			return err
		}
		cf, err := tx.Conflict(id)
		if err != nil {
			return err
		}
		if cf.Status != ConflictOpen {
			refusal = tillkeep.Errorf(tillkeep.CodeConflict, "conflict %s was already resolved (%s)", id, cf.Resolution)
			return nil
		}
		note := req.Note
		switch req.Action {
		case ResolveReverse:
			reversed := 0
			for _, rid := range cf.RedemptionIDs {
				r := members[rid]
				if r == nil { // joined after the plan was read
					fresh, err := tx.Redemption(rid)
					if err != nil {
						return err
					}
					r = &fresh
				}
				if r.Status != tillkeep.RedemptionConflict {
					continue
				}
				done, err := l.reverse(r, principal)
				if err != nil {
					return err
				}
				if done {
					reversed++
				}
			}
			// reverse may have re-ranked and updated the case; start from the stored one.
			if cf, err = tx.Conflict(id); err != nil {
				return err
			}
			note = joinNote(note, fmt.Sprintf("%d redemption(s) reversed", reversed))
		case ResolveReinstate:
			c, err := l.coupon(cf.Code)
			if err != nil {
				return err
			}
			if c == nil {
				refusal = tillkeep.Errorf(tillkeep.CodeInvalidRequest, "the code %s of conflict %s is not a coupon of the platform, so there is nothing to reinstate", cf.Code, id)
				return nil
			}
			o, err := l.offer(c.c.OfferID)
			if err != nil {
				return err
			}
			if c.c.Status == tillkeep.CouponRevoked {
				c.c.Status = tillkeep.CouponActive
				if o != nil && c.c.Redemptions >= maxPerCoupon(*o) {
					c.c.Status = tillkeep.CouponRedeemed
				}
				c.c.RevokedAt = time.Time{}
				c.dirty = true
				if err := l.change(Change{Entity: EntityCoupon, Key: c.c.Code, Event: EventReinstated, OfferID: c.c.OfferID}); err != nil {
					return err
				}
				note = joinNote(note, "coupon reinstated as "+c.c.Status)
			} else {
				note = joinNote(note, "coupon was not revoked ("+c.c.Status+")")
			}
		}
		cf.Status = ConflictResolved
		cf.Resolution = req.Action
		cf.ResolvedAt = l.now
		cf.UpdatedAt = l.now
		cf.Audit = append(cf.Audit, AuditEntry{At: l.now, Actor: principal, Action: req.Action, Note: note})
		if err := tx.UpdateConflict(cf); err != nil {
			return err
		}
		if err := l.flush(); err != nil {
			return err
		}
		out, fx = cf, l.fx
		return nil
	})
	if err != nil {
		return Conflict{}, storageErr(err, "resolve conflict")
	}
	if refusal != nil {
		return Conflict{}, refusal
	}
	s.report(fx)
	s.log.Info("conflict resolved", "id", id, "kind", out.Kind, "code", out.Code, "action", req.Action, "by", principal)
	return out, nil
}

func joinNote(note, what string) string {
	if note == "" {
		return what
	}
	return note + " — " + what
}

// ListAnomalies lists recorded anomalies by time.
func (s *Service) ListAnomalies(ctx context.Context, after string, limit int) (out []Anomaly, next string, err error) {
	err = s.st.View(ctx, func(tx ReadTx) error {
		out, err = tx.Anomalies(after, limit+1)
		return err
	})
	if err != nil {
		return nil, "", storageErr(err, "list anomalies")
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

// ListRedemptions lists redemptions matching f by event time.
func (s *Service) ListRedemptions(ctx context.Context, f RedemptionFilter, cursor string, limit int) (out []Redemption, next string, err error) {
	if f.Mode != "" && f.Mode != tillkeep.ModeOnline && f.Mode != tillkeep.ModeOffline {
		return nil, "", tillkeep.Errorf(tillkeep.CodeInvalidRequest, "mode must be %q or %q", tillkeep.ModeOnline, tillkeep.ModeOffline)
	}
	if f.Status != "" && !slices.Contains([]string{tillkeep.RedemptionAccepted, tillkeep.RedemptionReversed, tillkeep.RedemptionConflict}, f.Status) {
		return nil, "", tillkeep.Errorf(tillkeep.CodeInvalidRequest, "status must be accepted, reversed or conflict")
	}
	err = s.st.View(ctx, func(tx ReadTx) error {
		out, next, err = tx.Redemptions(f, cursor, limit)
		return err
	})
	if err != nil {
		return nil, "", storageErr(err, "list redemptions")
	}
	return out, next, nil
}

// GetRedemption returns one redemption.
func (s *Service) GetRedemption(ctx context.Context, id string) (Redemption, error) {
	var r Redemption
	err := s.st.View(ctx, func(tx ReadTx) error {
		var err error
		r, err = tx.Redemption(id)
		return notFound(err, "redemption %s is not known", id)
	})
	return r, storageErr(err, "read redemption")
}
