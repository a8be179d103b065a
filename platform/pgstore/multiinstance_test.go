package pgstore_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/pgstore/pgtest"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// Several platform instances on one database, tills attached to different
// instances: the guarantees of one instance must hold across all of them.

func threeInstances(t *testing.T) []*instance {
	dsn := pgtest.NewDatabase(t)
	return []*instance{newInstance(t, "A", dsn), newInstance(t, "B", dsn), newInstance(t, "C", dsn)}
}

func (in *instance) coupon(code string) platform.CouponDetail {
	in.t.Helper()
	a := in.must(200, in.admin("GET", "/v1/coupons/"+code, nil), "get coupon "+code)
	var d platform.CouponDetail
	if err := json.Unmarshal(a.raw, &d); err != nil {
		in.t.Fatal(err)
	}
	return d
}

// race sends n requests at once, request i through tills[i%len(tills)], and counts
// accepted ones and refusals by error code.
func race(t *testing.T, tills []*till, n int, body func(i int) map[string]any) (accepted int, refusals map[string]int) {
	var mu sync.Mutex
	refusals = map[string]int{}
	var wg sync.WaitGroup
	gun := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-gun
			a := tills[i%len(tills)].do("POST", "/v1/till/redemptions", body(i))
			mu.Lock()
			defer mu.Unlock()
			switch a.status {
			case http.StatusCreated:
				accepted++
			case http.StatusUnprocessableEntity:
				refusals[a.errCode()]++
			default:
				t.Errorf("redemption %d: status %d %s", i, a.status, a.raw)
			}
		})
	}
	close(gun)
	wg.Wait()
	return accepted, refusals
}

func TestInstancesRaceOnlineRedemptions(t *testing.T) {
	ins := threeInstances(t)
	var percust []string
	for i := range 50 {
		percust = append(percust, fmt.Sprintf("P%02d", i))
	}
	ins[0].setUp([]string{"K1", "K2"}, percust)
	var tills []*till
	for i := range 6 {
		tills = append(tills, ins[i%3].enroll("S001", fmt.Sprintf("T%02d", i)))
	}

	const n = 50
	body := func(i int) map[string]any {
		return map[string]any{"redemption_id": fmt.Sprintf("one-%02d", i), "transaction_id": fmt.Sprintf("tx-one-%02d", i),
			"code": "K1", "bill": usd(12000)}
	}
	ok, refusals := race(t, tills, n, body)
	if ok != 1 || refusals[string(tillkeep.CodeAlreadyRedeemed)] != n-1 {
		t.Fatalf("limit-1 coupon over 3 instances: %d accepted, refusals %v; want exactly 1 and %d already_redeemed", ok, refusals, n-1)
	}
	for _, in := range ins {
		if c := in.coupon("K1"); c.TimesRedeemed != 1 || c.Status != tillkeep.CouponRedeemed || len(c.Redemptions) != 1 {
			t.Fatalf("K1 seen from %s: %d uses, status %s, %d redemptions", in.name, c.TimesRedeemed, c.Status, len(c.Redemptions))
		}
	}
	// The winner's retry through every other instance gets the same answer and
	// records nothing new.
	winner := ins[0].coupon("K1").Redemptions[0]
	var wi int
	if _, err := fmt.Sscanf(winner.ID, "one-%02d", &wi); err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		a := tills[wi%len(tills)].via(in).do("POST", "/v1/till/redemptions", body(wi))
		if a.status != http.StatusCreated || a.str("redemption_id") != winner.ID || a.str("status") != tillkeep.RedemptionAccepted {
			t.Fatalf("retry of the winner through %s: %d %s", in.name, a.status, a.raw)
		}
	}
	if c := ins[2].coupon("K1"); c.TimesRedeemed != 1 {
		t.Fatalf("retries recorded more uses: %d", c.TimesRedeemed)
	}

	ok, refusals = race(t, tills, n, func(i int) map[string]any {
		return map[string]any{"redemption_id": fmt.Sprintf("cust-%02d", i), "transaction_id": fmt.Sprintf("tx-cust-%02d", i),
			"code": percust[i], "bill": usd(12000), "customer_id": "C1"}
	})
	if ok != 3 || refusals[string(tillkeep.CodeRuleViolation)] != n-3 {
		t.Fatalf("limit-3-per-customer offer over 3 instances: %d accepted, refusals %v; want exactly 3", ok, refusals)
	}
	off := ins[1].must(200, ins[1].admin("GET", "/v1/offers/PERCUST3", nil), "get offer")
	if u, _ := off.body["usage"].(map[string]any); u["redemptions"] != float64(3) {
		t.Fatalf("PERCUST3 usage after the race: %v", u)
	}
}

// TestInstancesReconcileUploadsOnce has six tills upload their journals in batches
// through different instances, every batch twice at once through two instances (a
// retry racing its original), plus an out-of-order batch: every entry is recorded
// exactly once, every till's acknowledged point ends at its last entry, and the code
// every till used gets exactly one case holding all of them.
func TestInstancesReconcileUploadsOnce(t *testing.T) {
	ins := threeInstances(t)
	const tillsN, perTill, batch = 6, 20, 5
	var codes []string
	for i := range tillsN * perTill {
		codes = append(codes, fmt.Sprintf("U%03d", i))
	}
	codes = append(codes, "DUP")
	ins[0].setUp(codes, nil)

	base := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)
	tills := make([]*till, tillsN)
	journals := make([][]tillkeep.JournalEntry, tillsN)
	for i := range tills {
		tills[i] = ins[i%3].enroll([]string{"S001", "S002"}[i%2], fmt.Sprintf("T%02d", i))
		for j := range perTill {
			code := codes[i*perTill+j]
			at := base.Add(time.Duration(j) * time.Minute)
			if j == perTill/2 {
				// Every till used DUP, till i at minute i: till 0's use is the earliest.
				code, at = "DUP", base.Add(time.Duration(i)*time.Second)
			}
			journals[i] = append(journals[i], tills[i].entry(code, "", at))
		}
	}

	var wg sync.WaitGroup
	for i, tl := range tills {
		wg.Go(func() {
			j := journals[i]
			// An out-of-order batch first: it is answered with the point to resume from
			// and applies nothing.
			if ack := tl.via(ins[(i+1)%3]).upload(j[batch : 2*batch]); ack.ResumeFrom != 1 || ack.AckedSeq != 0 {
				t.Errorf("till %d: upload after a gap: acked %d resume %d, want 0 and 1", i, ack.AckedSeq, ack.ResumeFrom)
			}
			for k := 0; k < perTill; k += batch {
				part := j[k : k+batch]
				acks := make([]platform.JournalAck, 2)
				var bw sync.WaitGroup
				for r := range 2 {
					bw.Go(func() { acks[r] = tl.via(ins[(i+k/batch+r)%3]).upload(part) })
				}
				bw.Wait()
				for r, ack := range acks {
					if ack.AckedSeq != uint64(k+batch) || ack.ResumeFrom != 0 || len(ack.Results) != batch {
						t.Errorf("till %d batch at %d, copy %d: acked %d resume %d, %d results", i, k, r, ack.AckedSeq, ack.ResumeFrom, len(ack.Results))
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	list := ins[2].must(200, ins[2].admin("GET", "/v1/redemptions?limit=1000", nil), "list redemptions")
	rs, _ := list.body["redemptions"].([]any)
	seen := map[string]bool{}
	for _, r := range rs {
		id, _ := r.(map[string]any)["id"].(string)
		if seen[id] {
			t.Fatalf("redemption %s listed twice", id)
		}
		seen[id] = true
	}
	if len(seen) != tillsN*perTill {
		t.Fatalf("%d redemptions recorded, want %d", len(seen), tillsN*perTill)
	}
	tillsList := ins[1].must(200, ins[1].admin("GET", "/v1/tills", nil), "list tills")
	for _, v := range tillsList.body["tills"].([]any) {
		tv := v.(map[string]any)
		if tv["acked_seq"] != float64(perTill) {
			t.Fatalf("till %v/%v acked %v, want %d", tv["store_id"], tv["till_id"], tv["acked_seq"], perTill)
		}
	}
	for _, code := range codes[:tillsN*perTill] {
		want := 0
		for _, j := range journals {
			if slices.ContainsFunc(j, func(e tillkeep.JournalEntry) bool { return e.Code == code }) {
				want = 1
			}
		}
		if c := ins[0].coupon(code); c.TimesRedeemed != want {
			t.Fatalf("coupon %s counts %d uses, want %d", code, c.TimesRedeemed, want)
		}
	}
	dup := ins[1].coupon("DUP")
	if dup.TimesRedeemed != tillsN || dup.Status != tillkeep.CouponRevoked {
		t.Fatalf("DUP: %d uses, status %s; want %d and revoked (auto_revoke)", dup.TimesRedeemed, dup.Status, tillsN)
	}
	cases := ins[2].must(200, ins[2].admin("GET", "/v1/conflicts", nil), "list conflicts")
	cs, _ := cases.body["conflicts"].([]any)
	if len(cs) != 1 {
		t.Fatalf("%d cases, want exactly 1: %s", len(cs), cases.raw)
	}
	id, _ := cs[0].(map[string]any)["id"].(string)
	var cf platform.ConflictDetail
	if err := json.Unmarshal(ins[0].must(200, ins[0].admin("GET", "/v1/conflicts/"+id, nil), "get conflict").raw, &cf); err != nil {
		t.Fatal(err)
	}
	if cf.Kind != platform.KindDoubleRedemption || len(cf.RedemptionIDs) != tillsN || len(cf.TillIDs) != tillsN {
		t.Fatalf("case %s: kind %s, %d redemptions from %d tills; want %d of each", id, cf.Kind, len(cf.RedemptionIDs), len(cf.TillIDs), tillsN)
	}
	if want := journals[0][perTill/2].RedemptionID; len(cf.WinnerIDs) != 1 || cf.WinnerIDs[0] != want {
		t.Fatalf("winners %v, want the earliest use %s whatever instance took it", cf.WinnerIDs, want)
	}
}

// TestRevocationReachesTillsOnOtherInstances revokes a coupon through one instance:
// a till attached to another learns it from its catalog feed, and a third instance
// refuses it online.
func TestRevocationReachesTillsOnOtherInstances(t *testing.T) {
	ins := threeInstances(t)
	ins[0].setUp([]string{"K1", "K2", "K3"}, nil)
	onB := ins[1].enroll("S001", "T01")
	onC := ins[2].enroll("S002", "T02")

	// The till on B takes its snapshot and keeps the cursor.
	req, err := http.NewRequest("GET", ins[1].url+wire.PathSnapshot, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+onB.token)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, err = body.ReadFrom(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("snapshot: %d %v", res.StatusCode, err)
	}
	header, err := wire.NewSnapshotReader(&body).Header()
	if err != nil {
		t.Fatal(err)
	}

	ins[0].must(200, ins[0].admin("POST", "/v1/coupons/revoke", map[string]any{"codes": []string{"K2"}}), "revoke K2 on A")

	a := onB.do("GET", fmt.Sprintf("%s?since=%d", wire.PathCatalog, header.Seq), nil)
	if a.status != 200 {
		t.Fatalf("delta on B: %d %s", a.status, a.raw)
	}
	var d wire.Delta
	if err := json.Unmarshal(a.raw, &d); err != nil {
		t.Fatal(err)
	}
	var k2 *wire.SnapshotCoupon
	for i := range d.Coupons {
		if d.Coupons[i].Code == "K2" {
			k2 = &d.Coupons[i]
		}
	}
	if k2 == nil || k2.Status != tillkeep.CouponRevoked || d.Seq <= header.Seq {
		t.Fatalf("the delta on B since %d does not carry K2's revocation: %s", header.Seq, a.raw)
	}

	v := onC.do("POST", "/v1/till/validate", map[string]any{"code": "K2", "bill": usd(12000)})
	if v.status != 200 || v.body["valid"] == true || v.str("reason") != string(tillkeep.CodeRevoked) {
		t.Fatalf("validation of K2 on C: %d %s", v.status, v.raw)
	}
	r := onC.do("POST", "/v1/till/redemptions", map[string]any{"redemption_id": "c-1", "transaction_id": "tx-c-1", "code": "K2", "bill": usd(12000)})
	if r.status != http.StatusUnprocessableEntity || r.errCode() != string(tillkeep.CodeRevoked) {
		t.Fatalf("redemption of K2 on C: %d %s", r.status, r.raw)
	}
}
