package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/tillkeep/tillkeep"
)

// OpsClient calls the platform's ops API with the admin token.
type OpsClient struct {
	base  string
	token string
	http  *http.Client
}

// NewOpsClient returns a client of the platform at base ("http://127.0.0.1:8080").
func NewOpsClient(base, token string) *OpsClient {
	return &OpsClient{base: base, token: token, http: &http.Client{Timeout: callTimeout}}
}

// Store is the body of PUT /v1/stores/{id}.
type Store struct {
	Name     string `json:"name"`
	Zone     string `json:"zone"`
	Concept  string `json:"concept"`
	Timezone string `json:"timezone"`
	Currency string `json:"currency"`
}

// PutStore creates or replaces a store.
func (c *OpsClient) PutStore(ctx context.Context, id string, s Store) error {
	_, err := doJSON(ctx, c.http, http.MethodPut, c.base+"/v1/stores/"+url.PathEscape(id), c.token, s, nil)
	return err
}

// CreateOffer posts an offer (any value that encodes to the contract's offer JSON).
func (c *OpsClient) CreateOffer(ctx context.Context, offer any) error {
	_, err := doJSON(ctx, c.http, http.MethodPost, c.base+"/v1/offers", c.token, offer, nil)
	return err
}

// CouponError is one code a coupon batch did not create.
type CouponError struct {
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// AddCoupons creates the given codes in an offer, 1,000 per request (the API's bodies
// are limited to 1 MiB), and returns how many were created.
func (c *OpsClient) AddCoupons(ctx context.Context, offerID string, codes []string) (int, []CouponError, error) {
	created := 0
	var refused []CouponError
	for start := 0; start < len(codes); start += 1000 {
		batch := codes[start:min(start+1000, len(codes))]
		var out struct {
			Created int           `json:"created"`
			Errors  []CouponError `json:"errors"`
		}
		_, err := doJSON(ctx, c.http, http.MethodPost, c.base+"/v1/offers/"+url.PathEscape(offerID)+"/coupons", c.token,
			map[string]any{"codes": batch}, &out)
		if err != nil {
			return created, refused, err
		}
		created += out.Created
		refused = append(refused, out.Errors...)
	}
	return created, refused, nil
}

// CouponRedemption is one redemption in a coupon's detail.
type CouponRedemption struct {
	ID     string `json:"id"`
	TillID string `json:"till_id"`
	Mode   string `json:"mode"`
	Status string `json:"status"`
}

// Coupon is the answer of GET /v1/coupons/{code}.
type Coupon struct {
	Code        string             `json:"code"`
	OfferID     string             `json:"offer_id"`
	Status      string             `json:"status"`
	Redemptions []CouponRedemption `json:"redemptions"`
}

// Coupon is GET /v1/coupons/{code}.
func (c *OpsClient) Coupon(ctx context.Context, code string) (Coupon, error) {
	var out Coupon
	_, err := doJSON(ctx, c.http, http.MethodGet, c.base+"/v1/coupons/"+url.PathEscape(code), c.token, nil, &out)
	return out, err
}

// Revoke revokes the given codes and returns how many were revoked.
func (c *OpsClient) Revoke(ctx context.Context, codes ...string) (int, error) {
	var out struct {
		Revoked int `json:"revoked"`
	}
	_, err := doJSON(ctx, c.http, http.MethodPost, c.base+"/v1/coupons/revoke", c.token, map[string]any{"codes": codes}, &out)
	return out.Revoked, err
}

// Redemption is one redemption in GET /v1/redemptions.
type Redemption struct {
	ID            string         `json:"id"`
	Code          string         `json:"code"`
	OfferID       string         `json:"offer_id"`
	StoreID       string         `json:"store_id"`
	TillID        string         `json:"till_id"`
	TransactionID string         `json:"transaction_id"`
	Discount      tillkeep.Money `json:"discount"`
	Mode          string         `json:"mode"`
	Status        string         `json:"status"`
	At            time.Time      `json:"at"`
	ConflictID    string         `json:"conflict_id"`
	ConflictKind  string         `json:"conflict_kind"`
}

// RedemptionFilter narrows GET /v1/redemptions; empty fields do not filter.
type RedemptionFilter struct {
	StoreID, TillID, OfferID, Code, Mode, Status string
}

// Redemptions lists every redemption matching f, following the cursor to the end.
func (c *OpsClient) Redemptions(ctx context.Context, f RedemptionFilter) ([]Redemption, error) {
	q := url.Values{}
	for k, v := range map[string]string{"store_id": f.StoreID, "till_id": f.TillID, "offer_id": f.OfferID,
		"code": f.Code, "mode": f.Mode, "status": f.Status} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", "1000")
	var all []Redemption
	for page := 0; ; page++ {
		var out struct {
			Redemptions []Redemption `json:"redemptions"`
			NextCursor  string       `json:"next_cursor"`
		}
		if _, err := doJSON(ctx, c.http, http.MethodGet, c.base+"/v1/redemptions?"+q.Encode(), c.token, nil, &out); err != nil {
			return nil, err
		}
		if out.Redemptions == nil {
			return nil, fmt.Errorf("GET /v1/redemptions: \"redemptions\" is null or missing; the contract wants a list")
		}
		all = append(all, out.Redemptions...)
		if out.NextCursor == "" {
			return all, nil
		}
		if page > 10000 {
			return nil, fmt.Errorf("GET /v1/redemptions: the cursor never ends (%d pages)", page)
		}
		q.Set("cursor", out.NextCursor)
	}
}

// Conflict is one case in GET /v1/conflicts.
type Conflict struct {
	ID            string   `json:"id"`
	Kind          string   `json:"kind"`
	Code          string   `json:"code"`
	RedemptionIDs []string `json:"redemption_ids"`
	TillIDs       []string `json:"till_ids"`
	Status        string   `json:"status"`
	WinnerIDs     []string `json:"winner_ids"`
}

// Conflicts lists the conflict cases ("open", "resolved" or "" for all), every page.
func (c *OpsClient) Conflicts(ctx context.Context, status string) ([]Conflict, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	var all []Conflict
	for page := 0; ; page++ {
		var out struct {
			Conflicts  []Conflict `json:"conflicts"`
			NextCursor string     `json:"next_cursor"`
		}
		if _, err := doJSON(ctx, c.http, http.MethodGet, c.base+"/v1/conflicts?"+q.Encode(), c.token, nil, &out); err != nil {
			return nil, err
		}
		if out.Conflicts == nil {
			return nil, fmt.Errorf("GET /v1/conflicts: \"conflicts\" is null or missing; the contract wants a list")
		}
		all = append(all, out.Conflicts...)
		if out.NextCursor == "" || len(out.Conflicts) == 0 {
			return all, nil
		}
		if page > 10000 {
			return nil, fmt.Errorf("GET /v1/conflicts: the cursor never ends (%d pages)", page)
		}
		q.Set("after", out.NextCursor)
	}
}

// Till is one till in GET /v1/tills.
type Till struct {
	StoreID    string    `json:"store_id"`
	TillID     string    `json:"till_id"`
	Enrolled   bool      `json:"enrolled"`
	AckedSeq   uint64    `json:"acked_seq"`
	LastSeenAt time.Time `json:"last_seen_at"`
}

// Tills lists the tills of a store.
func (c *OpsClient) Tills(ctx context.Context, storeID string) ([]Till, error) {
	var out struct {
		Tills []Till `json:"tills"`
	}
	_, err := doJSON(ctx, c.http, http.MethodGet, c.base+"/v1/tills?store_id="+url.QueryEscape(storeID), c.token, nil, &out)
	return out.Tills, err
}

// AckedSeq is the platform's acknowledged journal point of one till (0 when unknown).
func (c *OpsClient) AckedSeq(ctx context.Context, storeID, tillID string) (uint64, error) {
	tills, err := c.Tills(ctx, storeID)
	if err != nil {
		return 0, err
	}
	for _, t := range tills {
		if t.TillID == tillID {
			return t.AckedSeq, nil
		}
	}
	return 0, nil
}
