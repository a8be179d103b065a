package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep/internal/faultproxy"
)

// Two tills of one store lose the platform and both accept the same single-use coupon.
// After the links come back, the platform holds both redemptions exactly once, opens one
// double_redemption case naming both, revokes the coupon, and both tills learn it.
func TestTwoTillsDoubleUseDuringOutage(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	codes := Codes("TWO", 5)
	setUpOffer(t, c, "TWO40", codes)
	t1 := addTill(t, c, "T01", AgentOptions{})
	t2 := addTill(t, c, "T02", AgentOptions{})
	must(t, WaitSynced(ctx, syncTimeout, len(codes), t1, t2))

	online := redeem(t, t1, codes[0], "T01-0001", "online")

	for _, a := range []*Agent{t1, t2} {
		must(t, a.Link(faultproxy.Reset{}))
	}
	double := codes[1]
	r1 := redeem(t, t1, double, "T01-0002", "offline")
	r2 := redeem(t, t2, double, "T02-0001", "offline")
	if r1.RedemptionID == r2.RedemptionID {
		t.Fatalf("both tills answered redemption id %s", r1.RedemptionID)
	}
	for _, a := range []*Agent{t1, t2} {
		if st := status(t, a); st.Mode != "offline" || st.PendingUploads < 1 {
			t.Fatalf("during the outage: %s, want mode offline with pending uploads", DescribeStatus(a.Name(), st))
		}
	}

	for _, a := range []*Agent{t1, t2} {
		must(t, a.Link(faultproxy.Pass{}))
	}
	must(t, WaitConverged(ctx, convergeTimeout, t1, t2))

	ops := c.Platform.Ops()
	// Both redemptions are on the platform, exactly once each.
	checkOnPlatformOnce(t, c, t1, map[string]string{codes[0]: online.RedemptionID, double: r1.RedemptionID})
	checkOnPlatformOnce(t, c, t2, map[string]string{double: r2.RedemptionID})
	coupon, err := ops.Coupon(ctx, double)
	must(t, err)
	var ids, tills []string
	for _, r := range coupon.Redemptions {
		ids, tills = append(ids, r.ID), append(tills, r.TillID)
	}
	if !SameSet(ids, []string{r1.RedemptionID, r2.RedemptionID}) || !SameSet(tills, []string{"T01", "T02"}) {
		t.Errorf("coupon %s lists redemptions %v at tills %v, want %s (T01) and %s (T02), once each",
			double, ids, tills, r1.RedemptionID, r2.RedemptionID)
	}
	if coupon.Status != "revoked" {
		t.Errorf("coupon %s has status %q after a double use, want revoked (auto_revoke)", double, coupon.Status)
	}

	// One double_redemption case, naming both redemptions and both tills.
	cases := openConflictsOn(t, c, double)
	if len(cases) != 1 {
		t.Fatalf("open conflict cases on %s: %+v, want exactly one", double, cases)
	}
	cf := cases[0]
	if cf.Kind != "double_redemption" {
		t.Errorf("case %s has kind %q, want double_redemption", cf.ID, cf.Kind)
	}
	if !SameSet(cf.RedemptionIDs, []string{r1.RedemptionID, r2.RedemptionID}) {
		t.Errorf("case %s lists redemptions %v, want %s and %s", cf.ID, cf.RedemptionIDs, r1.RedemptionID, r2.RedemptionID)
	}
	if !SameSet(cf.TillIDs, []string{"T01", "T02"}) {
		t.Errorf("case %s lists tills %v, want T01 and T02", cf.ID, cf.TillIDs)
	}
	if others := openConflictsOn(t, c, codes[0]); len(others) != 0 {
		t.Errorf("the coupon redeemed once online has open cases: %+v", others)
	}

	// The tills learn it: the upload answers carry the case to the till's status...
	err = WaitFor(ctx, syncTimeout, "a till to report case "+cf.ID+" in its status", func(ctx context.Context) (bool, string, error) {
		var seen []string
		for _, a := range []*Agent{t1, t2} {
			st, err := a.POS().Status(ctx)
			if err != nil || st.Sync == nil {
				return false, "", err
			}
			for _, r := range st.Sync.Conflicts.Recent {
				seen = append(seen, fmt.Sprintf("%s: %s %s %s", a.TillID, r.RedemptionID, r.ConflictKind, r.ConflictID))
				if r.ConflictID == cf.ID && r.ConflictKind == "double_redemption" {
					return true, "", nil
				}
			}
		}
		return false, strings.Join(seen, "; "), nil
	})
	must(t, err)

	// ...and the revocation reaches both catalogs with the next pull: cut off again,
	// each till refuses the coupon on its own.
	learnedSince := time.Now()
	for _, a := range []*Agent{t1, t2} {
		must(t, WaitPullAfter(ctx, syncTimeout, a, learnedSince))
	}
	for _, a := range []*Agent{t1, t2} {
		v, err := a.POS().Validate(ctx, double, bill)
		must(t, err)
		if v.Valid || v.Reason != "revoked" {
			t.Errorf("till %s (online): validate %s = %+v, want valid=false reason revoked", a.Name(), double, v)
		}
		must(t, a.Link(faultproxy.Reset{}))
	}
	for _, a := range []*Agent{t1, t2} {
		v, err := a.POS().Validate(ctx, double, bill)
		must(t, err)
		if v.Valid || v.Reason != "revoked" || v.Mode != "offline" {
			t.Errorf("till %s (offline): validate %s = %+v, want valid=false reason revoked, judged offline", a.Name(), double, v)
		}
		fresh, err := a.POS().Validate(ctx, codes[2], bill)
		must(t, err)
		if !fresh.Valid || fresh.Mode != "offline" {
			t.Errorf("till %s (offline): validate unused %s = %+v, want valid offline", a.Name(), codes[2], fresh)
		}
		must(t, a.Link(faultproxy.Pass{}))
	}
}

// A coupon revoked centrally while a till is cut off, then redeemed there: the till
// could not know; after the link heals the platform records the redemption and opens a
// redeemed_after_revocation case.
func TestRevokedWhileOffline(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	codes := Codes("REV", 3)
	setUpOffer(t, c, "REV40", codes)
	till := addTill(t, c, "T01", AgentOptions{})
	must(t, WaitSynced(ctx, syncTimeout, len(codes), till))

	must(t, till.Link(faultproxy.Refuse{}))
	revoked, control := codes[0], codes[1]
	n, err := c.Platform.Ops().Revoke(ctx, revoked)
	must(t, err)
	if n != 1 {
		t.Fatalf("revoke %s: revoked %d, want 1", revoked, n)
	}
	// The platform judges the redemption at its HLC time, which the till derives from its
	// own clock and the platform clock offset it measured. Leave more than any plausible
	// offset error between the revocation and the redemption, so that the order of the two
	// is not a matter of milliseconds of clock estimate.
	time.Sleep(200 * time.Millisecond)
	rRevoked := redeem(t, till, revoked, "T01-0001", "offline")
	rControl := redeem(t, till, control, "T01-0002", "offline")

	must(t, till.Link(faultproxy.Pass{}))
	must(t, WaitConverged(ctx, convergeTimeout, till))

	byID := checkOnPlatformOnce(t, c, till, map[string]string{revoked: rRevoked.RedemptionID, control: rControl.RedemptionID})
	if r := byID[rRevoked.RedemptionID]; r.Status != "conflict" || r.ConflictKind != "redeemed_after_revocation" {
		t.Errorf("redemption of the revoked coupon: status %q kind %q, want conflict redeemed_after_revocation", r.Status, r.ConflictKind)
	}
	if r := byID[rControl.RedemptionID]; r.Status != "accepted" || r.ConflictID != "" {
		t.Errorf("redemption of the untouched coupon: %+v, want accepted without a case", r)
	}
	cases := openConflictsOn(t, c, revoked)
	if len(cases) != 1 || cases[0].Kind != "redeemed_after_revocation" ||
		!slices.Equal(cases[0].RedemptionIDs, []string{rRevoked.RedemptionID}) || !slices.Equal(cases[0].TillIDs, []string{"T01"}) {
		t.Fatalf("open cases on %s: %+v, want one redeemed_after_revocation case with redemption %s at T01", revoked, cases, rRevoked.RedemptionID)
	}
	if others := openConflictsOn(t, c, control); len(others) != 0 {
		t.Errorf("the untouched coupon has open cases: %+v", others)
	}
	coupon, err := c.Platform.Ops().Coupon(ctx, revoked)
	must(t, err)
	if coupon.Status != "revoked" {
		t.Errorf("coupon %s: status %q, want revoked", revoked, coupon.Status)
	}
	st := status(t, till)
	found := false
	for _, r := range st.Sync.Conflicts.Recent {
		found = found || (r.RedemptionID == rRevoked.RedemptionID && r.ConflictKind == "redeemed_after_revocation" && r.ConflictID == cases[0].ID)
	}
	if !found {
		t.Errorf("till status does not report the case: %+v", st.Sync.Conflicts)
	}
}

// A blackholed link (packets vanish; nothing answers, nothing closes): the first
// redemption still answers within platform.timeout plus a margin, later ones answer at
// offline speed because the breaker is open, the till says it is offline, and once the
// link heals it is online again and everything converges, exactly once.
func TestBlackholedLink(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	codes := Codes("BH", 10)
	setUpOffer(t, c, "BH40", codes)
	const timeout = 800 * time.Millisecond
	till := addTill(t, c, "T01", AgentOptions{Timeout: timeout})
	must(t, WaitSynced(ctx, syncTimeout, len(codes), till))
	want := map[string]string{}
	want[codes[0]] = redeem(t, till, codes[0], "T01-0000", "online").RedemptionID

	must(t, till.Link(faultproxy.Blackhole{}))
	first := redeem(t, till, codes[1], "T01-0001", "offline")
	want[codes[1]] = first.RedemptionID
	// A functional budget, not a benchmark: the cashier must not wait much beyond the
	// configured timeout, however dead the link.
	if budget := timeout + time.Second; first.Elapsed > budget {
		t.Errorf("first redemption over a blackholed link took %s, want under %s (platform.timeout + 1 s)", first.Elapsed, budget)
	}
	if st := status(t, till); st.Mode != "offline" {
		t.Errorf("after a timed-out online attempt the till reports mode %q, want offline", st.Mode)
	}
	var total time.Duration
	for i := 2; i < 7; i++ {
		r := redeem(t, till, codes[i], fmt.Sprintf("T01-%04d", i), "offline")
		want[codes[i]] = r.RedemptionID
		total += r.Elapsed
	}
	// With the breaker open no redemption spends the online budget: five of them take
	// less than two budgets together.
	if total >= 2*timeout {
		t.Errorf("5 redemptions with the breaker open took %s together, want under %s: they must not wait for the platform", total, 2*timeout)
	}
	t.Logf("blackholed link: first redemption %s, next 5 together %s (platform.timeout %s)", first.Elapsed.Round(time.Millisecond), total.Round(time.Millisecond), timeout)

	must(t, till.Link(faultproxy.Pass{}))
	healed := time.Now()
	must(t, WaitMode(ctx, 30*time.Second, "online", till))
	t.Logf("online again %s after the link healed", time.Since(healed).Round(time.Millisecond))
	must(t, WaitConverged(ctx, convergeTimeout, till))
	byID := checkOnPlatformOnce(t, c, till, want)
	for code, id := range want {
		if r := byID[id]; r.Status != "accepted" {
			t.Errorf("redemption %s of %s: status %q, want accepted", id, code, r.Status)
		}
	}
}

// A till whose redemption is demoted after its upload was answered must learn it too.
// Two tills use one coupon offline; the till with the LATER stamp reconnects first (its
// redemption is accepted), then the till with the earlier stamp: the case is re-ranked
// and the first till's redemption becomes the conflict. The platform records the change
// in its change log; the first till must report it in its status.
//
// The demoted till hears of it through the catalog feed, which carries the outcomes of
// its redemptions that reconciliation changed after their upload was answered.
func TestDemotedRedemptionReachesItsTill(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	codes := Codes("DEM", 3)
	setUpOffer(t, c, "DEM40", codes)
	early := addTill(t, c, "T01", AgentOptions{})
	late := addTill(t, c, "T02", AgentOptions{})
	must(t, WaitSynced(ctx, syncTimeout, len(codes), early, late))
	for _, a := range []*Agent{early, late} {
		must(t, a.Link(faultproxy.Refuse{}))
	}
	double := codes[0]
	rEarly := redeem(t, early, double, "T01-0001", "offline")
	// The winner is the earlier HLC stamp, which each till derives from its clock and
	// its estimate of the platform's: keep the two uses further apart than that error.
	time.Sleep(100 * time.Millisecond)
	rLate := redeem(t, late, double, "T02-0001", "offline")

	must(t, late.Link(faultproxy.Pass{}))
	must(t, WaitConverged(ctx, convergeTimeout, late))
	must(t, early.Link(faultproxy.Pass{}))
	must(t, WaitConverged(ctx, convergeTimeout, early))

	byID := checkOnPlatformOnce(t, c, late, map[string]string{double: rLate.RedemptionID})
	if r := byID[rLate.RedemptionID]; r.Status != "conflict" {
		t.Fatalf("the later redemption has status %q on the platform, want conflict (re-ranked)", r.Status)
	}
	byID = checkOnPlatformOnce(t, c, early, map[string]string{double: rEarly.RedemptionID})
	if r := byID[rEarly.RedemptionID]; r.Status != "accepted" {
		t.Fatalf("the earlier redemption has status %q on the platform, want accepted (the winner)", r.Status)
	}
	err := WaitFor(ctx, syncTimeout, "till T02 to report its demoted redemption", func(ctx context.Context) (bool, string, error) {
		st, err := late.POS().Status(ctx)
		if err != nil || st.Sync == nil {
			return false, "", err
		}
		for _, r := range st.Sync.Conflicts.Recent {
			if r.RedemptionID == rLate.RedemptionID && r.Status == "conflict" {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("sync.conflicts %+v", st.Sync.Conflicts), nil
	})
	must(t, err)
}
