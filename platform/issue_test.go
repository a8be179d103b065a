package platform_test

import (
	"encoding/csv"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep/platform"
)

// report downloads a CSV report and returns its data rows (without the header).
func (e *env) report(id string) [][]string {
	e.t.Helper()
	r := e.must(200, e.admin("GET", "/v1/reports/"+id, nil), "report")
	rows, err := csv.NewReader(strings.NewReader(string(r.raw))).ReadAll()
	if err != nil {
		e.t.Fatalf("report is not CSV: %v\n%s", err, r.raw)
	}
	if len(rows) == 0 {
		e.t.Fatal("report is empty")
	}
	return rows[1:]
}

// issue posts a CSV issuance and decodes the answer.
func (e *env) issue(offerID, csvBody string) platform.IssueResult {
	e.t.Helper()
	return decode[platform.IssueResult](e.t, e.must(200, e.admin("POST", "/v1/offers/"+offerID+"/issue", csvBody), "issue"))
}

// rowReasons lists the reason of each refused row, by row number.
func rowReasons(errs []platform.RowError) map[int]string {
	out := map[int]string{}
	for _, e := range errs {
		out[e.Row] = e.Reason
	}
	return out
}

// TestIssuanceDuplicateCustomers covers the four duplicate-customer cases of the
// coupon-management model: one file lists customer C four times.
//  1. max_per_customer 3: rows 1-3 issued, row 4 refused; a re-upload refuses every row;
//  2. max_per_customer 3 and one day between issues: row 1 issued, rows 2-4 refused;
//  3. a series limit of 2: rows 1-2 issued, rows 3-4 refused;
//  4. a generic (common) code: row 1 issued, rows 2-4 refused, and every row of a
//     re-upload.
//
// Each refused row has a reason in the answer and in the downloadable CSV report; the
// rest of the batch goes through.
func TestIssuanceDuplicateCustomers(t *testing.T) {
	e := newEnv(t)
	e.putStore("S001")
	four := "customer_id\nC\nC\nC\nC\n" // rows are numbered by line: 2 to 5
	pool := func(offer string) {
		var codes []string
		for i := range 8 {
			codes = append(codes, fmt.Sprintf("%s-%d", offer, i))
		}
		e.createCodes(offer, codes...)
	}
	cases := []struct {
		name     string
		issuance map[string]any
		common   bool
		issued   int64
		refused  map[int]string
		again    int64 // issued by a re-upload of the same file
	}{
		{"max per customer", map[string]any{"max_per_customer": 3}, false, 3,
			map[int]string{5: "max_per_customer"}, 0},
		{"gap between issues", map[string]any{"max_per_customer": 3, "min_days_between_issues": 1}, false, 1,
			map[int]string{3: "min_days_between_issues", 4: "min_days_between_issues", 5: "min_days_between_issues"}, 0},
		{"series limit", map[string]any{"series_limit": 2}, false, 2,
			map[int]string{4: "series_limit", 5: "series_limit"}, 0},
		{"generic code", nil, true, 1,
			map[int]string{3: "one_generic_per_customer", 4: "one_generic_per_customer", 5: "one_generic_per_customer"}, 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("DUP%d", i)
			e.createOffer(id, func(o map[string]any) {
				if tc.issuance != nil {
					o["issuance"] = tc.issuance
				}
				if tc.common {
					o["code_kind"] = "common"
					rules(o)["max_redemptions_per_coupon"] = 1000
				}
			})
			if tc.common {
				e.must(201, e.admin("POST", "/v1/offers/"+id+"/coupons", map[string]any{"common": map[string]any{"code": id + "-ALL"}}), "common code")
			} else {
				pool(id)
			}
			res := e.issue(id, four)
			if res.Issued != tc.issued || !maps2Equal(rowReasons(res.Errors), tc.refused) {
				t.Fatalf("issued %d, refused %v; want %d, %v", res.Issued, rowReasons(res.Errors), tc.issued, tc.refused)
			}
			rows := e.report(res.ReportID)
			if len(rows) != len(tc.refused) {
				t.Fatalf("report = %v", rows)
			}
			for _, r := range rows {
				if r[1] != "C" || r[3] == "" || r[4] == "" {
					t.Fatalf("report row %v lacks customer, reason or message", r)
				}
			}
			if tc.name == "max per customer" || tc.name == "generic code" {
				again := e.issue(id, four)
				if again.Issued != tc.again || len(again.Errors) != 4 {
					t.Fatalf("re-upload: issued %d, errors %v", again.Issued, rowReasons(again.Errors))
				}
			}
		})
	}
}

func maps2Equal(a, b map[int]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestIssuanceOfNamedCodes covers rows that name their code: a code listed twice in
// one file, a code already issued to someone else, an unknown code, a malformed
// customer id.
func TestIssuanceOfNamedCodes(t *testing.T) {
	e := newEnv(t)
	e.putStore("S001")
	e.createOffer("ISSUE", func(o map[string]any) { o["issuance"] = map[string]any{"max_per_customer": 1} })
	e.createCodes("ISSUE", "I1", "I2", "I3", "I4", "I5", "I6", "I7", "I8")

	first := e.issue("ISSUE", "customer_id,code\nA\nB,I8\n")
	if first.Issued != 2 || len(first.Errors) != 0 || first.ReportID != "" {
		t.Fatalf("first batch = %+v", first)
	}
	res := e.issue("ISSUE", strings.Join([]string{
		"customer_id,code",
		"D,I5",    // line 2: fine
		"E,I5",    // line 3: I5 listed again in this file
		"D,I5",    // line 4: the same row again
		"F,I8",    // line 5: I8 is B's
		"G,NOPE",  // line 6: unknown code
		"bad id!", // line 7: malformed customer id
		"H",       // line 8: fine
	}, "\n"))
	want := map[int]string{3: "duplicate_code", 4: "duplicate_row", 5: "already_issued", 6: "unknown_coupon", 7: "invalid_customer"}
	if res.Issued != 2 || !maps2Equal(rowReasons(res.Errors), want) {
		t.Fatalf("issued %d, refused %v; want 2, %v", res.Issued, rowReasons(res.Errors), want)
	}
	if rows := e.report(res.ReportID); len(rows) != len(want) {
		t.Fatalf("report = %v", rows)
	}
	if c := e.coupon("I5"); c.CustomerID != "D" || c.IssuedAt.IsZero() {
		t.Fatalf("I5 = %+v", c)
	}
	if c := e.coupon("I8"); c.CustomerID != "B" {
		t.Fatalf("I8 changed hands: %+v", c)
	}
	off := e.must(200, e.admin("GET", "/v1/offers/ISSUE", nil), "offer")
	if u := off.body["usage"].(map[string]any); u["issued"].(float64) != 4 {
		t.Fatalf("issued counter = %v, want 4", u)
	}
	if r := e.admin("GET", "/v1/reports/nope", nil); r.status != 404 {
		t.Fatalf("unknown report: %d", r.status)
	}
}

func TestIssuanceRules(t *testing.T) {
	e := newEnv(t)
	e.putStore("S001")
	e.createOffer("GAP", func(o map[string]any) {
		o["issuance"] = map[string]any{"max_per_customer": 5, "min_days_between_issues": 7, "series_limit": 3}
		o["expiry"] = map[string]any{"mode": "days_from_issue", "days": 10}
	})
	e.createCodes("GAP", "G1", "G2", "G3", "G4", "G5")

	r := e.must(200, e.admin("POST", "/v1/offers/GAP/issue", map[string]any{"customers": []string{"A", "B", "A"}}), "json issue")
	res := decode[platform.IssueResult](t, r)
	if res.Issued != 2 || len(res.Errors) != 1 || res.Errors[0].Row != 3 || !strings.Contains(res.Errors[0].Reason, "min_days_between_issues") {
		t.Fatalf("gap = %s", r.raw)
	}
	// Expiry fixed at issue: end of the issue day + 10 days, in the offer's first
	// store's zone (America/New_York).
	var issued platform.CouponDetail
	for _, code := range []string{"G1", "G2"} {
		if c := e.coupon(code); c.CustomerID == "A" {
			issued = c
		}
	}
	ny, _ := time.LoadLocation("America/New_York")
	wantExp := time.Date(2026, 6, 11, 23, 59, 59, 999999999, ny)
	if !issued.ExpiresAt.Equal(wantExp) {
		t.Fatalf("expiry = %v, want %v", issued.ExpiresAt, wantExp)
	}

	e.clock.Add(8 * 24 * time.Hour)
	r = e.must(200, e.admin("POST", "/v1/offers/GAP/issue", map[string]any{"customers": []string{"A", "C", "D"}}), "series limit")
	res = decode[platform.IssueResult](t, r)
	if res.Issued != 1 || len(res.Errors) != 2 || !strings.Contains(res.Errors[0].Reason, "series_limit") {
		t.Fatalf("series limit = %s", r.raw)
	}
	// Nothing left in the pool is a reason too.
	e.createOffer("TINY")
	e.createCodes("TINY", "T1")
	r = e.must(200, e.admin("POST", "/v1/offers/TINY/issue", map[string]any{"customers": []string{"A", "B"}}), "pool")
	res = decode[platform.IssueResult](t, r)
	if res.Issued != 1 || res.Errors[0].Reason != "no_coupon_available" {
		t.Fatalf("empty pool = %s", r.raw)
	}
	if r := e.admin("POST", "/v1/offers/NOPE/issue", map[string]any{"customers": []string{"A"}}); r.status != 404 {
		t.Fatalf("unknown offer: %d", r.status)
	}
}

func TestGenericCodeOncePerCustomer(t *testing.T) {
	e := newEnv(t)
	e.putStore("S001")
	e.createOffer("COMMON", func(o map[string]any) {
		o["code_kind"] = "common"
		rules(o)["max_redemptions_per_coupon"] = 1000
	})
	e.must(201, e.admin("POST", "/v1/offers/COMMON/coupons", map[string]any{"common": map[string]any{"code": "EVERYONE"}}), "common")
	r := e.must(200, e.admin("POST", "/v1/offers/COMMON/issue", map[string]any{"customers": []string{"A", "B", "A"}}), "issue generic")
	res := decode[platform.IssueResult](t, r)
	if res.Issued != 2 || len(res.Errors) != 1 || res.Errors[0].Row != 3 {
		t.Fatalf("generic = %s", r.raw)
	}
	if c := e.coupon("EVERYONE"); c.CustomerID != "" || c.Status != "active" {
		t.Fatalf("the common code must stay everyone's: %+v", c)
	}
}

func TestUploadCoupons(t *testing.T) {
	e := newEnv(t)
	e.putStore("S001")
	e.createOffer("UP", func(o map[string]any) { o["issuance"] = map[string]any{"max_per_customer": 1} })
	e.createCodes("UP", "EXISTS")
	var b strings.Builder
	b.WriteString("code,customer_id\r\n")
	for i := range 4500 { // several transactions' worth
		fmt.Fprintf(&b, "U%05d\r\n", i)
	}
	b.WriteString("EXISTS\n")                       // duplicate of an existing code
	b.WriteString("U00001\n")                       // duplicate within the upload
	b.WriteString("\"T1\",\"C1\"\n")                // quoted, issued to C1
	b.WriteString("T2,C1\n")                        // C1 already got one
	b.WriteString("bad code,C2\n")                  // invalid code
	b.WriteString(strings.Repeat("X", 5000) + "\n") // row too long
	b.WriteString("T3,C3\n")
	r := e.must(200, e.admin("POST", "/v1/offers/UP/coupons/upload", b.String()), "upload")
	res := decode[platform.UploadResult](t, r)
	// T2 is created (the code is fine) but not issued.
	if res.Created != 4500+3 || res.Issued != 2 || len(res.Errors) != 5 || res.ReportID == "" {
		t.Fatalf("upload = created %d issued %d errors %+v report %q", res.Created, res.Issued, res.Errors, res.ReportID)
	}
	got := map[string]bool{}
	for _, e := range res.Errors {
		got[e.Reason] = true
	}
	for _, want := range []string{"duplicate_code", "max_per_customer", "invalid_code", "invalid_row"} {
		found := false
		for r := range got {
			if strings.Contains(r, want) {
				found = true
			}
		}
		if !found {
			t.Fatalf("no %s among %+v", want, res.Errors)
		}
	}
	if rows := e.report(res.ReportID); len(rows) != 5 {
		t.Fatalf("report rows = %v", rows)
	}
	if c := e.coupon("T1"); c.CustomerID != "C1" {
		t.Fatalf("T1 = %+v", c)
	}
	if c := e.coupon("T2"); c.CustomerID != "" || c.Status != "active" {
		t.Fatalf("T2 = %+v", c)
	}
	// The same upload again creates nothing new (every row is a duplicate).
	r = e.must(200, e.admin("POST", "/v1/offers/UP/coupons/upload", "U00000\nU00001\n"), "upload again")
	if res := decode[platform.UploadResult](t, r); res.Created != 0 || len(res.Errors) != 2 {
		t.Fatalf("second upload = %s", r.raw)
	}
	if r := e.admin("POST", "/v1/offers/UP/coupons/upload", map[string]any{"codes": []string{"x"}}); r.status != 400 {
		t.Fatalf("JSON body to the CSV upload: %d", r.status)
	}
}

func TestRevocationModes(t *testing.T) {
	e := newEnv(t)
	e.basic() // SPRING40: K1..K5
	e.createCodes("SPRING40", "K6", "K7", "K8")
	t1 := e.enroll("S001", "T01")
	// K1, K2 issued to A; K3 to B; K4..K8 unissued. K2 redeemed by A, K5 redeemed.
	e.must(200, e.admin("POST", "/v1/offers/SPRING40/issue", "A,K1\nA,K2\nB,K3\n"), "issue")
	e.must(201, t1.redeem("K2", "A", 12000), "redeem K2")
	e.must(201, t1.redeem("K5", "", 12000), "redeem K5")

	revoke := func(body map[string]any) platform.RevokeResult {
		t.Helper()
		return decode[platform.RevokeResult](t, e.must(200, e.admin("POST", "/v1/coupons/revoke", body), "revoke"))
	}
	status := func(codes ...string) []string {
		var out []string
		for _, c := range codes {
			out = append(out, e.coupon(c).Status)
		}
		return out
	}

	// Customers: A's active coupons only (K1); K2 is redeemed and cannot be revoked.
	if r := revoke(map[string]any{"offer_id": "SPRING40", "scope": "customers", "customers": []string{"A"}}); r.Revoked != 1 || r.Skipped != 1 {
		t.Fatalf("scope customers = %+v", r)
	}
	if s := status("K1", "K2", "K3"); !slices.Equal(s, []string{"revoked", "redeemed", "active"}) {
		t.Fatalf("after customers: %v", s)
	}
	// Codes: K6 is revoked; K5 is redeemed: skipped, not counted; K1 already revoked.
	if r := revoke(map[string]any{"codes": []string{"K6", "K5", "K1", "NOPE"}}); r.Revoked != 1 || r.Skipped != 3 {
		t.Fatalf("codes = %+v", r)
	}
	// Unissued: K4, K7, K8 (K6 is gone already, K3 is B's).
	if r := revoke(map[string]any{"offer_id": "SPRING40", "scope": "unissued"}); r.Revoked != 3 {
		t.Fatalf("scope unissued = %+v", r)
	}
	if s := status("K3", "K4", "K7", "K8"); !slices.Equal(s, []string{"active", "revoked", "revoked", "revoked"}) {
		t.Fatalf("after unissued: %v", s)
	}
	// Unredeemed: what is left active, issued or not: K3.
	if r := revoke(map[string]any{"offer_id": "SPRING40", "scope": "unredeemed"}); r.Revoked != 1 {
		t.Fatalf("scope unredeemed = %+v", r)
	}
	if s := status("K2", "K3", "K5"); !slices.Equal(s, []string{"redeemed", "revoked", "redeemed"}) {
		t.Fatalf("after unredeemed: %v", s)
	}
	// Online, a revoked coupon is refused.
	if r := t1.redeem("K3", "B", 12000); r.status != 422 || r.errCode() != "revoked" {
		t.Fatalf("revoked coupon online: %d %s", r.status, r.raw)
	}
	for _, bad := range []map[string]any{
		{},
		{"offer_id": "SPRING40", "scope": "everything"},
		{"offer_id": "SPRING40", "scope": "customers"},
		{"codes": []string{"K1"}, "offer_id": "SPRING40"},
	} {
		if r := e.admin("POST", "/v1/coupons/revoke", bad); r.status != 400 {
			t.Fatalf("revoke %v: %d %s", bad, r.status, r.raw)
		}
	}
	if r := e.admin("POST", "/v1/coupons/revoke", map[string]any{"offer_id": "NOPE", "scope": "unissued"}); r.status != 404 {
		t.Fatalf("unknown offer: %d", r.status)
	}
}
