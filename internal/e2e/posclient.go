package e2e

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/tillkeep/tillkeep"
)

// POSClient calls a till agent's POS API as a POS does.
type POSClient struct {
	base  string
	token string
	http  *http.Client
}

// NewPOSClient returns a client of the agent at base ("http://127.0.0.1:7070").
func NewPOSClient(base, token string) *POSClient {
	return &POSClient{base: base, token: token, http: &http.Client{Timeout: callTimeout}}
}

// AgentStatus is the answer of GET /v1/status: the contract's fields, and the agent's
// documented extensions (offline_redemptions, sync).
type AgentStatus struct {
	TillID         string `json:"till_id"`
	StoreID        string `json:"store_id"`
	Mode           string `json:"mode"`
	PendingUploads int    `json:"pending_uploads"`
	Catalog        struct {
		Coupons  int        `json:"coupons"`
		SyncedAt *time.Time `json:"synced_at"`
	} `json:"catalog"`
	OfflineRedemptions int         `json:"offline_redemptions"`
	Sync               *SyncStatus `json:"sync"`
}

// SyncStatus is the agent's report on its link to the platform.
type SyncStatus struct {
	Enrolled      bool      `json:"enrolled"`
	LastPushAt    time.Time `json:"last_push_at"`
	LastPullAt    time.Time `json:"last_pull_at"`
	LastError     string    `json:"last_error"`
	ClockOffsetMS int64     `json:"clock_offset_ms"`
	Conflicts     struct {
		Total  int           `json:"total"`
		Recent []EntryResult `json:"recent"`
	} `json:"conflicts"`
}

// EntryResult is the platform's verdict on one uploaded journal entry, as the till keeps
// it.
type EntryResult struct {
	Seq          uint64 `json:"seq"`
	RedemptionID string `json:"redemption_id"`
	Status       string `json:"status"`
	ConflictKind string `json:"conflict_kind"`
	ConflictID   string `json:"conflict_id"`
}

// Status is GET /v1/status.
func (c *POSClient) Status(ctx context.Context) (AgentStatus, error) {
	var st AgentStatus
	_, err := doJSON(ctx, c.http, http.MethodGet, c.base+"/v1/status", c.token, nil, &st)
	return st, err
}

// RedeemRequest is the body of POST /v1/redemptions.
type RedeemRequest struct {
	Code          string         `json:"code"`
	TransactionID string         `json:"transaction_id"`
	Bill          tillkeep.Money `json:"bill"`
	CustomerID    string         `json:"customer_id,omitempty"`
}

// Redeemed is the 201 answer of POST /v1/redemptions, with how long it took.
type Redeemed struct {
	RedemptionID string         `json:"redemption_id"`
	Mode         string         `json:"mode"`
	Discount     tillkeep.Money `json:"discount"`
	// Replayed is true when the agent answered with the first outcome of this
	// transaction_id (header Idempotent-Replayed).
	Replayed bool          `json:"-"`
	Elapsed  time.Duration `json:"-"`
}

// Redeem is POST /v1/redemptions. A refusal is an *APIError (422 with its code).
func (c *POSClient) Redeem(ctx context.Context, r RedeemRequest) (Redeemed, error) {
	var out Redeemed
	start := time.Now()
	a, err := doJSON(ctx, c.http, http.MethodPost, c.base+"/v1/redemptions", c.token, r, &out)
	out.Elapsed = time.Since(start)
	if err != nil {
		return out, err
	}
	if a.status != http.StatusCreated {
		return out, &APIError{Method: http.MethodPost, URL: c.base + "/v1/redemptions", Status: a.status,
			Code: "unexpected_status", Message: "want 201 Created"}
	}
	out.Replayed = a.header.Get("Idempotent-Replayed") == "true"
	return out, nil
}

// Validation is the answer of POST /v1/validate.
type Validation struct {
	Valid    bool            `json:"valid"`
	Discount *tillkeep.Money `json:"discount"`
	Reason   string          `json:"reason"`
	Rule     string          `json:"rule"`
	Message  string          `json:"message"`
	Mode     string          `json:"mode"`
}

// Validate is POST /v1/validate.
func (c *POSClient) Validate(ctx context.Context, code string, bill tillkeep.Money) (Validation, error) {
	var out Validation
	body := map[string]any{"code": code, "bill": bill}
	_, err := doJSON(ctx, c.http, http.MethodPost, c.base+"/v1/validate", c.token, body, &out)
	return out, err
}

// Reverse is POST /v1/redemptions/{id}/reverse.
func (c *POSClient) Reverse(ctx context.Context, redemptionID string) (string, error) {
	var out struct {
		Status string `json:"status"`
	}
	_, err := doJSON(ctx, c.http, http.MethodPost, c.base+"/v1/redemptions/"+url.PathEscape(redemptionID)+"/reverse", c.token, nil, &out)
	return out.Status, err
}
