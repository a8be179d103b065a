package platform_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
)

// TestConcurrentRedemptionsRespectLimits races 50 online redemptions against one
// limit-1 coupon, and 50 against a limit-3-per-customer offer: exactly 1 and exactly 3
// may succeed, whatever the interleaving.
func TestConcurrentRedemptionsRespectLimits(t *testing.T) {
	e := newEnv(t)
	e.basic()
	e.createOffer("PERCUST3", func(o map[string]any) { rules(o)["max_redemptions_per_customer"] = 3 })
	var codes []string
	for i := range 50 {
		codes = append(codes, fmt.Sprintf("P%02d", i))
	}
	e.createCodes("PERCUST3", codes...)
	e.must(200, e.admin("PUT", "/v1/customers/C1", map[string]any{}), "customer")
	tills := make([]*till, 5)
	for i := range tills {
		tills[i] = e.enroll("S001", fmt.Sprintf("T%02d", i))
	}

	const n = 50
	race := func(body func(i int) map[string]any) (ok int, refusals map[string]int) {
		var mu sync.Mutex
		refusals = map[string]int{}
		var wg sync.WaitGroup
		startGun := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-startGun
				r := tills[i%len(tills)].do("POST", "/v1/till/redemptions", body(i))
				mu.Lock()
				defer mu.Unlock()
				switch r.status {
				case 201:
					ok++
				case 422:
					refusals[r.errCode()+"/"+r.errRule()]++
				default:
					t.Errorf("redemption %d: status %d %s", i, r.status, r.raw)
				}
			}()
		}
		close(startGun)
		wg.Wait()
		return ok, refusals
	}

	ok, refusals := race(func(i int) map[string]any {
		return map[string]any{"redemption_id": fmt.Sprintf("one-%02d", i), "transaction_id": fmt.Sprintf("tx-one-%02d", i),
			"code": "K1", "bill": usd(12000)}
	})
	if ok != 1 || refusals["already_redeemed/max_redemptions_per_coupon"] != n-1 {
		t.Fatalf("limit-1 coupon: %d accepted, refusals %v; want exactly 1 and %d already_redeemed", ok, refusals, n-1)
	}
	if c := e.coupon("K1"); c.TimesRedeemed != 1 || len(c.Redemptions) != 1 || c.Status != "redeemed" {
		t.Fatalf("K1 after the race = %+v", c)
	}

	ok, refusals = race(func(i int) map[string]any {
		return map[string]any{"redemption_id": fmt.Sprintf("cust-%02d", i), "transaction_id": fmt.Sprintf("tx-cust-%02d", i),
			"code": codes[i], "bill": usd(12000), "customer_id": "C1"}
	})
	if ok != 3 || refusals["rule_violation/max_redemptions_per_customer"] != n-3 {
		t.Fatalf("limit-3-per-customer offer: %d accepted, refusals %v; want exactly 3", ok, refusals)
	}
	off := e.must(200, e.admin("GET", "/v1/offers/PERCUST3", nil), "offer")
	if u := off.body["usage"].(map[string]any); u["redemptions"].(float64) != 3 {
		t.Fatalf("offer usage after the race = %v", u)
	}
	list := e.must(200, e.admin("GET", "/v1/redemptions?offer_id=PERCUST3&limit=1000", nil), "list")
	if got := len(list.list("redemptions")); got != 3 {
		t.Fatalf("%d redemptions recorded, want 3", got)
	}
}

// TestConcurrentUploadsFlagOnce has several tills upload the same coupon's offline use
// at once: every redemption is recorded, exactly one case opens, and it holds them all.
func TestConcurrentUploadsFlagOnce(t *testing.T) {
	e := newEnv(t)
	e.basic()
	const n = 8
	tills := make([]*till, n)
	entries := make([]tillkeep.JournalEntry, n)
	for i := range tills {
		tills[i] = e.enroll("S001", fmt.Sprintf("T%02d", i))
		entries[i] = tills[i].entry("K1", "", 12000, start.Add(time.Duration(i)*time.Minute))
	}
	e.clock.Add(time.Hour)
	var wg sync.WaitGroup
	for i := range tills {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tills[i].upload(entries[i])
		}()
	}
	wg.Wait()
	cases := e.conflicts("")
	if len(cases) != 1 {
		t.Fatalf("%d cases, want exactly 1: %v", len(cases), cases)
	}
	d := e.conflict(cases[0]["id"].(string))
	if len(d.RedemptionIDs) != n || len(d.TillIDs) != n {
		t.Fatalf("case holds %d redemptions from %d tills, want %d", len(d.RedemptionIDs), len(d.TillIDs), n)
	}
	// Arrival order does not matter: the earliest stamp (till T00) wins.
	if len(d.WinnerIDs) != 1 || d.WinnerIDs[0] != entries[0].RedemptionID {
		t.Fatalf("winners = %v, want %s", d.WinnerIDs, entries[0].RedemptionID)
	}
	accepted := 0
	for _, r := range d.Redemptions {
		if r.Status == "accepted" {
			accepted++
		}
	}
	if accepted != 1 {
		t.Fatalf("%d accepted redemptions in the case", accepted)
	}
	if c := e.coupon("K1"); c.TimesRedeemed != n {
		t.Fatalf("coupon counts %d uses, want %d", c.TimesRedeemed, n)
	}
}
