package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep/internal/faultproxy"
)

// uploadThrottle slows the link during an upload so that a crash lands in the middle
// of it: a batch of 500 journal entries then takes seconds to travel, in both
// directions, whatever the speed of the machine.
var uploadThrottle = faultproxy.Slow{BytesPerSecond: 100_000}

// waitAckAbove polls the platform's acknowledged points of the tills until one has
// moved past floor, and returns them all. The poll is tight because the next step is a
// crash that should land while the rest is still on its way.
func waitAckAbove(t *testing.T, c *Cluster, tills []*Agent, floor uint64) map[string]uint64 {
	t.Helper()
	ops := c.Platform.Ops()
	deadline := time.Now().Add(convergeTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		acked := map[string]uint64{}
		moved := false
		for _, a := range tills {
			n, err := ops.AckedSeq(t.Context(), a.StoreID, a.TillID)
			if err != nil {
				t.Fatalf("watch the upload: %v", err)
			}
			acked[a.TillID] = n
			moved = moved || n > floor
		}
		if moved {
			return acked
		}
		if time.Now().After(deadline) {
			t.Fatalf("no till's acknowledged point passed %d within %s", floor, convergeTimeout)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-tick.C:
		}
	}
}

// requireMidUpload fails the scenario when everything had been acknowledged before the
// crash: it would then test nothing.
func requireMidUpload(t *testing.T, acked map[string]uint64, perTill uint64) {
	t.Helper()
	var parts []string
	unfinished := false
	for till, n := range acked {
		parts = append(parts, fmt.Sprintf("%s acked %d of %d", till, n, perTill))
		unfinished = unfinished || n < perTill
	}
	t.Logf("crash with %s", strings.Join(parts, ", "))
	if !unfinished {
		t.Fatalf("every entry was acknowledged before the crash (%s): the throttle is too loose to test a crash mid-upload", strings.Join(parts, ", "))
	}
}

func checkAllAccepted(t *testing.T, a *Agent, byID map[string]Redemption) {
	t.Helper()
	bad := 0
	for id, r := range byID {
		if r.Status != "accepted" {
			bad++
			if bad <= 5 {
				t.Errorf("till %s: redemption %s of %s has status %q (%s), want accepted: each coupon was used once", a.Name(), id, r.Code, r.Status, r.ConflictKind)
			}
		}
	}
}

func checkAcked(t *testing.T, c *Cluster, a *Agent, want uint64) {
	t.Helper()
	acked, err := c.Platform.Ops().AckedSeq(t.Context(), a.StoreID, a.TillID)
	must(t, err)
	if acked != want {
		t.Errorf("till %s: the platform's acked_seq is %d, want %d (the till's whole journal)", a.Name(), acked, want)
	}
}

// The platform dies (SIGKILL) while two tills push a backlog of offline redemptions,
// and comes back on the same data: every redemption ends up on it exactly once.
func TestPlatformRestartMidUpload(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	const perTill = 1000
	codes := Codes("RST", 2*perTill)
	setUpOffer(t, c, "RST40", codes)
	opts := AgentOptions{MaxOfflineRedemptions: 100_000}
	t1 := addTill(t, c, "T01", opts)
	t2 := addTill(t, c, "T02", opts)
	tills := []*Agent{t1, t2}
	must(t, WaitSynced(ctx, syncTimeout, len(codes), tills...))

	for _, a := range tills {
		must(t, a.Link(faultproxy.Refuse{}))
	}
	start := time.Now()
	want := map[*Agent]map[string]string{
		t1: redeemMany(t, t1, codes[:perTill], "T01", "offline", 4),
		t2: redeemMany(t, t2, codes[perTill:], "T02", "offline", 4),
	}
	t.Logf("%d offline redemptions in %s", 2*perTill, time.Since(start).Round(time.Millisecond))

	for _, a := range tills {
		must(t, a.Link(uploadThrottle))
	}
	acked := waitAckAbove(t, c, tills, 0)
	must(t, c.Platform.Kill())
	requireMidUpload(t, acked, perTill)
	must(t, c.Platform.Start(ctx))
	for _, a := range tills {
		must(t, a.Link(faultproxy.Pass{}))
	}

	must(t, WaitConverged(ctx, convergeTimeout, tills...))
	for _, a := range tills {
		waitPlatformCount(t, c, a, perTill)
		checkAllAccepted(t, a, checkOnPlatformOnce(t, c, a, want[a]))
		checkAcked(t, c, a, perTill)
	}
	logJournalResults(t, c)
}

// The platform is restored from an older copy of its data: what the tills uploaded
// after the copy is gone from it. The tills notice that the platform's acknowledged
// point went back and send those entries again: nothing lost, nothing doubled.
func TestPlatformRestoredFromOlderCopy(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	codes := Codes("OLD", 60)
	setUpOffer(t, c, "OLD40", codes)
	t1 := addTill(t, c, "T01", AgentOptions{})
	t2 := addTill(t, c, "T02", AgentOptions{})
	tills := []*Agent{t1, t2}
	must(t, WaitSynced(ctx, syncTimeout, len(codes), tills...))
	own := map[*Agent][]string{t1: codes[:30], t2: codes[30:]}
	want := map[*Agent]map[string]string{t1: {}, t2: {}}
	offline := func(a *Agent, codes []string, tx string) {
		for code, id := range redeemMany(t, a, codes, tx, "offline", 2) {
			want[a][code] = id
		}
	}

	// Before the copy: 10 offline redemptions per till, uploaded.
	for _, a := range tills {
		must(t, a.Link(faultproxy.Refuse{}))
		offline(a, own[a][:10], a.TillID+"-A")
		must(t, a.Link(faultproxy.Pass{}))
	}
	must(t, WaitConverged(ctx, convergeTimeout, tills...))
	for _, a := range tills {
		waitPlatformCount(t, c, a, 10)
	}

	// The operator's copy, taken with the platform stopped.
	must(t, c.Platform.Stop())
	older := filepath.Join(t.TempDir(), "platform-data-copy")
	must(t, c.Platform.CopyData(older))
	must(t, c.Platform.Start(ctx))
	must(t, WaitConverged(ctx, convergeTimeout, tills...))

	// After the copy: 10 online and 10 offline redemptions per till, uploaded.
	for _, a := range tills {
		for i, code := range own[a][10:20] {
			want[a][code] = redeem(t, a, code, fmt.Sprintf("%s-B-%02d", a.TillID, i), "online").RedemptionID
		}
		must(t, a.Link(faultproxy.Reset{}))
		offline(a, own[a][20:30], a.TillID+"-C")
		must(t, a.Link(faultproxy.Pass{}))
	}
	must(t, WaitConverged(ctx, convergeTimeout, tills...))
	for _, a := range tills {
		waitPlatformCount(t, c, a, 30)
	}

	// Restore the older copy: the platform has lost 20 redemptions of each till.
	must(t, c.Platform.Stop())
	must(t, c.Platform.RestoreData(older))
	must(t, c.Platform.Start(ctx))
	lost, err := c.Platform.Ops().Redemptions(ctx, RedemptionFilter{StoreID: "S001"})
	must(t, err)
	t.Logf("the restored platform starts with %d redemptions of store S001 (60 were made)", len(lost))

	for _, a := range tills {
		waitPlatformCount(t, c, a, 30)
	}
	must(t, WaitConverged(ctx, convergeTimeout, tills...))
	for _, a := range tills {
		checkAllAccepted(t, a, checkOnPlatformOnce(t, c, a, want[a]))
		checkAcked(t, c, a, 30)
	}
	logJournalResults(t, c)
}

// The agent dies (SIGKILL) while it pushes a backlog, twice: once after the platform
// applied a batch whose answer never reached the till, once while a batch is on its way;
// each time it restarts on the same data. No redemption is lost, none doubled, and the
// POS's retries still get their first answers.
func TestAgentKilledMidUpload(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	const n = 1500 // three batches of 500
	codes := Codes("KIL", n)
	setUpOffer(t, c, "KIL40", codes)
	till := addTill(t, c, "T01", AgentOptions{MaxOfflineRedemptions: 100_000})
	must(t, WaitSynced(ctx, syncTimeout, n, till))

	must(t, till.Link(faultproxy.Refuse{}))
	start := time.Now()
	want := redeemMany(t, till, codes, "T01", "offline", 4)
	t.Logf("%d offline redemptions in %s", n, time.Since(start).Round(time.Millisecond))

	// First crash: the platform applies batches, but every answer longer than 1,000
	// bytes is cut, so the till never gets an upload's answer; it only learns what the
	// platform holds from the short position read that starts each push, and keeps
	// re-sending the batch in flight.
	must(t, till.Link(faultproxy.CutAfter{Bytes: 1000}))
	acked := waitAckAbove(t, c, []*Agent{till}, 0)
	st := status(t, till)
	if st.PendingUploads == 0 {
		t.Fatalf("with the upload answers cut, the till reports nothing pending: it cannot have had every upload answered")
	}
	must(t, till.Kill())
	t.Logf("first crash: the platform had applied %d entries; the till still counted %d pending", acked["T01"], st.PendingUploads)

	// Second crash: the restarted till uploads over a slow link and dies while a
	// batch is on its way.
	must(t, till.Link(uploadThrottle))
	must(t, till.Start(ctx))
	acked = waitAckAbove(t, c, []*Agent{till}, acked["T01"])
	must(t, till.Kill())
	requireMidUpload(t, acked, n)

	must(t, till.Link(faultproxy.Pass{}))
	must(t, till.Start(ctx))
	must(t, WaitConverged(ctx, convergeTimeout, till))
	waitPlatformCount(t, c, till, n)
	checkAllAccepted(t, till, checkOnPlatformOnce(t, c, till, want))
	checkAcked(t, c, till, n)
	logJournalResults(t, c)

	// The POS retries a few transactions answered before the crashes: same answers.
	for _, i := range []int{0, n / 2, n - 1} {
		r, err := till.POS().Redeem(ctx, RedeemRequest{Code: codes[i], TransactionID: fmt.Sprintf("T01-%05d", i), Bill: bill})
		must(t, err)
		if r.RedemptionID != want[codes[i]] || !r.Replayed {
			t.Errorf("retry of transaction %d after the crashes: %+v, want a replay of redemption %s", i, r, want[codes[i]])
		}
	}
}

// logJournalResults logs how the platform classified the uploaded entries since it
// last started (tillkeep_platform_journal_entries_total): "duplicate" entries show that
// the crash made a till send again what the platform already held. It is a log, not an
// assertion: where exactly the crash lands is up to the scheduler.
func logJournalResults(t *testing.T, c *Cluster) {
	t.Helper()
	resp, err := http.Get(c.Platform.URL() + "/metrics")
	if err != nil {
		t.Logf("read the platform's metrics: %v", err)
		return
	}
	defer resp.Body.Close()
	var counts []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "tillkeep_platform_journal_entries_total{"); ok {
			counts = append(counts, rest)
		}
	}
	t.Logf("journal entries the platform received since its last start: {%s", strings.Join(counts, ", {"))
}
