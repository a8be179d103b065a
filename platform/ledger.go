package platform

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tillkeep/tillkeep"
)

// ledger is the working set of one Update: the limit rows it has read (and locked, in
// the PostgreSQL backend), changed in memory and written back once by flush. Every
// operation that touches coupons and usage goes through it, so that online
// redemption, journal ingest, reversal and conflict resolution share one
// implementation of "consume", "release" and "flag", and a batch of thousands of
// journal entries reads and writes each row once.
//
// A ledger lives for one run of an Update function: it is made fresh on every run
// (Update may re-run fn), and what happened is reported through its effects after the
// commit.
type ledger struct {
	s   *Service
	tx  Tx
	now time.Time

	coupons    map[string]*couponRow
	offerUsage map[string]*offerUsageRow
	custUsage  map[[2]string]*custUsageRow
	offers     map[string]*tillkeep.Offer // nil value: not found
	stores     map[string]*tillkeep.Store // nil value: not found

	fx effects
}

type couponRow struct {
	c     tillkeep.Coupon
	dirty bool
}

type offerUsageRow struct {
	u     OfferUsage
	dirty bool
}

type custUsageRow struct {
	u     CustomerUsage
	dirty bool
}

// effects are what a committed Update did, for metrics and logs afterwards.
type effects struct {
	opened      []string // conflict kinds of new cases
	joined      []string // conflict kinds of redemptions attached to a case
	autoRevoked []string // codes
	skewed      int
	anomalies   []string
	recorded    [][2]string // mode, status
}

func (s *Service) newLedger(tx Tx) *ledger {
	return &ledger{
		s: s, tx: tx, now: s.now(),
		coupons:    map[string]*couponRow{},
		offerUsage: map[string]*offerUsageRow{},
		custUsage:  map[[2]string]*custUsageRow{},
		offers:     map[string]*tillkeep.Offer{},
		stores:     map[string]*tillkeep.Store{},
	}
}

// report emits the effects of a committed ledger.
func (s *Service) report(fx effects) {
	for _, k := range fx.opened {
		s.m.conflictOpened(k)
	}
	for _, k := range fx.joined {
		s.m.conflictJoined(k)
	}
	for _, r := range fx.recorded {
		s.m.redemption(r[0], r[1])
	}
	for _, a := range fx.anomalies {
		s.m.anomaly(a)
	}
	s.m.autoRevoked(len(fx.autoRevoked))
	s.m.clockSkew(fx.skewed)
	for _, code := range fx.autoRevoked {
		s.log.Warn("coupon revoked automatically after a conflict", "code", code)
	}
}

// lockRows reads the given limit rows in the storage's lock order: offer usage, then
// coupons, then customer usage, each sorted. Rows read later through the getters are
// then already held.
func (l *ledger) lockRows(offerIDs, codes []string, customers [][2]string) error {
	offerIDs = slices.Clone(offerIDs)
	slices.Sort(offerIDs)
	for _, id := range slices.Compact(offerIDs) {
		if id != "" {
			if _, err := l.offerUsageRow(id); err != nil {
				return err
			}
		}
	}
	codes = slices.Clone(codes)
	slices.Sort(codes)
	for _, code := range slices.Compact(codes) {
		if _, err := l.coupon(code); err != nil {
			return err
		}
	}
	customers = slices.Clone(customers)
	slices.SortFunc(customers, func(a, b [2]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
	for _, cu := range slices.Compact(customers) {
		if cu[0] != "" && cu[1] != "" {
			if _, err := l.customerUsageRow(cu[0], cu[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

// coupon returns the working copy of a coupon, or nil when the code is unknown.
func (l *ledger) coupon(code string) (*couponRow, error) {
	if row, ok := l.coupons[code]; ok {
		return row, nil
	}
	c, err := l.tx.Coupon(code)
	if errors.Is(err, ErrNotFound) {
		l.coupons[code] = nil
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	row := &couponRow{c: c}
	l.coupons[code] = row
	return row, nil
}

func (l *ledger) offerUsageRow(offerID string) (*offerUsageRow, error) {
	if row, ok := l.offerUsage[offerID]; ok {
		return row, nil
	}
	u, err := l.tx.OfferUsage(offerID)
	if err != nil {
		return nil, err
	}
	row := &offerUsageRow{u: u}
	l.offerUsage[offerID] = row
	return row, nil
}

func (l *ledger) customerUsageRow(customerID, offerID string) (*custUsageRow, error) {
	k := [2]string{customerID, offerID}
	if row, ok := l.custUsage[k]; ok {
		return row, nil
	}
	u, err := l.tx.CustomerUsage(customerID, offerID)
	if err != nil {
		return nil, err
	}
	row := &custUsageRow{u: u}
	l.custUsage[k] = row
	return row, nil
}

// offer returns the offer, or nil when unknown.
func (l *ledger) offer(id string) (*tillkeep.Offer, error) {
	if o, ok := l.offers[id]; ok {
		return o, nil
	}
	o, err := l.tx.Offer(id)
	if errors.Is(err, ErrNotFound) {
		l.offers[id] = nil
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	l.offers[id] = &o
	return &o, nil
}

// store returns the store, or nil when unknown.
func (l *ledger) store(id string) (*tillkeep.Store, error) {
	if st, ok := l.stores[id]; ok {
		return st, nil
	}
	st, err := l.tx.Store(id)
	if errors.Is(err, ErrNotFound) {
		l.stores[id] = nil
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	l.stores[id] = &st
	return &st, nil
}

// flush writes every changed row, in lock order.
func (l *ledger) flush() error {
	for _, id := range sortedKeys(l.offerUsage) {
		if row := l.offerUsage[id]; row.dirty {
			if err := l.tx.PutOfferUsage(row.u); err != nil {
				return err
			}
		}
	}
	for _, code := range sortedKeys(l.coupons) {
		if row := l.coupons[code]; row != nil && row.dirty {
			if err := l.tx.UpdateCoupon(row.c); err != nil {
				return err
			}
		}
	}
	keys := make([][2]string, 0, len(l.custUsage))
	for k := range l.custUsage {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	for _, k := range keys {
		if row := l.custUsage[k]; row.dirty {
			if err := l.tx.PutCustomerUsage(row.u); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// change appends a change-log entry.
func (l *ledger) change(c Change) error {
	c.At = l.now
	if _, err := l.tx.AppendChange(c); err != nil {
		return err
	}
	return nil
}

// usageOf gathers the rule engine's view of prior use.
func usageOf(c *tillkeep.Coupon, ou *offerUsageRow, cu *custUsageRow) tillkeep.Usage {
	u := tillkeep.Usage{CouponRedemptions: c.Redemptions, OfferRedemptions: ou.u.Redemptions}
	if cu != nil {
		u.CustomerRedemptions = cu.u.Redemptions
		u.CustomerLastRedemption = cu.u.LastRedeemedAt
	}
	return u
}

// consume counts one redemption at every scope it limits: the coupon (and its status
// once used up), the customer's use of the offer, and the offer's.
func (l *ledger) consume(c *couponRow, o *tillkeep.Offer, ou *offerUsageRow, cu *custUsageRow, at time.Time) {
	c.c.Redemptions++
	if c.c.Status == tillkeep.CouponActive && c.c.Redemptions >= maxPerCoupon(*o) {
		c.c.Status = tillkeep.CouponRedeemed
	}
	c.dirty = true
	ou.u.Redemptions++
	ou.dirty = true
	if cu != nil {
		cu.u.Redemptions++
		if at.After(cu.u.LastRedeemedAt) {
			cu.u.LastRedeemedAt = at
		}
		cu.dirty = true
	}
}

// release undoes consume: the coupon becomes active again when it drops below its limit,
// unless it was revoked. The customer's last redemption time stays: the gap rule keeps
// counting from it, which errs on the side of the limit.
func (l *ledger) release(c *couponRow, o *tillkeep.Offer, ou *offerUsageRow, cu *custUsageRow) {
	if c != nil {
		c.c.Redemptions = max(c.c.Redemptions-1, 0)
		if c.c.Status == tillkeep.CouponRedeemed && c.c.Redemptions < maxPerCoupon(*o) {
			c.c.Status = tillkeep.CouponActive
		}
		c.dirty = true
	}
	if ou != nil {
		ou.u.Redemptions = max(ou.u.Redemptions-1, 0)
		ou.dirty = true
	}
	if cu != nil {
		cu.u.Redemptions = max(cu.u.Redemptions-1, 0)
		cu.dirty = true
	}
}

// reverse reverses a recorded redemption: its limit use is released and it is marked
// reversed. The caller has checked who may do it. Reversing a reversed redemption
// changes nothing and reports false.
func (l *ledger) reverse(r *Redemption, by string) (bool, error) {
	if r.IsReversed {
		return false, nil
	}
	prevStatus := r.Status
	if r.Consumed {
		var (
			ou *offerUsageRow
			c  *couponRow
			cu *custUsageRow
		)
		o, err := l.offer(r.OfferID)
		if err != nil {
			return false, err
		}
		if o == nil {
			return false, fmt.Errorf("redemption %s names offer %s, which does not exist", r.ID, r.OfferID)
		}
		if ou, err = l.offerUsageRow(r.OfferID); err != nil {
			return false, err
		}
		if c, err = l.coupon(r.Code); err != nil {
			return false, err
		}
		if r.CustomerID != "" {
			if cu, err = l.customerUsageRow(r.CustomerID, r.OfferID); err != nil {
				return false, err
			}
		}
		before := ""
		if c != nil {
			before = c.c.Status
		}
		l.release(c, o, ou, cu)
		r.Consumed = false
		if c != nil {
			event := EventReversed
			if before != c.c.Status {
				event = EventReinstated
			}
			if err := l.change(Change{Entity: EntityCoupon, Key: r.Code, Event: event, OfferID: r.OfferID}); err != nil {
				return false, err
			}
		}
	}
	r.Status = tillkeep.RedemptionReversed
	r.IsReversed = true
	r.ReversedBy = by
	r.LastStatusChangeOn = l.now
	if err := l.tx.UpdateRedemption(*r); err != nil {
		return false, err
	}
	if err := l.change(Change{Entity: EntityRedemption, Key: r.ID, Event: EventReversed, OfferID: r.OfferID, StoreID: r.StoreID, TillID: r.TillID}); err != nil {
		return false, err
	}
	// A reversed winner of a double redemption frees its place for the next in rank.
	if r.ConflictKind == KindDoubleRedemption && r.ConflictID != "" && prevStatus != tillkeep.RedemptionReversed {
		cf, err := l.tx.Conflict(r.ConflictID)
		if err != nil {
			return false, fmt.Errorf("case %s of redemption %s: %w", r.ConflictID, r.ID, err)
		}
		if cf.Status == ConflictOpen {
			if err := l.rerank(&cf); err != nil {
				return false, err
			}
			cf.UpdatedAt = l.now
			cf.Audit = append(cf.Audit, AuditEntry{At: l.now, Actor: by, Action: "redemption_reversed", Note: r.ID})
			if err := l.tx.UpdateConflict(cf); err != nil {
				return false, err
			}
		}
	}
	return true, nil
}

// revokeCoupon revokes an active coupon in the working set, with its change entry.
func (l *ledger) revokeCoupon(c *couponRow) error {
	c.c.Status = tillkeep.CouponRevoked
	c.c.RevokedAt = l.now
	c.dirty = true
	return l.change(Change{Entity: EntityCoupon, Key: c.c.Code, Event: EventRevoked, OfferID: c.c.OfferID})
}

// conflictKind maps a rule-engine refusal to the conflict kind it means for a
// redemption that happened anyway, and the rule to record.
func conflictKind(e *tillkeep.Error) (kind, rule string) {
	switch e.Code {
	case tillkeep.CodeAlreadyRedeemed:
		return KindDoubleRedemption, e.Rule
	case tillkeep.CodeRevoked:
		return KindRedeemedAfterRevocation, ""
	case tillkeep.CodeExpired:
		return KindRedeemedAfterExpiry, ""
	case tillkeep.CodeUnknownCoupon:
		return KindUnknownCoupon, ""
	case tillkeep.CodeRuleViolation:
		switch e.Rule {
		case tillkeep.RuleMaxRedemptionsPerCustomer, tillkeep.RuleMinDaysBetween:
			return KindCustomerLimitExceeded, e.Rule
		case tillkeep.RuleMaxRedemptionsPerOffer:
			return KindOfferLimitExceeded, e.Rule
		}
		return KindRuleViolation, e.Rule
	}
	// not_yet_valid, offline_not_allowed, currency_mismatch, a malformed bill ...:
	// a rule the redemption broke, named by its code when no rule is named.
	if e.Rule != "" {
		return KindRuleViolation, e.Rule
	}
	return KindRuleViolation, string(e.Code)
}

// flag attaches the (already inserted) redemption r to the open case for (code, kind),
// opening one if there is none, and applies auto_revoke. r is updated in place and in
// storage. For a double redemption the winner rule then decides, across the case,
// which redemptions stay accepted.
func (l *ledger) flag(r *Redemption, kind, rule string, c *couponRow, o *tillkeep.Offer) error {
	cf, err := l.tx.OpenConflict(r.Code, kind)
	isNew := false
	switch {
	case errors.Is(err, ErrNotFound):
		id, err := newID()
		if err != nil {
			return err
		}
		isNew = true
		cf = Conflict{
			ID: id, Kind: kind, Code: r.Code, OfferID: r.OfferID, Status: ConflictOpen, Rule: rule,
			RedemptionIDs: []string{}, TillIDs: []string{}, StoreIDs: []string{},
			CreatedAt: l.now,
			Audit:     []AuditEntry{{At: l.now, Actor: principalPlatform, Action: "opened", Note: caseNote(kind, rule)}},
		}
	case err != nil:
		return err
	}
	cf.UpdatedAt = l.now
	addMember(&cf, *r)
	cf.Audit = append(cf.Audit, AuditEntry{At: l.now, Actor: principalPlatform, Action: "joined",
		Note: fmt.Sprintf("redemption %s (%s) from till %s/%s", r.ID, r.Mode, r.StoreID, r.TillID)})

	r.ConflictID, r.ConflictKind = cf.ID, kind
	r.Status = tillkeep.RedemptionConflict
	r.LastStatusChangeOn = l.now
	if err := l.tx.UpdateRedemption(*r); err != nil {
		return err
	}
	if kind == KindDoubleRedemption {
		if err := l.rerank(&cf); err != nil {
			return err
		}
		// rerank may have changed r.
		fresh, err := l.tx.Redemption(r.ID)
		if err != nil {
			return err
		}
		*r = fresh
	}
	if err := l.change(Change{Entity: EntityRedemption, Key: r.ID, Event: EventStatus, OfferID: r.OfferID, StoreID: r.StoreID, TillID: r.TillID}); err != nil {
		return err
	}

	if l.s.cfg.AutoRevoke && c != nil && c.c.Status != tillkeep.CouponRevoked && autoRevocable(kind, o) {
		if err := l.revokeCoupon(c); err != nil {
			return err
		}
		cf.Audit = append(cf.Audit, AuditEntry{At: l.now, Actor: principalPlatform, Action: "auto_revoked", Note: "coupon " + c.c.Code})
		l.fx.autoRevoked = append(l.fx.autoRevoked, c.c.Code)
	}

	if isNew {
		if err := l.tx.InsertConflict(cf); err != nil {
			return err
		}
		l.fx.opened = append(l.fx.opened, kind)
	} else if err := l.tx.UpdateConflict(cf); err != nil {
		return err
	}
	l.fx.joined = append(l.fx.joined, kind)
	return nil
}

// autoRevocable says whether auto_revoke applies: always, except that a common code
// (one code for everyone) is not revoked for one customer's over-use, which would take
// it from every other customer.
func autoRevocable(kind string, o *tillkeep.Offer) bool {
	if o != nil && o.CodeKind == tillkeep.CodeKindCommon && kind == KindCustomerLimitExceeded {
		return false
	}
	return true
}

func caseNote(kind, rule string) string {
	if rule != "" && kind != KindDoubleRedemption {
		return kind + " (rule " + rule + ")"
	}
	return kind
}

// addMember adds a redemption and its till and store to a case, once each.
func addMember(cf *Conflict, r Redemption) {
	if !slices.Contains(cf.RedemptionIDs, r.ID) {
		cf.RedemptionIDs = append(cf.RedemptionIDs, r.ID)
	}
	if !slices.Contains(cf.TillIDs, r.TillID) {
		cf.TillIDs = append(cf.TillIDs, r.TillID)
	}
	if !slices.Contains(cf.StoreIDs, r.StoreID) {
		cf.StoreIDs = append(cf.StoreIDs, r.StoreID)
	}
}

// winnerOrder is the winner rule of a double redemption, best first: an online-accepted
// redemption beats any offline one; among offline ones the earliest HLC stamp wins, then
// the lower till id, then the lower redemption id. Online ones among themselves go by
// the platform's own time. It depends only on the redemptions, never on arrival order,
// so every platform instance and every replay reaches the same verdict.
func winnerOrder(a, b Redemption) int {
	aOn, bOn := a.Mode == tillkeep.ModeOnline, b.Mode == tillkeep.ModeOnline
	switch {
	case aOn && !bOn:
		return -1
	case bOn && !aOn:
		return 1
	case aOn && bOn:
		if c := a.EventAt.Compare(b.EventAt); c != 0 {
			return c
		}
	default:
		switch {
		case a.HLC.Less(b.HLC):
			return -1
		case b.HLC.Less(a.HLC):
			return 1
		}
	}
	return cmp.Or(cmp.Compare(a.TillID, b.TillID), cmp.Compare(a.ID, b.ID))
}

// rerank applies the winner rule to a double-redemption case: the contenders are the
// case's members plus every other accepted, not reversed redemption of the coupon
// (they take part in the double use, so they join the case); the best
// max_redemptions_per_coupon of them are accepted, the rest are conflict.
func (l *ledger) rerank(cf *Conflict) error {
	all, err := l.tx.RedemptionsByCoupon(cf.Code)
	if err != nil {
		return err
	}
	var contenders []Redemption
	for _, r := range all {
		if r.IsReversed || r.Status == tillkeep.RedemptionReversed {
			continue
		}
		if slices.Contains(cf.RedemptionIDs, r.ID) || r.Status == tillkeep.RedemptionAccepted {
			contenders = append(contenders, r)
		}
	}
	slices.SortFunc(contenders, winnerOrder)
	limit := 1
	if o, err := l.offer(cf.OfferID); err != nil {
		return err
	} else if o != nil {
		limit = maxPerCoupon(*o)
	}
	cf.WinnerIDs = []string{}
	for i, r := range contenders {
		addMember(cf, r)
		want := tillkeep.RedemptionConflict
		if i < limit {
			want = tillkeep.RedemptionAccepted
			cf.WinnerIDs = append(cf.WinnerIDs, r.ID)
		}
		if r.Status == want && r.ConflictID == cf.ID {
			continue
		}
		r.Status, r.ConflictID, r.ConflictKind = want, cf.ID, KindDoubleRedemption
		r.LastStatusChangeOn = l.now
		if err := l.tx.UpdateRedemption(r); err != nil {
			return err
		}
		if err := l.change(Change{Entity: EntityRedemption, Key: r.ID, Event: EventStatus, OfferID: r.OfferID, StoreID: r.StoreID, TillID: r.TillID}); err != nil {
			return err
		}
	}
	return nil
}
