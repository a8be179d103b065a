package platform_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/internal/httpapi"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/boltstore"
)

// Fuzz targets for every JSON request decoder of the platform's ops and till APIs,
// driven through the real handler chain (token check, strict decoding, the service,
// the bolt store). Seed corpora live in testdata/fuzz/<Target>/. Invariants on every
// answer: no 5xx but 503 and 507 (storage), no panic (a recovered panic would be a
// 500), the JSON error envelope with a status matching its code on every non-2xx, a
// valid token never refused, and no token in any answer or log line.

const (
	fuzzAdminToken  = "fuzz-admin-token-3b9f0c1d2e4a"
	fuzzEnrollToken = "fuzz-enroll-token-8a7c6e5d4b3f"
)

var fuzzNow = time.Date(2026, 6, 15, 16, 0, 0, 0, time.UTC)

// fuzzPlatform is a platform with two stores, a customer, a fixed and a percent offer
// with coupons, two enrolled tills of S001 and an open double-redemption conflict.
type fuzzPlatform struct {
	handler    http.Handler
	logs       *fuzzSecretWatch
	tillToken  string // S001/T01
	conflictID string
	// lastAcked is the highest acknowledged sequence of S001/T01 seen: it never goes down.
	lastAcked uint64
}

func newFuzzPlatform(tb testing.TB) *fuzzPlatform {
	tb.Helper()
	st := boltstore.MustOpen(tb)
	logs := &fuzzSecretWatch{secrets: []string{fuzzAdminToken}}
	srv, err := platform.NewServer(st, platform.ServerConfig{
		AdminToken: fuzzAdminToken, EnrollToken: fuzzEnrollToken, AutoRevoke: true,
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:     func() time.Time { return fuzzNow },
		TempDir: tb.TempDir(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	p := &fuzzPlatform{handler: srv.Handler(), logs: logs}
	for _, id := range []string{"S001", "S002"} {
		p.mustDo(tb, "PUT", "/v1/stores/"+id, fuzzAdminToken,
			`{"name":"Store `+id+`","zone":"east","concept":"grocery","timezone":"America/New_York","currency":"USD"}`)
	}
	p.mustDo(tb, "PUT", "/v1/customers/CU1", fuzzAdminToken,
		`{"mobile":"+15550100","email":"cu1@example.com","registered_at":"2026-01-10T00:00:00Z","transactions":3}`)
	p.mustDo(tb, "POST", "/v1/offers", fuzzAdminToken, fuzzSpringOffer)
	p.mustDo(tb, "POST", "/v1/offers", fuzzAdminToken, fuzzPercentOffer)
	var spring, pct []string
	for i := 1; i <= 30; i++ {
		spring, pct = append(spring, fmt.Sprintf("C%d", i)), append(pct, fmt.Sprintf("P%d", i))
	}
	p.mustDo(tb, "POST", "/v1/offers/SPRING40/coupons", fuzzAdminToken, fuzzJSON(tb, map[string]any{"codes": spring}))
	p.mustDo(tb, "POST", "/v1/offers/PCT15/coupons", fuzzAdminToken, fuzzJSON(tb, map[string]any{"codes": pct}))

	tokens := map[string]string{}
	for _, till := range []string{"T01", "T02"} {
		rec := p.mustDo(tb, "POST", "/v1/till/enroll", "",
			`{"store_id":"S001","till_id":"`+till+`","enroll_token":"`+fuzzEnrollToken+`"}`)
		var res platform.EnrollResult
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || res.Token == "" {
			tb.Fatalf("enroll %s: %s", till, rec.Body.Bytes())
		}
		tokens[till] = res.Token
		logs.add(res.Token)
	}
	p.tillToken = tokens["T01"]
	// Both tills redeemed C30 offline: a double redemption for the resolve target.
	for i, till := range []string{"T01", "T02"} {
		entry := fmt.Sprintf(`{"seq":1,"entry_id":"0197a000-0000-7000-8000-00000000f00%d","kind":"redemption",`+
			`"redemption_id":"0197a000-0000-7000-8000-00000000f00%d","store_id":"S001","till_id":"%s",`+
			`"transaction_id":"tx-seed-%d","code":"C30","offer_id":"SPRING40","bill":{"amount":12000,"currency":"USD"},`+
			`"discount":{"amount":4000,"currency":"USD"},"mode":"offline","wall_time":"2026-06-15T15:00:00Z",`+
			`"hlc":{"wall_ms":%d,"logical":0}}`, i, i, till, i, fuzzNow.Add(-time.Hour).UnixMilli())
		p.mustDo(tb, "POST", "/v1/till/journal", tokens[till], `{"epoch":"","entries":[`+entry+`]}`)
	}
	p.lastAcked = 1
	rec := p.mustDo(tb, "GET", "/v1/conflicts?status=open", fuzzAdminToken, "")
	var list struct {
		Conflicts []struct {
			ID string `json:"id"`
		} `json:"conflicts"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Conflicts) == 0 {
		tb.Fatalf("no conflict after a double redemption: %s", rec.Body.Bytes())
	}
	p.conflictID = list.Conflicts[0].ID
	return p
}

const fuzzSpringOffer = `{"id":"SPRING40","name":"Spring: 40 USD off 100 USD",
 "discount":{"type":"fixed","amount":4000,"currency":"USD"},
 "valid_from":"2026-03-01T00:00:00Z","valid_until":"2026-12-31T23:59:59Z","expiry":{"mode":"with_offer"},
 "rules":{"min_bill":10000,"max_redemptions_per_coupon":1,"stores":["S001","S002"]},"offline":{"allowed":true}}`

const fuzzPercentOffer = `{"id":"PCT15","name":"15 % off, at most 20 USD",
 "discount":{"type":"percent","percent":15,"max_amount":2000,"currency":"USD"},
 "valid_from":"2026-01-01T00:00:00Z","valid_until":"2026-12-31T23:59:59Z","expiry":{"mode":"with_offer"},
 "rules":{"max_redemptions_per_coupon":3,"max_redemptions_per_customer":2},"offline":{"allowed":true}}`

func fuzzJSON(tb testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func (p *fuzzPlatform) do(method, path, token string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	p.handler.ServeHTTP(rec, req)
	return rec
}

func (p *fuzzPlatform) mustDo(tb testing.TB, method, path, token, body string) *httptest.ResponseRecorder {
	tb.Helper()
	rec := p.do(method, path, token, []byte(body))
	if rec.Code >= 300 {
		tb.Fatalf("set up the fuzz platform: %s %s answered %d: %s", method, path, rec.Code, rec.Body.Bytes())
	}
	return rec
}

// fuzzSecretWatch is a log destination that remembers any line holding a secret.
type fuzzSecretWatch struct {
	mu      sync.Mutex
	secrets []string
	leaked  []string
}

func (w *fuzzSecretWatch) add(secret string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.secrets = append(w.secrets, secret)
}

func (w *fuzzSecretWatch) remove(secret string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.secrets = slices.DeleteFunc(w.secrets, func(s string) bool { return s == secret })
}

func (w *fuzzSecretWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.secrets {
		if bytes.Contains(p, []byte(s)) {
			w.leaked = append(w.leaked, string(p))
		}
	}
	return len(p), nil
}

func (w *fuzzSecretWatch) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.leaked) > 0 {
		first := w.leaked[0]
		w.leaked = nil // the next input starts clean
		t.Fatalf("a secret reached the log: %s", first)
	}
}

var fuzzSnakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkFuzzAnswer holds for every answer, whatever the body was; it returns the error
// code of a non-2xx answer.
func (p *fuzzPlatform) checkFuzzAnswer(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	p.logs.check(t)
	status, raw := rec.Code, rec.Body.Bytes()
	if status >= 500 && status != http.StatusServiceUnavailable && status != http.StatusInsufficientStorage {
		t.Fatalf("answered %d: %s", status, raw)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("answered %d with Content-Type %q: %q", status, ct, raw)
	}
	for _, s := range []string{fuzzAdminToken, p.tillToken} {
		if bytes.Contains(raw, []byte(s)) {
			t.Fatalf("the answer echoes a token: %s", raw)
		}
	}
	if bytes.Contains(raw, []byte("goroutine ")) || bytes.Contains(raw, []byte(".go:")) {
		t.Fatalf("the answer carries a stack trace: %s", raw)
	}
	if status < 300 {
		if !json.Valid(raw) {
			t.Fatalf("answered %d with invalid JSON: %q", status, raw)
		}
		return ""
	}
	var env struct {
		Error *httpapi.ErrorDetail `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || env.Error == nil {
		t.Fatalf("answered %d without the error envelope: %q (%v)", status, raw, err)
	}
	if !fuzzSnakeCase.MatchString(env.Error.Code) || strings.TrimSpace(env.Error.Message) == "" {
		t.Fatalf("error envelope without a snake_case code and a message: %s", raw)
	}
	if want := httpapi.StatusOf(tillkeep.Code(env.Error.Code)); want != status {
		t.Fatalf("answered %d with code %q, which maps to %d", status, env.Error.Code, want)
	}
	return env.Error.Code
}

// fuzzAuthorized is checkFuzzAnswer for a request bearing a valid token: it is never
// refused as unauthorized.
func (p *fuzzPlatform) fuzzAuthorized(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	code := p.checkFuzzAnswer(t, rec)
	if rec.Code == http.StatusUnauthorized {
		t.Fatalf("a valid token was refused: %s", rec.Body.Bytes())
	}
	return code
}

// fuzzOps fuzzes the body of one ops route.
func fuzzOps(f *testing.F, method, path string) {
	p := newFuzzPlatform(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := p.do(method, path, fuzzAdminToken, body)
		if p.fuzzAuthorized(t, rec); rec.Code == http.StatusForbidden {
			t.Fatalf("the admin was forbidden: %s", rec.Body.Bytes())
		}
	})
}

func FuzzOpsStorePut(f *testing.F)    { fuzzOps(f, "PUT", "/v1/stores/S-FUZZ") }
func FuzzOpsCustomerPut(f *testing.F) { fuzzOps(f, "PUT", "/v1/customers/CU-FUZZ") }
func FuzzOpsOfferCreate(f *testing.F) { fuzzOps(f, "POST", "/v1/offers") }
func FuzzOpsRevoke(f *testing.F)      { fuzzOps(f, "POST", "/v1/coupons/revoke") }

// FuzzOpsCouponsCreate skips bodies asking to generate more than a few thousand codes:
// bulk generation of up to codegen.MaxCount codes is a feature, and would only make the
// fuzzer slow.
func FuzzOpsCouponsCreate(f *testing.F) {
	p := newFuzzPlatform(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var sizes struct {
			Generate         *struct{ Count int64 } `json:"generate"`
			RandomizedCommon *struct{ Count int64 } `json:"randomized_common"`
		}
		if json.Unmarshal(body, &sizes) == nil &&
			((sizes.Generate != nil && sizes.Generate.Count > 5000) ||
				(sizes.RandomizedCommon != nil && sizes.RandomizedCommon.Count > 5000)) {
			t.Skip("bulk generation")
		}
		rec := p.do("POST", "/v1/offers/SPRING40/coupons", fuzzAdminToken, body)
		p.fuzzAuthorized(t, rec)
		if rec.Code == http.StatusCreated {
			var res struct {
				Created *int64            `json:"created"`
				Errors  []json.RawMessage `json:"errors"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || res.Created == nil || res.Errors == nil {
				t.Fatalf("201 answer without created and errors (a list, never null): %s", rec.Body.Bytes())
			}
		}
	})
}

func FuzzOpsConflictResolve(f *testing.F) {
	p := newFuzzPlatform(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		p.fuzzAuthorized(t, p.do("POST", "/v1/conflicts/"+p.conflictID+"/resolve", fuzzAdminToken, body))
	})
}

// FuzzTillEnroll: the enroll token travels in the body, so a leak is an answer or a
// log line holding it when the body held it only as enroll_token (a body that puts it
// into an echoed field, like till_id, is the sender's own doing).
func FuzzTillEnroll(f *testing.F) {
	p := newFuzzPlatform(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var req platform.EnrollRequest
		onlyAsToken := json.Unmarshal(body, &req) == nil && req.EnrollToken == fuzzEnrollToken &&
			bytes.Count(body, []byte(fuzzEnrollToken)) == 1 && !strings.Contains(req.StoreID+req.TillID, fuzzEnrollToken)
		if onlyAsToken {
			p.logs.add(fuzzEnrollToken)
			defer p.logs.remove(fuzzEnrollToken)
		}
		rec := p.do("POST", "/v1/till/enroll", "", body)
		p.checkFuzzAnswer(t, rec)
		if onlyAsToken && rec.Code >= 300 && bytes.Contains(rec.Body.Bytes(), []byte(fuzzEnrollToken)) {
			t.Fatalf("a refused enrollment echoes the enroll token: %s", rec.Body.Bytes())
		}
		if rec.Code == http.StatusCreated {
			var res platform.EnrollResult
			if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || res.Token == "" {
				t.Fatalf("201 enrollment without a token: %s", rec.Body.Bytes())
			}
			if req.EnrollToken != fuzzEnrollToken {
				t.Fatalf("enrolled with the enroll token %q", req.EnrollToken)
			}
			p.logs.add(res.Token)
		}
	})
}

func FuzzTillValidate(f *testing.F) {
	p := newFuzzPlatform(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := p.do("POST", "/v1/till/validate", p.tillToken, body)
		p.fuzzAuthorized(t, rec)
		if rec.Code != http.StatusOK {
			return
		}
		var res struct {
			Valid    bool            `json:"valid"`
			Discount *tillkeep.Money `json:"discount"`
			Reason   string          `json:"reason"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatalf("200 answer does not decode: %v", err)
		}
		switch {
		case res.Valid && res.Discount == nil:
			t.Fatalf("valid without a discount: %s", rec.Body.Bytes())
		case res.Valid:
			fuzzCheckDiscount(t, body, *res.Discount)
		case !fuzzSnakeCase.MatchString(res.Reason):
			t.Fatalf("invalid without a snake_case reason: %s", rec.Body.Bytes())
		}
	})
}

func FuzzTillRedeem(f *testing.F) {
	p := newFuzzPlatform(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := p.do("POST", "/v1/till/redemptions", p.tillToken, body)
		p.fuzzAuthorized(t, rec)
		if rec.Code != http.StatusCreated {
			return
		}
		var res struct {
			RedemptionID string         `json:"redemption_id"`
			Discount     tillkeep.Money `json:"discount"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || res.RedemptionID == "" {
			t.Fatalf("201 answer without a redemption_id: %s", rec.Body.Bytes())
		}
		fuzzCheckDiscount(t, body, res.Discount)
	})
}

// fuzzCheckDiscount: an accepted discount is in the bill's currency and between zero
// and the bill (zero only on a zero bill).
func fuzzCheckDiscount(t *testing.T, body []byte, discount tillkeep.Money) {
	t.Helper()
	var req struct {
		Bill tillkeep.Money `json:"bill"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatalf("an accepted body does not decode: %v", err)
	}
	bill := req.Bill
	if !strings.EqualFold(discount.Currency, bill.Currency) || discount.Amount < 0 || discount.Amount > bill.Amount ||
		(bill.Amount > 0 && discount.Amount == 0) {
		t.Fatalf("granted %+v on a bill of %+v", discount, bill)
	}
}

// FuzzTillJournalUpload fuzzes the upload batch decoder and ingest: whatever the batch,
// the till's acknowledged sequence never goes down.
func FuzzTillJournalUpload(f *testing.F) {
	p := newFuzzPlatform(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := p.do("POST", "/v1/till/journal", p.tillToken, body)
		p.fuzzAuthorized(t, rec)
		if rec.Code != http.StatusOK {
			return
		}
		var ack struct {
			AckedSeq *uint64          `json:"acked_seq"`
			Results  []map[string]any `json:"results"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &ack); err != nil || ack.AckedSeq == nil || ack.Results == nil {
			t.Fatalf("200 answer without acked_seq and results (a list, never null): %s", rec.Body.Bytes())
		}
		if *ack.AckedSeq < p.lastAcked {
			t.Fatalf("acked_seq went down from %d to %d: %s", p.lastAcked, *ack.AckedSeq, rec.Body.Bytes())
		}
		p.lastAcked = *ack.AckedSeq
	})
}
