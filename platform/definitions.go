package platform

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tillkeep/tillkeep"
)

const maxTextLen = 200

func checkText(field, v string) error {
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxTextLen || strings.ContainsFunc(v, unicode.IsControl) {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "%s must be text of at most %d characters without control characters", field, maxTextLen)
	}
	return nil
}

// PutStore creates or replaces a store. Its time zone must load (it decides every
// store-local rule) and its currency must be an ISO 4217 code.
func (s *Service) PutStore(ctx context.Context, st tillkeep.Store) (tillkeep.Store, error) {
	if err := checkID("store id", st.ID); err != nil {
		return st, err
	}
	for field, v := range map[string]string{"name": st.Name, "zone": st.Zone, "concept": st.Concept} {
		if err := checkText(field, v); err != nil {
			return st, err
		}
	}
	if st.Timezone == "" {
		st.Timezone = "UTC"
	}
	if _, err := s.location(st.Timezone); err != nil {
		return st, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "timezone %q is not an IANA time zone such as America/New_York", st.Timezone)
	}
	st.Currency = strings.ToUpper(strings.TrimSpace(st.Currency))
	if st.Currency != "" && !tillkeep.ValidCurrency(st.Currency) {
		return st, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "currency %q is not an ISO 4217 code such as USD", st.Currency)
	}
	err := s.st.Update(ctx, func(tx Tx) error {
		if err := tx.PutStore(st); err != nil {
			return err
		}
		_, err := tx.AppendChange(Change{At: s.now(), Entity: EntityStore, Key: st.ID, Event: EventUpdated, StoreID: st.ID})
		return err
	})
	return st, storageErr(err, "save store")
}

// GetStore returns a store.
func (s *Service) GetStore(ctx context.Context, id string) (tillkeep.Store, error) {
	var st tillkeep.Store
	err := s.st.View(ctx, func(tx ReadTx) error {
		var err error
		st, err = tx.Store(id)
		return notFound(err, "store %s is not known", id)
	})
	return st, storageErr(err, "read store")
}

// ListStores lists stores by id after "after".
func (s *Service) ListStores(ctx context.Context, after string, limit int) (out []tillkeep.Store, next string, err error) {
	err = s.st.View(ctx, func(tx ReadTx) error {
		out, err = tx.Stores(after, limit+1)
		return err
	})
	if err != nil {
		return nil, "", storageErr(err, "list stores")
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

// PutCustomer creates or replaces a customer profile.
func (s *Service) PutCustomer(ctx context.Context, c tillkeep.Customer) (tillkeep.Customer, error) {
	if err := checkID("customer id", c.ID); err != nil {
		return c, err
	}
	if err := checkText("mobile", c.Mobile); err != nil {
		return c, err
	}
	if err := checkText("email", c.Email); err != nil {
		return c, err
	}
	if c.Transactions < 0 {
		return c, tillkeep.Errorf(tillkeep.CodeInvalidRequest, "transactions must not be negative")
	}
	if !c.RegisteredAt.IsZero() {
		c.RegisteredAt = c.RegisteredAt.UTC()
	}
	err := s.st.Update(ctx, func(tx Tx) error { return tx.PutCustomer(c) })
	return c, storageErr(err, "save customer")
}

// GetCustomer returns a customer.
func (s *Service) GetCustomer(ctx context.Context, id string) (tillkeep.Customer, error) {
	var c tillkeep.Customer
	err := s.st.View(ctx, func(tx ReadTx) error {
		var err error
		c, err = tx.Customer(id)
		return notFound(err, "customer %s is not known", id)
	})
	return c, storageErr(err, "read customer")
}

// CreateOffer normalises, checks and creates an offer; an existing id is a conflict.
func (s *Service) CreateOffer(ctx context.Context, o tillkeep.Offer) (tillkeep.Offer, error) {
	o.Normalize()
	if err := tillkeep.CheckOffer(o); err != nil {
		return o, err
	}
	now := s.now()
	o.CreatedAt, o.UpdatedAt = now, now
	o.ValidFrom, o.ValidUntil = o.ValidFrom.UTC(), o.ValidUntil.UTC()
	err := s.st.Update(ctx, func(tx Tx) error {
		if err := tx.InsertOffer(o); err != nil {
			return err
		}
		_, err := tx.AppendChange(Change{At: now, Entity: EntityOffer, Key: o.ID, Event: EventCreated, OfferID: o.ID})
		return err
	})
	if errors.Is(err, ErrExists) {
		return o, tillkeep.Errorf(tillkeep.CodeConflict, "offer %s already exists", o.ID)
	}
	return o, storageErr(err, "create offer")
}

// GetOffer returns an offer.
func (s *Service) GetOffer(ctx context.Context, id string) (tillkeep.Offer, error) {
	var o tillkeep.Offer
	err := s.st.View(ctx, func(tx ReadTx) error {
		var err error
		o, err = tx.Offer(id)
		return notFound(err, "offer %s is not known", id)
	})
	return o, storageErr(err, "read offer")
}

// OfferDetail is an offer with its usage.
type OfferDetail struct {
	tillkeep.Offer
	Usage OfferUsage `json:"usage"`
}

// GetOfferDetail returns an offer with its counters.
func (s *Service) GetOfferDetail(ctx context.Context, id string) (OfferDetail, error) {
	var d OfferDetail
	err := s.st.View(ctx, func(tx ReadTx) error {
		o, err := tx.Offer(id)
		if err != nil {
			return notFound(err, "offer %s is not known", id)
		}
		u, err := tx.OfferUsage(id)
		d = OfferDetail{Offer: o, Usage: u}
		return err
	})
	return d, storageErr(err, "read offer")
}

// ListOffers lists offers by id after "after".
func (s *Service) ListOffers(ctx context.Context, after string, limit int) (out []tillkeep.Offer, next string, err error) {
	err = s.st.View(ctx, func(tx ReadTx) error {
		out, err = tx.Offers(after, limit+1)
		return err
	})
	if err != nil {
		return nil, "", storageErr(err, "list offers")
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

// CouponDetail is a coupon as ops see it: its effective status and its redemptions.
type CouponDetail struct {
	Code          string                 `json:"code"`
	OfferID       string                 `json:"offer_id"`
	Status        string                 `json:"status"`
	CustomerID    string                 `json:"customer_id,omitempty"`
	IssuedAt      time.Time              `json:"issued_at,omitzero"`
	CreatedAt     time.Time              `json:"created_at,omitzero"`
	ExpiresAt     time.Time              `json:"expires_at,omitzero"`
	RevokedAt     time.Time              `json:"revoked_at,omitzero"`
	TimesRedeemed int                    `json:"times_redeemed"`
	Redemptions   []CouponRedemptionView `json:"redemptions"`
}

// CouponRedemptionView is one redemption in a coupon's detail.
type CouponRedemptionView struct {
	ID           string    `json:"id"`
	StoreID      string    `json:"store_id"`
	TillID       string    `json:"till_id"`
	Mode         string    `json:"mode"`
	Status       string    `json:"status"`
	At           time.Time `json:"at"`
	EventAt      time.Time `json:"event_at"`
	ConflictKind string    `json:"conflict_kind,omitempty"`
	ConflictID   string    `json:"conflict_id,omitempty"`
}

// GetCoupon returns a coupon with its effective status (expired is derived from the
// clock) and its redemptions.
func (s *Service) GetCoupon(ctx context.Context, code string) (CouponDetail, error) {
	var d CouponDetail
	err := s.st.View(ctx, func(tx ReadTx) error {
		c, err := tx.Coupon(code)
		if err != nil {
			return notFound(err, "coupon %s is not known", code)
		}
		status := c.Status
		if o, err := tx.Offer(c.OfferID); err == nil {
			status = tillkeep.EffectiveStatus(c, o, s.now())
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		rs, err := tx.RedemptionsByCoupon(code)
		if err != nil {
			return err
		}
		d = CouponDetail{
			Code: c.Code, OfferID: c.OfferID, Status: status, CustomerID: c.CustomerID,
			IssuedAt: c.IssuedAt, CreatedAt: c.CreatedAt, ExpiresAt: c.ExpiresAt, RevokedAt: c.RevokedAt,
			TimesRedeemed: c.Redemptions, Redemptions: make([]CouponRedemptionView, 0, len(rs)),
		}
		for _, r := range rs {
			d.Redemptions = append(d.Redemptions, CouponRedemptionView{
				ID: r.ID, StoreID: r.StoreID, TillID: r.TillID, Mode: r.Mode, Status: r.Status,
				At: r.At, EventAt: r.EventAt, ConflictKind: r.ConflictKind, ConflictID: r.ConflictID,
			})
		}
		return nil
	})
	return d, storageErr(err, "read coupon")
}
