package platform_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep/platform"
)

func TestOpsAPINeedsTheAdminToken(t *testing.T) {
	e := newEnv(t)
	for _, tok := range []string{"", "wrong-token-0123456789"} {
		r := e.do("GET", "/v1/conflicts", tok, nil)
		if r.status != 401 || r.errCode() != "unauthorized" || r.str("error") != "" && r.body["error"] == nil {
			t.Fatalf("token %q: %d %s", tok, r.status, r.raw)
		}
	}
	if r := e.do("GET", "/healthz", "", nil); r.status != 200 || r.str("status") != "ok" {
		t.Fatalf("healthz: %d %s", r.status, r.raw)
	}
	if r := e.do("GET", "/metrics", "", nil); r.status != 200 || !strings.Contains(string(r.raw), "tillkeep_platform_http_requests_total") {
		t.Fatalf("metrics: %d", r.status)
	}
}

func TestStoresCustomersOffers(t *testing.T) {
	e := newEnv(t)
	r := e.must(200, e.admin("PUT", "/v1/stores/S001", map[string]any{
		"name": "Main St", "zone": "east", "concept": "mall", "timezone": "America/New_York", "currency": "usd",
	}), "put store")
	if r.str("id") != "S001" || r.str("currency") != "USD" || r.str("timezone") != "America/New_York" {
		t.Fatalf("store = %s", r.raw)
	}
	if r := e.admin("PUT", "/v1/stores/S002", map[string]any{"timezone": "Mars/Olympus"}); r.status != 400 || r.errCode() != "invalid_request" {
		t.Fatalf("bad zone: %d %s", r.status, r.raw)
	}
	if r := e.admin("PUT", "/v1/stores/S002", map[string]any{"currency": "dollars"}); r.status != 400 {
		t.Fatalf("bad currency: %d %s", r.status, r.raw)
	}
	if r := e.admin("PUT", "/v1/stores/S002", map[string]any{"nmae": "typo"}); r.status != 400 {
		t.Fatalf("unknown field: %d %s", r.status, r.raw)
	}
	e.putStore("S002")
	if r := e.must(200, e.admin("GET", "/v1/stores", nil), "list"); len(r.list("stores")) != 2 {
		t.Fatalf("stores = %s", r.raw)
	}
	if r := e.must(200, e.admin("GET", "/v1/stores?limit=1", nil), "page"); len(r.list("stores")) != 1 || r.str("next_cursor") != "S001" {
		t.Fatalf("page = %s", r.raw)
	}
	if r := e.admin("GET", "/v1/stores/S404", nil); r.status != 404 || r.errCode() != "not_found" {
		t.Fatalf("unknown store: %d %s", r.status, r.raw)
	}

	r = e.must(200, e.admin("PUT", "/v1/customers/C1", map[string]any{
		"mobile": "+15551234567", "email": "c1@example.com", "registered_at": "2026-01-02T03:04:05Z", "transactions": 7,
	}), "put customer")
	if r.str("id") != "C1" || r.num("transactions") != 7 || r.str("registered_at") != "2026-01-02T03:04:05Z" {
		t.Fatalf("customer = %s", r.raw)
	}
	e.must(200, e.admin("PUT", "/v1/customers/C2", map[string]any{}), "customer with no fields")
	if r := e.must(200, e.admin("GET", "/v1/customers/C1", nil), "get customer"); r.str("email") != "c1@example.com" {
		t.Fatalf("customer = %s", r.raw)
	}
	if r := e.admin("PUT", "/v1/customers/C3", map[string]any{"transactions": -1}); r.status != 400 {
		t.Fatalf("negative transactions: %d", r.status)
	}

	r = e.must(201, e.admin("POST", "/v1/offers", offerJSON("SPRING40")), "create offer")
	if r.str("id") != "SPRING40" || r.str("code_kind") != "unique" || r.str("created_at") == "" {
		t.Fatalf("offer = %s", r.raw)
	}
	if r := e.admin("POST", "/v1/offers", offerJSON("SPRING40")); r.status != 409 || r.errCode() != "conflict" {
		t.Fatalf("existing offer id: %d %s", r.status, r.raw)
	}
	pct := offerJSON("PCT15", func(o map[string]any) {
		o["discount"] = map[string]any{"type": "percent", "percent": 15, "max_amount": 2000, "currency": "USD"}
	})
	e.must(201, e.admin("POST", "/v1/offers", pct), "percent offer")
	bad := offerJSON("BAD", func(o map[string]any) { o["name"] = "" })
	if r := e.admin("POST", "/v1/offers", bad); r.status != 400 || !strings.Contains(r.raw2(), "name") {
		t.Fatalf("offer without a name: %d %s", r.status, r.raw)
	}
	list := e.must(200, e.admin("GET", "/v1/offers", nil), "list offers")
	if len(list.list("offers")) != 2 {
		t.Fatalf("offers = %s", list.raw)
	}
	got := e.must(200, e.admin("GET", "/v1/offers/PCT15", nil), "get offer")
	if got.body["discount"].(map[string]any)["percent"].(float64) != 15 || got.body["usage"] == nil {
		t.Fatalf("offer = %s", got.raw)
	}
}

func (r resp) raw2() string { return string(r.raw) }

func TestCreateCoupons(t *testing.T) {
	e := newEnv(t)
	e.putStore("S001")
	e.createOffer("SPRING40")
	r := e.must(201, e.admin("POST", "/v1/offers/SPRING40/coupons", map[string]any{"codes": []string{"C1", "C2", "C1", "bad code!"}}), "codes")
	res := decode[platform.CreateResult](t, r)
	if res.Created != 2 || len(res.Errors) != 2 {
		t.Fatalf("result = %+v", res)
	}
	reasons := map[string]string{}
	for _, e := range res.Errors {
		reasons[e.Code] = e.Reason
	}
	if reasons["C1"] != "duplicate_code" || reasons["bad code!"] != "invalid_code" {
		t.Fatalf("errors = %+v", res.Errors)
	}
	// Existing codes are listed and the rest goes through.
	r = e.must(201, e.admin("POST", "/v1/offers/SPRING40/coupons", map[string]any{"codes": []string{"C2", "C3"}}), "codes again")
	if res := decode[platform.CreateResult](t, r); res.Created != 1 || len(res.Errors) != 1 || res.Errors[0].Code != "C2" || res.Errors[0].Reason != "duplicate_code" {
		t.Fatalf("second batch = %s", r.raw)
	}
	// Nothing created: 422.
	r = e.admin("POST", "/v1/offers/SPRING40/coupons", map[string]any{"codes": []string{"C1", "C2"}})
	if r.status != 422 || r.errCode() != "nothing_created" || !strings.Contains(r.raw2(), "2 duplicate_code") {
		t.Fatalf("all duplicates: %d %s", r.status, r.raw)
	}
	if r := e.admin("POST", "/v1/offers/NOPE/coupons", map[string]any{"codes": []string{"X"}}); r.status != 404 {
		t.Fatalf("unknown offer: %d %s", r.status, r.raw)
	}
	if r := e.admin("POST", "/v1/offers/SPRING40/coupons", map[string]any{"codes": []string{"X"}, "generate": map[string]any{"count": 1, "length": 10}}); r.status != 400 {
		t.Fatalf("two kinds at once: %d %s", r.status, r.raw)
	}

	// The contract's coupon view.
	c := e.must(200, e.admin("GET", "/v1/coupons/C1", nil), "get coupon")
	if c.str("code") != "C1" || c.str("offer_id") != "SPRING40" || c.str("status") != "active" || c.body["redemptions"] == nil || len(c.list("redemptions")) != 0 {
		t.Fatalf("coupon = %s", c.raw)
	}
	if r := e.admin("GET", "/v1/coupons/NOPE", nil); r.status != 404 {
		t.Fatalf("unknown coupon: %d", r.status)
	}
	// Expired is derived from the clock.
	e.clock.Set(time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC))
	if c := e.coupon("C1"); c.Status != "expired" {
		t.Fatalf("coupon after the offer ended = %+v", c)
	}
}

func TestGenerateCoupons(t *testing.T) {
	e := newEnv(t)
	e.putStore("S001")
	e.createOffer("GEN")
	r := e.must(201, e.admin("POST", "/v1/offers/GEN/coupons", map[string]any{"generate": map[string]any{"count": 25000, "length": 10, "prefix": "SP"}}), "generate")
	if r.num("created") != 25000 {
		t.Fatalf("generate = %s", r.raw)
	}
	// A second request continues the series: no code repeats.
	r = e.must(201, e.admin("POST", "/v1/offers/GEN/coupons", map[string]any{"generate": map[string]any{"count": 5000, "length": 10, "prefix": "SP"}}), "generate more")
	if r.num("created") != 5000 {
		t.Fatalf("generate more = %s", r.raw)
	}
	off := e.must(200, e.admin("GET", "/v1/offers/GEN", nil), "offer")
	if u := off.body["usage"].(map[string]any); u["coupons"].(float64) != 30000 {
		t.Fatalf("usage = %v", u)
	}
	seen := map[string]bool{}
	if err := e.store.View(t.Context(), func(tx platform.ReadTx) error {
		cs, err := tx.CouponsByOffer("GEN", "", 0)
		for _, c := range cs {
			if seen[c.Code] || !strings.HasPrefix(c.Code, "SP") || len(c.Code) != 10 {
				return fmt.Errorf("bad or repeated code %q", c.Code)
			}
			seen[c.Code] = true
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 30000 {
		t.Fatalf("%d distinct codes stored", len(seen))
	}
	// A count that makes guessing easy is refused before anything is made.
	r = e.admin("POST", "/v1/offers/GEN/coupons", map[string]any{"generate": map[string]any{"count": 1000, "length": 6, "charset": "numeric"}})
	if r.status != 400 || !strings.Contains(r.raw2(), "too short") {
		t.Fatalf("unsafe generate: %d %s", r.status, r.raw)
	}
}

func TestCommonAndRandomizedCommonCodes(t *testing.T) {
	e := newEnv(t)
	e.putStore("S001")
	e.createOffer("COMMON", func(o map[string]any) {
		o["code_kind"] = "common"
		rules(o)["max_redemptions_per_coupon"] = 1000000
		rules(o)["max_redemptions_per_customer"] = 1
	})
	e.createOffer("RC1", func(o map[string]any) { o["code_kind"] = "randomized_common" })
	e.createOffer("RC2", func(o map[string]any) { o["code_kind"] = "randomized_common" })

	e.must(201, e.admin("POST", "/v1/offers/COMMON/coupons", map[string]any{"common": map[string]any{"code": "SUMMER"}}), "common")
	if r := e.admin("POST", "/v1/offers/COMMON/coupons", map[string]any{"common": map[string]any{"code": "SUMMER2"}}); r.status != 409 {
		t.Fatalf("second common code: %d %s", r.status, r.raw)
	}
	if r := e.admin("POST", "/v1/offers/COMMON/coupons", map[string]any{"codes": []string{"X1"}}); r.status != 400 {
		t.Fatalf("unique codes on a common offer: %d %s", r.status, r.raw)
	}
	// Everyone redeems the common code, each customer once.
	t1 := e.enroll("S001", "T01")
	e.must(201, t1.redeem("SUMMER", "A", 12000), "A")
	e.must(201, t1.redeem("SUMMER", "B", 12000), "B")
	if r := t1.redeem("SUMMER", "A", 12000); r.status != 422 || r.errRule() != "max_redemptions_per_customer" {
		t.Fatalf("A again: %d %s", r.status, r.raw)
	}

	r := e.must(201, e.admin("POST", "/v1/offers/RC1/coupons", map[string]any{"randomized_common": map[string]any{"fixed": "AB", "count": 200, "length": 6}}), "randomized")
	if r.num("created") != 200 {
		t.Fatalf("randomized = %s", r.raw)
	}
	if err := e.store.View(t.Context(), func(tx platform.ReadTx) error {
		cs, err := tx.CouponsByOffer("RC1", "", 0)
		if len(cs) != 200 {
			return fmt.Errorf("%d codes", len(cs))
		}
		for _, c := range cs {
			if !strings.HasPrefix(c.Code, "AB") || len(c.Code) != 6 {
				return fmt.Errorf("code %q", c.Code)
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The fixed part is unique in the organisation.
	r = e.admin("POST", "/v1/offers/RC2/coupons", map[string]any{"randomized_common": map[string]any{"fixed": "A", "count": 10, "length": 6}})
	if r.status != 409 || !strings.Contains(r.raw2(), "overlaps") {
		t.Fatalf("overlapping fixed part: %d %s", r.status, r.raw)
	}
	e.must(201, e.admin("POST", "/v1/offers/RC2/coupons", map[string]any{"randomized_common": map[string]any{"fixed": "CD", "count": 10, "length": 6}}), "other fixed part")
	// The same offer may continue its own series.
	e.must(201, e.admin("POST", "/v1/offers/RC1/coupons", map[string]any{"randomized_common": map[string]any{"fixed": "AB", "count": 10, "length": 6}}), "continue")
}

func TestOpsReversal(t *testing.T) {
	e := newEnv(t)
	e.basic()
	t1 := e.enroll("S001", "T01")
	id := e.must(201, t1.redeem("K1", "", 12000), "redeem").str("redemption_id")
	e.clock.Add(time.Hour)
	r := e.must(200, e.admin("POST", "/v1/redemptions/"+id+"/reverse", nil), "reverse")
	red := decode[platform.Redemption](t, r)
	if red.Status != "reversed" || !red.IsReversed || !red.LastStatusChangeOn.Equal(e.clock.Now()) || red.ReversedBy != "admin" {
		t.Fatalf("reversed redemption = %+v", red)
	}
	if c := e.coupon("K1"); c.Status != "active" || c.TimesRedeemed != 0 {
		t.Fatalf("coupon not reinstated: %+v", c)
	}
	// Again: no change.
	e.must(200, e.admin("POST", "/v1/redemptions/"+id+"/reverse", nil), "reverse again")
	if c := e.coupon("K1"); c.TimesRedeemed != 0 {
		t.Fatalf("second reversal changed the coupon: %+v", c)
	}
	if r := e.admin("POST", "/v1/redemptions/nope/reverse", nil); r.status != 404 {
		t.Fatalf("unknown redemption: %d", r.status)
	}
	// A revoked coupon stays revoked when its redemption is reversed.
	id2 := e.must(201, t1.redeem("K2", "", 12000), "redeem K2").str("redemption_id")
	e.must(200, e.admin("POST", "/v1/coupons/revoke", map[string]any{"codes": []string{"K2"}}), "revoke K2")
	e.must(200, e.admin("POST", "/v1/redemptions/"+id2+"/reverse", nil), "reverse K2")
	if c := e.coupon("K2"); c.Status != "redeemed" && c.Status != "active" && c.TimesRedeemed != 0 {
		t.Fatalf("K2 = %+v", c)
	}
}

func TestRedemptionsListFiltersAndPages(t *testing.T) {
	e := newEnv(t)
	e.basic()
	e.createCodes("SPRING40", "K6", "K7", "K8")
	t1 := e.enroll("S001", "T01")
	t2 := e.enroll("S002", "T02")
	e.clock.Set(start.Add(10 * time.Hour))
	e.must(201, t1.redeem("K1", "", 12000), "online")
	t1.upload(t1.entry("K2", "", 12000, start.Add(time.Hour)), t1.entry("K3", "", 12000, start.Add(2*time.Hour)))
	t2.upload(t2.entry("K4", "", 12000, start.Add(3*time.Hour)), t2.entry("K4", "", 12000, start.Add(4*time.Hour)))

	count := func(q string) int {
		return len(e.must(200, e.admin("GET", "/v1/redemptions"+q, nil), q).list("redemptions"))
	}
	cases := map[string]int{
		"":                           5,
		"?till_id=T01":               3,
		"?store_id=S002":             2,
		"?mode=online":               1,
		"?mode=offline":              4,
		"?status=conflict":           1,
		"?offer_id=SPRING40":         5,
		"?offer_id=OTHER":            0,
		"?from=2026-06-01T13:30:00Z": 4,
		"?to=2026-06-01T14:30:00Z":   2,
		"?from=2026-06-01T13:30:00Z&to=2026-06-01T16:30:00Z&till_id=T02": 2,
		"?from=2026-06-01T13:30:00Z&to=2026-06-01T15:30:00Z&till_id=T02": 1,
	}
	for q, want := range cases {
		if got := count(q); got != want {
			t.Errorf("GET /v1/redemptions%s: %d, want %d", q, got, want)
		}
	}
	var ids []string
	cursor := ""
	for range 10 {
		r := e.must(200, e.admin("GET", "/v1/redemptions?limit=2&cursor="+cursor, nil), "page")
		for _, x := range r.list("redemptions") {
			ids = append(ids, x.(map[string]any)["id"].(string))
		}
		if cursor = r.str("next_cursor"); cursor == "" {
			break
		}
	}
	if len(ids) != 5 || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 5 {
		t.Fatalf("paged ids = %v", ids)
	}
	for _, q := range []string{"?mode=sideways", "?status=odd", "?from=yesterday", "?limit=0", "?cursor=zz"} {
		if r := e.admin("GET", "/v1/redemptions"+q, nil); r.status != 400 {
			t.Errorf("GET /v1/redemptions%s: %d, want 400", q, r.status)
		}
	}
}

func TestConflictResolution(t *testing.T) {
	e := newEnv(t)
	e.basic()
	t1 := e.enroll("S001", "T01")
	t2 := e.enroll("S001", "T02")
	e.clock.Add(time.Hour)
	// Three cases: a double redemption of K1, another of K2, a rule violation on K3.
	t1.upload(t1.entry("K1", "", 12000, start), t1.entry("K2", "", 12000, start), t1.entry("K3", "", 5000, start))
	ack := t2.upload(t2.entry("K1", "", 12000, start.Add(time.Minute)), t2.entry("K2", "", 12000, start.Add(time.Minute)))
	caseK1, caseK2 := ack.Results[0].ConflictID, ack.Results[1].ConflictID
	caseK3 := findCase(t, e, "K3", "rule_violation")["id"].(string)
	if len(e.conflicts("open")) != 3 {
		t.Fatalf("open cases = %v", e.conflicts("open"))
	}

	if r := e.admin("POST", "/v1/conflicts/"+caseK1+"/resolve", map[string]any{"action": "forgive"}); r.status != 400 {
		t.Fatalf("unknown action: %d %s", r.status, r.raw)
	}
	if r := e.admin("POST", "/v1/conflicts/nope/resolve", map[string]any{"action": "accept_loss"}); r.status != 404 {
		t.Fatalf("unknown case: %d %s", r.status, r.raw)
	}

	// accept_loss: nothing changes but the case.
	e.clock.Add(time.Minute)
	r := e.must(200, e.admin("POST", "/v1/conflicts/"+caseK1+"/resolve", map[string]any{"action": "accept_loss", "note": "small amount"}), "accept loss")
	cf := decode[platform.Conflict](t, r)
	last := cf.Audit[len(cf.Audit)-1]
	if cf.Status != "resolved" || cf.Resolution != "accept_loss" || last.Actor != "admin" || last.Action != "accept_loss" ||
		last.Note != "small amount" || !last.At.Equal(e.clock.Now()) || cf.Audit[0].Action != "opened" {
		t.Fatalf("resolved case = %+v", cf)
	}
	if r := e.admin("POST", "/v1/conflicts/"+caseK1+"/resolve", map[string]any{"action": "reverse"}); r.status != 409 {
		t.Fatalf("resolving twice: %d %s", r.status, r.raw)
	}
	if c := e.coupon("K1"); c.TimesRedeemed != 2 || c.Status != "revoked" {
		t.Fatalf("K1 after accept_loss = %+v", c)
	}

	// reverse: the conflicting redemption is reversed, the winner stays.
	e.must(200, e.admin("POST", "/v1/conflicts/"+caseK2+"/resolve", map[string]any{"action": "reverse"}), "reverse")
	d := e.conflict(caseK2)
	for _, red := range d.Redemptions {
		want := "reversed"
		if red.TillID == "T01" {
			want = "accepted"
		}
		if red.Status != want {
			t.Fatalf("after reverse: %s is %s, want %s", red.ID, red.Status, want)
		}
	}
	if c := e.coupon("K2"); c.TimesRedeemed != 1 {
		t.Fatalf("K2 after reverse = %+v", c)
	}

	// reinstate: the auto-revoked coupon comes back.
	e.must(200, e.admin("POST", "/v1/conflicts/"+caseK3+"/resolve", map[string]any{"action": "reinstate", "note": "till had old rules"}), "reinstate")
	if c := e.coupon("K3"); c.Status != "redeemed" || !c.RevokedAt.IsZero() {
		t.Fatalf("K3 after reinstate = %+v (used once, so redeemed rather than active)", c)
	}
	d = e.conflict(caseK3)
	if !strings.Contains(d.Audit[len(d.Audit)-1].Note, "reinstated") {
		t.Fatalf("audit = %+v", d.Audit)
	}
	if len(e.conflicts("open")) != 0 || len(e.conflicts("resolved")) != 3 {
		t.Fatalf("cases after resolving: open %v resolved %v", e.conflicts("open"), e.conflicts("resolved"))
	}
	if r := e.admin("GET", "/v1/conflicts?status=maybe", nil); r.status != 400 {
		t.Fatalf("bad status filter: %d", r.status)
	}
	// After resolution a new double use opens a new case.
	t3 := e.enroll("S002", "T03")
	ack = t3.upload(t3.entry("K2", "", 12000, start.Add(2*time.Minute)))
	if ack.Results[0].ConflictKind != "double_redemption" || ack.Results[0].ConflictID == caseK2 {
		t.Fatalf("new double use after resolution = %+v", ack.Results[0])
	}
}

func TestServeStopsGracefully(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.ServeListener(ctx, ln) }()
	url := "http://" + ln.Addr().String() + "/healthz"
	var res *http.Response
	for i := 0; i < 50; i++ {
		if res, err = http.Get(url); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("healthz status %d", res.StatusCode)
	}
	stopped := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after a clean stop", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop within 5 s")
	}
	t.Logf("stopped in %v", time.Since(stopped))
}
