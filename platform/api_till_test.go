package platform_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/internal/httpapi"
	"github.com/tillkeep/tillkeep/platform"
)

func TestEnrollment(t *testing.T) {
	e := newEnv(t)
	e.putStore("S001")

	t1 := e.enroll("S001", "T01")
	if !strings.HasPrefix(t1.token, "tkt_") {
		t.Fatalf("token %q", t1.token)
	}
	pos := e.must(200, t1.do("GET", "/v1/till/journal", nil), "journal position")
	if pos.str("epoch") == "" || pos.num("acked_seq") != 0 {
		t.Fatalf("position = %s", pos.raw)
	}

	r := e.do("POST", "/v1/till/enroll", "", map[string]any{"store_id": "S001", "till_id": "T01", "enroll_token": enrollToken})
	if r.status != 409 || r.errCode() != "till_already_enrolled" {
		t.Fatalf("second enrollment: %d %s", r.status, r.raw)
	}
	r = e.do("POST", "/v1/till/enroll", "", map[string]any{"store_id": "S404", "till_id": "T01", "enroll_token": enrollToken})
	if r.status != 404 || r.errCode() != "unknown_store" {
		t.Fatalf("unknown store: %d %s", r.status, r.raw)
	}
	r = e.do("POST", "/v1/till/enroll", "", map[string]any{"store_id": "S001", "till_id": "T02", "enroll_token": "wrong-token-0123456789"})
	if r.status != 401 || r.errCode() != "unauthorized" {
		t.Fatalf("wrong enroll token: %d %s", r.status, r.raw)
	}

	// Till endpoints need a valid till token; the admin token is not one.
	for _, tok := range []string{"", "nope", adminToken} {
		if r := e.do("GET", "/v1/till/journal", tok, nil); r.status != 401 {
			t.Fatalf("till call with token %q: %d", tok, r.status)
		}
	}
	// And the ops API refuses a till token.
	if r := e.do("GET", "/v1/conflicts", t1.token, nil); r.status != 401 {
		t.Fatalf("ops call with a till token: %d", r.status)
	}

	// A reset lets the till enroll again; the old token dies and the acked point stays.
	t1.upload(t1.entry("NOPE1", "", 12000, start))
	e.must(200, e.admin("DELETE", "/v1/tills/S001/T01/enrollment", nil), "reset")
	if r := t1.do("GET", "/v1/till/journal", nil); r.status != 401 {
		t.Fatalf("old token after reset: %d", r.status)
	}
	again := e.enroll("S001", "T01")
	pos = e.must(200, again.do("GET", "/v1/till/journal", nil), "position after re-enrollment")
	if pos.num("acked_seq") != 1 {
		t.Fatalf("acked seq lost on re-enrollment: %s", pos.raw)
	}
	tills := e.must(200, e.admin("GET", "/v1/tills", nil), "tills")
	if strings.Contains(string(tills.raw), "token") && strings.Contains(string(tills.raw), "hash") {
		t.Fatalf("tills list leaks token hashes: %s", tills.raw)
	}
	if len(tills.list("tills")) != 1 {
		t.Fatalf("tills = %s", tills.raw)
	}
}

func TestOnlineRedemption(t *testing.T) {
	e := newEnv(t)
	e.basic()
	t1 := e.enroll("S001", "T01")
	t2 := e.enroll("S001", "T02")

	body := map[string]any{
		"redemption_id": "R-1", "transaction_id": "TX-1", "code": "K1", "bill": usd(12000),
		"customer_id": "", "wall_time": start, "hlc": tillkeep.HLC{WallMS: start.UnixMilli()},
	}
	r := e.must(201, t1.do("POST", "/v1/till/redemptions", body), "redeem")
	if r.str("redemption_id") != "R-1" || r.str("mode") != "online" || r.str("status") != "accepted" {
		t.Fatalf("answer = %s", r.raw)
	}
	if d := decode[platform.RedeemResult](t, r).Discount; d != usd(4000) {
		t.Fatalf("discount = %+v", d)
	}

	// The same request again is the first outcome, not a second redemption.
	again := e.must(201, t1.do("POST", "/v1/till/redemptions", body), "retry")
	if string(again.raw) != string(r.raw) {
		t.Fatalf("retry answered %s, first %s", again.raw, r.raw)
	}
	// The same POS transaction under a new redemption id is still the original.
	body2 := clone(body)
	body2["redemption_id"] = "R-1b"
	again = e.must(201, t1.do("POST", "/v1/till/redemptions", body2), "retry with a new redemption id")
	if again.str("redemption_id") != "R-1" {
		t.Fatalf("transaction retry gave %s", again.raw)
	}
	// The same redemption id with another body is refused and recorded.
	body3 := clone(body)
	body3["code"] = "K2"
	r = t1.do("POST", "/v1/till/redemptions", body3)
	if r.status != 409 || r.errCode() != "idempotency_key_reuse" {
		t.Fatalf("reuse: %d %s", r.status, r.raw)
	}
	// ... also by another till.
	r = t2.do("POST", "/v1/till/redemptions", body)
	if r.status != 409 || r.errCode() != "idempotency_key_reuse" {
		t.Fatalf("reuse by another till: %d %s", r.status, r.raw)
	}
	an := e.must(200, e.admin("GET", "/v1/anomalies", nil), "anomalies")
	if n := len(an.list("anomalies")); n != 2 || !strings.Contains(string(an.raw), "idempotency_key_reuse") {
		t.Fatalf("anomalies = %s", an.raw)
	}

	c := e.coupon("K1")
	if c.Status != "redeemed" || c.TimesRedeemed != 1 || len(c.Redemptions) != 1 || c.Redemptions[0].ID != "R-1" || c.Redemptions[0].TillID != "T01" {
		t.Fatalf("coupon after redemption = %+v", c)
	}
	if k2 := e.coupon("K2"); k2.Status != "active" || k2.TimesRedeemed != 0 {
		t.Fatalf("K2 touched: %+v", k2)
	}

	// Refusals answer 422 with the rule engine's code and change nothing.
	cases := []struct {
		code string
		bill int64
		till *till
		want string
		rule string
	}{
		{"K1", 12000, t2, "already_redeemed", ""},
		{"NOPE", 12000, t1, "unknown_coupon", ""},
		{"K2", 5000, t1, "rule_violation", "min_bill"},
	}
	for _, tc := range cases {
		r := tc.till.redeem(tc.code, "", tc.bill)
		if r.status != 422 || r.errCode() != tc.want || (tc.rule != "" && r.errRule() != tc.rule) {
			t.Fatalf("redeem %s bill %d: %d %s, want 422 %s %s", tc.code, tc.bill, r.status, r.raw, tc.want, tc.rule)
		}
	}
	// A store outside the offer's stores.
	e.putStore("S009")
	t9 := e.enroll("S009", "T01")
	if r := t9.redeem("K2", "", 12000); r.status != 422 || r.errRule() != "stores" {
		t.Fatalf("foreign store: %d %s", r.status, r.raw)
	}
	if k2 := e.coupon("K2"); k2.TimesRedeemed != 0 {
		t.Fatalf("a refusal consumed the coupon: %+v", k2)
	}

	// Validation judges without consuming.
	v := e.must(200, t1.do("POST", "/v1/till/validate", map[string]any{"code": "K2", "bill": usd(12000)}), "validate")
	if v.body["valid"] != true || v.body["discount"].(map[string]any)["amount"].(float64) != 4000 {
		t.Fatalf("validate = %s", v.raw)
	}
	v = e.must(200, t1.do("POST", "/v1/till/validate", map[string]any{"code": "K1", "bill": usd(12000)}), "validate used")
	if v.body["valid"] != false || v.str("reason") != "already_redeemed" {
		t.Fatalf("validate used = %s", v.raw)
	}
	if k2 := e.coupon("K2"); k2.TimesRedeemed != 0 {
		t.Fatalf("validation consumed the coupon: %+v", k2)
	}

	// Malformed requests are 400.
	if r := t1.do("POST", "/v1/till/redemptions", map[string]any{"code": "K2"}); r.status != 400 {
		t.Fatalf("missing ids: %d %s", r.status, r.raw)
	}
	if r := t1.do("POST", "/v1/till/redemptions", map[string]any{"redemption_id": "x", "bogus": 1}); r.status != 400 {
		t.Fatalf("unknown field: %d %s", r.status, r.raw)
	}
}

func clone(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestTillReversalTakesTheSamePathBack(t *testing.T) {
	e := newEnv(t)
	e.basic()
	t1 := e.enroll("S001", "T01")
	t2 := e.enroll("S001", "T02")
	r := e.must(201, t1.redeem("K1", "", 12000), "redeem")
	id := r.str("redemption_id")

	if r := t2.do("POST", "/v1/till/redemptions/"+id+"/reverse", nil); r.status != 403 || r.errCode() != "forbidden" {
		t.Fatalf("reversal by another till: %d %s", r.status, r.raw)
	}
	if r := t1.do("POST", "/v1/till/redemptions/nope/reverse", nil); r.status != 404 {
		t.Fatalf("reversal of an unknown redemption: %d %s", r.status, r.raw)
	}
	for range 2 { // idempotent
		r := e.must(200, t1.do("POST", "/v1/till/redemptions/"+id+"/reverse", nil), "reverse")
		if r.str("status") != "reversed" || r.str("redemption_id") != id {
			t.Fatalf("reverse = %s", r.raw)
		}
	}
	if c := e.coupon("K1"); c.Status != "active" || c.TimesRedeemed != 0 {
		t.Fatalf("coupon after reversal = %+v", c)
	}
	// The coupon can be used again, once.
	e.must(201, t2.redeem("K1", "", 12000), "redeem after reversal")
	if r := t1.redeem("K1", "", 12000); r.status != 422 {
		t.Fatalf("second use after reinstatement: %d", r.status)
	}
}

func TestJournalUploadIsIdempotentAndAcknowledgedOnlineRedemptions(t *testing.T) {
	e := newEnv(t)
	e.basic()
	t1 := e.enroll("S001", "T01")

	// An online redemption, later journaled by the till as entry 1.
	on := e.must(201, t1.do("POST", "/v1/till/redemptions", map[string]any{
		"redemption_id": "S001-T01-0001", "transaction_id": "tx-S001-T01-0001", "code": "K1", "bill": usd(12000),
		"wall_time": start, "hlc": tillkeep.HLC{WallMS: start.UnixMilli()},
	}), "online redeem")
	_ = on
	e1 := t1.entry("K1", "", 12000, start)
	e1.Mode = tillkeep.ModeOnline
	e2 := t1.entry("K2", "", 12000, start.Add(time.Minute))
	e3 := t1.entry("K3", "", 12000, start.Add(2*time.Minute))
	batch := []tillkeep.JournalEntry{e1, e2, e3}

	ack := t1.upload(batch...)
	if ack.AckedSeq != 3 || ack.ResumeFrom != 0 || len(ack.Results) != 3 || ack.Epoch == "" {
		t.Fatalf("ack = %+v", ack)
	}
	if !ack.Results[0].Duplicate || ack.Results[0].Status != "accepted" {
		t.Fatalf("the online redemption must be acknowledged, not re-applied: %+v", ack.Results[0])
	}
	for _, res := range ack.Results[1:] {
		if res.Status != "accepted" || res.Duplicate {
			t.Fatalf("result = %+v", res)
		}
	}
	// The same batch again: nothing new.
	ack = t1.upload(batch...)
	if ack.AckedSeq != 3 || len(ack.Results) != 3 {
		t.Fatalf("second ack = %+v", ack)
	}
	for _, res := range ack.Results {
		if !res.Duplicate || res.Status != "accepted" {
			t.Fatalf("second upload result = %+v", res)
		}
	}
	for _, code := range []string{"K1", "K2", "K3"} {
		if c := e.coupon(code); c.TimesRedeemed != 1 || len(c.Redemptions) != 1 {
			t.Fatalf("%s after two uploads = %+v", code, c)
		}
	}
	list := e.must(200, e.admin("GET", "/v1/redemptions?till_id=T01", nil), "list")
	if n := len(list.list("redemptions")); n != 3 {
		t.Fatalf("%d redemptions, want 3: %s", n, list.raw)
	}
	// The journaled online redemption learned its sequence.
	if r := e.redemption("S001-T01-0001"); r.Seq != 1 || r.Mode != "online" {
		t.Fatalf("online redemption after journaling = %+v", r)
	}
	// A redemption id is unique forever: the same entry under a new sequence (a till
	// whose journal was restored) is acknowledged, not applied.
	e4 := e2
	e4.Seq = 4
	ack = t1.upload(e4)
	if ack.AckedSeq != 4 || !ack.Results[0].Duplicate {
		t.Fatalf("re-sequenced entry: %+v", ack)
	}
	if c := e.coupon("K2"); c.TimesRedeemed != 1 {
		t.Fatalf("K2 counted twice: %+v", c)
	}
}

func TestJournalGapAnswersResumePoint(t *testing.T) {
	e := newEnv(t)
	e.basic()
	t1 := e.enroll("S001", "T01")
	es := []tillkeep.JournalEntry{
		t1.entry("K1", "", 12000, start), t1.entry("K2", "", 12000, start),
		t1.entry("K3", "", 12000, start), t1.entry("K4", "", 12000, start), t1.entry("K5", "", 12000, start),
	}
	ack := t1.upload(es[0], es[1], es[3], es[4]) // 3 is missing
	if ack.AckedSeq != 2 || ack.ResumeFrom != 3 || len(ack.Results) != 2 {
		t.Fatalf("ack with a gap = %+v", ack)
	}
	if c := e.coupon("K4"); c.TimesRedeemed != 0 {
		t.Fatalf("an entry after the gap was applied: %+v", c)
	}
	// Entries out of order in one batch are fine: they are applied by sequence.
	ack = t1.upload(es[4], es[2], es[3])
	if ack.AckedSeq != 5 || ack.ResumeFrom != 0 || len(ack.Results) != 3 || ack.Results[0].Seq != 3 {
		t.Fatalf("ack after resume = %+v", ack)
	}
	pos := e.must(200, t1.do("GET", "/v1/till/journal", nil), "position")
	if pos.num("acked_seq") != 5 {
		t.Fatalf("position = %s", pos.raw)
	}
}

func TestTillCannotUploadAsAnotherTill(t *testing.T) {
	e := newEnv(t)
	e.basic()
	t1 := e.enroll("S001", "T01")
	t2 := e.enroll("S001", "T02")
	foreign := t2.entry("K1", "", 12000, start)
	own := t1.entry("K2", "", 12000, start)
	r := t1.do("POST", "/v1/till/journal", map[string]any{"entries": []tillkeep.JournalEntry{own, foreign}})
	if r.status != 403 || r.errCode() != "forbidden" {
		t.Fatalf("impersonation: %d %s", r.status, r.raw)
	}
	if c := e.coupon("K2"); c.TimesRedeemed != 0 {
		t.Fatalf("a refused upload applied an entry: %+v", c)
	}
	an := e.must(200, e.admin("GET", "/v1/anomalies", nil), "anomalies")
	if !strings.Contains(string(an.raw), "till_impersonation") {
		t.Fatalf("impersonation not recorded: %s", an.raw)
	}
	// Another store's till id is refused the same way.
	other := own
	other.StoreID = "S002"
	if r := t1.do("POST", "/v1/till/journal", map[string]any{"entries": []tillkeep.JournalEntry{other}}); r.status != 403 {
		t.Fatalf("other store: %d", r.status)
	}
}

// findCase returns the open case for (code, kind).
func findCase(t *testing.T, e *env, code, kind string) map[string]any {
	t.Helper()
	var found map[string]any
	for _, c := range e.conflicts("open") {
		if c["code"] == code && c["kind"] == kind {
			if found != nil {
				t.Fatalf("two open cases for %s/%s", code, kind)
			}
			found = c
		}
	}
	if found == nil {
		t.Fatalf("no open %s case for %s; cases: %v", kind, code, e.conflicts(""))
	}
	return found
}

func TestDoubleRedemptionAcrossTills(t *testing.T) {
	e := newEnv(t)
	e.basic()
	t1 := e.enroll("S001", "T01")
	t2 := e.enroll("S001", "T02")
	t3 := e.enroll("S002", "T01")
	e.clock.Add(3 * time.Hour) // the outage is over; uploads arrive

	a1 := t1.upload(t1.entry("K1", "", 12000, start.Add(10*time.Minute)))
	if a1.Results[0].Status != "accepted" {
		t.Fatalf("first use = %+v", a1.Results[0])
	}
	a2 := t2.upload(t2.entry("K1", "", 12000, start.Add(20*time.Minute)))
	res := a2.Results[0]
	if res.Status != "conflict" || res.ConflictKind != "double_redemption" || res.ConflictID == "" {
		t.Fatalf("second use = %+v", res)
	}
	c := findCase(t, e, "K1", "double_redemption")
	if !slices.Equal(strs(c["till_ids"]), []string{"T02", "T01"}) && !slices.Equal(strs(c["till_ids"]), []string{"T01", "T02"}) {
		t.Fatalf("case till ids = %v", c["till_ids"])
	}
	if ids := strs(c["redemption_ids"]); len(ids) != 2 {
		t.Fatalf("case redemption ids = %v", ids)
	}
	// auto_revoke: the coupon is revoked in the same transaction.
	k1 := e.coupon("K1")
	if k1.Status != "revoked" || k1.TimesRedeemed != 2 || len(k1.Redemptions) != 2 {
		t.Fatalf("coupon after double use = %+v", k1)
	}
	// Online, nobody can use it any more.
	t4 := e.enroll("S002", "T04")
	if r := t4.redeem("K1", "", 12000); r.status != 422 || r.errCode() != "revoked" {
		t.Fatalf("online after auto-revoke: %d %s", r.status, r.raw)
	}

	// A third till joins the same case (one case per code and kind). Its stamp is the
	// earliest of all, so it wins; the others are in conflict. The revocation came
	// after all three uses, so none is "after revocation".
	a3 := t3.upload(t3.entry("K1", "", 12000, start.Add(5*time.Minute)))
	if r := a3.Results[0]; r.Status != "accepted" || r.ConflictKind != "double_redemption" || r.ConflictID != res.ConflictID {
		t.Fatalf("earliest stamp arriving last = %+v", r)
	}
	d := e.conflict(res.ConflictID)
	if len(d.RedemptionIDs) != 3 || len(d.TillIDs) != 2 || len(d.StoreIDs) != 2 || !slices.Equal(d.WinnerIDs, []string{"S002-T01-0001"}) {
		t.Fatalf("case after the third use = %+v", d.Conflict)
	}
	statuses := map[string]string{}
	for _, r := range d.Redemptions {
		statuses[r.ID] = r.Status
		if r.ConflictID != d.ID {
			t.Fatalf("redemption %s not linked to the case", r.ID)
		}
	}
	want := map[string]string{"S002-T01-0001": "accepted", "S001-T01-0001": "conflict", "S001-T02-0001": "conflict"}
	if !mapsEqual(statuses, want) {
		t.Fatalf("statuses = %v, want %v", statuses, want)
	}
	if n := len(e.conflicts("open")); n != 1 {
		t.Fatalf("%d open cases, want 1", n)
	}
	// The change log tells tills what changed.
	var changes []platform.Change
	if err := e.store.View(t.Context(), func(tx platform.ReadTx) error {
		var err error
		changes, err = tx.ChangesSince(0, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	revoked := false
	for _, ch := range changes {
		if ch.Entity == platform.EntityCoupon && ch.Key == "K1" && ch.Event == platform.EventRevoked {
			revoked = true
		}
	}
	if !revoked {
		t.Fatal("the automatic revocation is not in the change log")
	}
}

func mapsEqual(a, b map[string]string) bool {
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

func TestOnlineRedemptionBeatsOfflineOnes(t *testing.T) {
	e := newEnvWith(t, envOptions{autoRevoke: false})
	e.basic()
	t1 := e.enroll("S001", "T01")
	t2 := e.enroll("S001", "T02")
	e.clock.Add(time.Hour)
	on := e.must(201, t1.redeem("K1", "", 12000), "online")
	// An offline use stamped earlier than the online one still loses.
	ack := t2.upload(t2.entry("K1", "", 12000, start))
	if r := ack.Results[0]; r.Status != "conflict" || r.ConflictKind != "double_redemption" {
		t.Fatalf("offline vs online = %+v", r)
	}
	d := e.conflict(ack.Results[0].ConflictID)
	if !slices.Equal(d.WinnerIDs, []string{on.str("redemption_id")}) {
		t.Fatalf("winners = %v", d.WinnerIDs)
	}
	// Without auto_revoke the coupon is not revoked, just used up.
	if c := e.coupon("K1"); c.Status != "redeemed" || c.TimesRedeemed != 2 {
		t.Fatalf("coupon = %+v", c)
	}
}

func TestConflictKindsFromUploads(t *testing.T) {
	e := newEnv(t)
	e.basic()
	e.createOffer("LIMITS", func(o map[string]any) {
		r := rules(o)
		r["max_redemptions_per_customer"] = 1
	})
	e.createCodes("LIMITS", "L1", "L2", "L3")
	e.createOffer("ONCE", func(o map[string]any) { rules(o)["max_redemptions_per_offer"] = 1 })
	e.createCodes("ONCE", "O1", "O2")
	e.createOffer("SHORT", func(o map[string]any) { o["valid_until"] = "2026-06-10T00:00:00Z" })
	e.createCodes("SHORT", "S1")
	e.must(200, e.admin("PUT", "/v1/customers/C1", map[string]any{"email": "c1@example.com"}), "customer")
	t1 := e.enroll("S001", "T01")
	e.clock.Set(start.Add(15 * 24 * time.Hour)) // uploads arrive two weeks later

	// Revoked centrally at start+1h; one use before, one after.
	e.clock.Set(start.Add(time.Hour))
	e.must(200, e.admin("POST", "/v1/coupons/revoke", map[string]any{"codes": []string{"K2", "K3"}}), "revoke")
	e.clock.Set(start.Add(15 * 24 * time.Hour))

	entries := []tillkeep.JournalEntry{
		t1.entry("K2", "", 12000, start.Add(2*time.Hour)),                       // after revocation
		t1.entry("K3", "", 12000, start.Add(30*time.Minute)),                    // before it: fine
		t1.entry("S1", "", 12000, time.Date(2026, 6, 11, 9, 0, 0, 0, time.UTC)), // after expiry
		t1.entry("L1", "C1", 12000, start.Add(3*time.Hour)),
		t1.entry("L2", "C1", 12000, start.Add(4*time.Hour)), // customer limit
		t1.entry("O1", "", 12000, start.Add(3*time.Hour)),
		t1.entry("O2", "", 12000, start.Add(4*time.Hour)), // offer limit
		t1.entry("GHOST", "", 12000, start.Add(5*time.Hour)),
		t1.entry("K4", "", 5000, start.Add(5*time.Hour)), // under min_bill
	}
	greedy := t1.entry("K5", "", 12000, start.Add(5*time.Hour)) // more discount than the offer grants
	greedy.Discount = usd(5000)
	entries = append(entries, greedy)
	ack := t1.upload(entries...)
	if ack.AckedSeq != uint64(len(entries)) || ack.ResumeFrom != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	want := []struct{ status, kind string }{
		{"conflict", "redeemed_after_revocation"},
		{"accepted", ""},
		{"conflict", "redeemed_after_expiry"},
		{"accepted", ""},
		{"conflict", "customer_limit_exceeded"},
		{"accepted", ""},
		{"conflict", "offer_limit_exceeded"},
		{"conflict", "unknown_coupon"},
		{"conflict", "rule_violation"},
		{"conflict", "rule_violation"},
	}
	for i, w := range want {
		got := ack.Results[i]
		if got.Status != w.status || got.ConflictKind != w.kind || (w.kind != "" && got.ConflictID == "") {
			t.Fatalf("entry %d (%s): %+v, want %s %s", i+1, entries[i].Code, got, w.status, w.kind)
		}
	}
	rv := findCase(t, e, "K4", "rule_violation")
	if rv["rule"] != "min_bill" {
		t.Fatalf("rule violation case = %v", rv)
	}
	if rv := findCase(t, e, "K5", "rule_violation"); rv["rule"] != "discount" {
		t.Fatalf("excess discount case = %v", rv)
	}
	for _, k := range []struct{ code, kind string }{
		{"K2", "redeemed_after_revocation"}, {"S1", "redeemed_after_expiry"}, {"L2", "customer_limit_exceeded"},
		{"O2", "offer_limit_exceeded"}, {"GHOST", "unknown_coupon"},
	} {
		findCase(t, e, k.code, k.kind)
	}
	// Every redemption is recorded, and limits count conflicting ones too.
	if c := e.coupon("L2"); c.TimesRedeemed != 1 || len(c.Redemptions) != 1 || c.Redemptions[0].Status != "conflict" {
		t.Fatalf("L2 = %+v", c)
	}
	if r := e.redemption(entries[7].RedemptionID); r.Status != "conflict" || r.Consumed || r.ConflictKind != "unknown_coupon" {
		t.Fatalf("unknown coupon redemption = %+v", r)
	}
	off := e.must(200, e.admin("GET", "/v1/offers/ONCE", nil), "offer")
	if u := off.body["usage"].(map[string]any); u["redemptions"].(float64) != 2 {
		t.Fatalf("offer usage = %v", u)
	}
	// auto_revoke revoked the coupons the conflicts were flagged on.
	for _, code := range []string{"S1", "L2", "O2", "K4"} {
		if c := e.coupon(code); c.Status != "revoked" {
			t.Fatalf("%s not auto-revoked: %+v", code, c)
		}
	}
	if c := e.coupon("K3"); c.Status != "revoked" || c.TimesRedeemed != 1 || c.Redemptions[0].Status != "accepted" {
		t.Fatalf("K3 (used before its revocation) = %+v", c)
	}

	// A later redemption of the same code and kind joins the open case.
	t2 := e.enroll("S001", "T02")
	a := t2.upload(t2.entry("GHOST", "", 12000, start.Add(6*time.Hour)))
	ghost := findCase(t, e, "GHOST", "unknown_coupon")
	if a.Results[0].ConflictID != ghost["id"] || len(strs(ghost["redemption_ids"])) != 2 || len(strs(ghost["till_ids"])) != 2 {
		t.Fatalf("second unknown use: %+v, case %v", a.Results[0], ghost)
	}
}

func TestClockSkewIsFlaggedNotRefused(t *testing.T) {
	e := newEnvWith(t, envOptions{autoRevoke: true, maxSkew: time.Minute})
	e.basic()
	t1 := e.enroll("S001", "T01")
	e.clock.Set(start.Add(time.Hour))
	// The till's wall clock is a day behind its HLC (seeded from the platform).
	en := t1.entry("K1", "", 12000, start)
	en.WallTime = start.Add(-24 * time.Hour)
	// And one stamped in the future: judged at receipt, flagged.
	fut := t1.entry("K2", "", 12000, start.Add(48*time.Hour))
	ok := t1.entry("K3", "", 12000, start.Add(10*time.Second))
	ack := t1.upload(en, fut, ok)
	for i, r := range ack.Results {
		if r.Status != "accepted" {
			t.Fatalf("entry %d = %+v", i+1, r)
		}
	}
	r1, r2, r3 := e.redemption(en.RedemptionID), e.redemption(fut.RedemptionID), e.redemption(ok.RedemptionID)
	if !slices.Contains(r1.Flags, platform.FlagClockSkew) || r1.SkewMS != -24*3600*1000 || !r1.EventAt.Equal(start) || !r1.At.Equal(en.WallTime) {
		t.Fatalf("skewed redemption = %+v", r1)
	}
	if !slices.Contains(r2.Flags, platform.FlagClockSkew) || !r2.EventAt.Equal(e.clock.Now()) {
		t.Fatalf("future redemption = %+v", r2)
	}
	if len(r3.Flags) != 0 || !r3.ReceivedAt.Equal(e.clock.Now()) {
		t.Fatalf("normal redemption = %+v", r3)
	}
	if n := len(e.conflicts("")); n != 0 {
		t.Fatalf("clock skew opened %d cases", n)
	}
	m := e.must(200, e.do("GET", "/metrics", "", nil), "metrics")
	if !strings.Contains(string(m.raw), "tillkeep_platform_clock_skew_total 2") {
		t.Fatalf("skew metric missing:\n%s", grep(string(m.raw), "clock_skew"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestJournalReversalEntries(t *testing.T) {
	e := newEnv(t)
	e.basic()
	t1 := e.enroll("S001", "T01")
	t2 := e.enroll("S001", "T02")
	r1 := t1.entry("K1", "", 12000, start)
	ack := t1.upload(r1, t1.reversal(r1.RedemptionID, start.Add(time.Minute)))
	if ack.Results[1].Status != "reversed" || ack.AckedSeq != 2 {
		t.Fatalf("ack = %+v", ack)
	}
	if c := e.coupon("K1"); c.Status != "active" || c.TimesRedeemed != 0 {
		t.Fatalf("coupon after a journaled reversal = %+v", c)
	}
	red := e.redemption(r1.RedemptionID)
	if !red.IsReversed || red.Status != "reversed" || red.LastStatusChangeOn.IsZero() {
		t.Fatalf("redemption = %+v", red)
	}
	// A reversal of another till's redemption, or of nothing, is recorded and skipped:
	// it never blocks the journal.
	o := t2.entry("K2", "", 12000, start)
	t2.upload(o)
	ack = t1.upload(t1.reversal(o.RedemptionID, start), t1.reversal("never-seen", start))
	if ack.AckedSeq != 4 || ack.Results[0].Status != platform.EntryIgnored || ack.Results[1].Status != platform.EntryIgnored {
		t.Fatalf("ack = %+v", ack)
	}
	if c := e.coupon("K2"); c.TimesRedeemed != 1 {
		t.Fatalf("another till's redemption was reversed: %+v", c)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.basic()
	t1 := e.enroll("S001", "T01")
	e.must(201, t1.redeem("K1", "", 12000), "online")
	t1.upload(t1.entry("K2", "", 12000, start), t1.entry("K2", "", 12000, start.Add(time.Minute)))
	epoch := e.must(200, t1.do("GET", "/v1/till/journal", nil), "position").str("epoch")

	e.restart()

	pos := e.must(200, t1.do("GET", "/v1/till/journal", nil), "position after restart")
	if pos.num("acked_seq") != 2 || pos.str("epoch") != epoch {
		t.Fatalf("position after restart = %s (epoch was %s)", pos.raw, epoch)
	}
	if c := e.coupon("K1"); c.Status != "redeemed" {
		t.Fatalf("K1 = %+v", c)
	}
	if n := len(e.conflicts("open")); n != 1 {
		t.Fatalf("%d open cases after restart", n)
	}
	if r := t1.redeem("K1", "", 12000); r.errCode() != "already_redeemed" && r.errCode() != "revoked" {
		t.Fatalf("K1 again after restart: %s", r.raw)
	}
	e.must(201, t1.redeem("K3", "", 12000), "redeem after restart")
}

// TestExtraRoutes checks the extension points other parts of the platform (the catalog
// feed) use: their routes get the same authentication as the built-in ones.
func TestExtraRoutes(t *testing.T) {
	e := newEnv(t)
	e.putStore("S001")
	e.srv.HandleTill("GET /v1/till/whoami", func(w http.ResponseWriter, r *http.Request, tr platform.TillRef) error {
		httpapi.WriteJSON(w, 200, tr)
		return nil
	})
	e.srv.HandleOps("GET /v1/ping", func(w http.ResponseWriter, r *http.Request) error {
		return tillkeep.Errorf(tillkeep.CodeConflict, "pong")
	})
	t1 := e.enroll("S001", "T01")
	if r := e.must(200, t1.do("GET", "/v1/till/whoami", nil), "whoami"); r.str("store_id") != "S001" || r.str("till_id") != "T01" {
		t.Fatalf("whoami = %s", r.raw)
	}
	if r := e.do("GET", "/v1/till/whoami", adminToken, nil); r.status != 401 {
		t.Fatalf("whoami with the admin token: %d", r.status)
	}
	if r := e.admin("GET", "/v1/ping", nil); r.status != 409 || r.errCode() != "conflict" {
		t.Fatalf("ping: %d %s", r.status, r.raw)
	}
	if r := t1.do("GET", "/v1/ping", nil); r.status != 401 {
		t.Fatalf("ping with a till token: %d", r.status)
	}
}
