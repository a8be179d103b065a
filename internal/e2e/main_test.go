package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	gosync "sync"
	"testing"
	"time"
)

// binary is the tillkeep binary built once for this test run by TestMain.
var binary string

// TestMain builds the real binary once for every scenario of the run, and removes it
// afterwards.
func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped with -short: the scenarios build and run the real daemons")
		return m.Run() // each scenario reports its own skip
	}
	if runtime.GOOS == "windows" {
		fmt.Println("e2e: skipped on Windows: the scenarios stop daemons with SIGTERM and SIGKILL")
		return 0
	}
	dir, err := os.MkdirTemp("", "tillkeep-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	binary = filepath.Join(dir, "tillkeep")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	start := time.Now()
	err = Build(ctx, root, binary)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Printf("e2e: built %s in %s\n", binary, time.Since(start).Round(time.Millisecond))
	}
	return m.Run()
}

// Time budgets of the waits. Generous: the machine is shared by many builds and tests,
// and a wait ends as soon as its condition holds.
const (
	syncTimeout     = 90 * time.Second
	convergeTimeout = 120 * time.Second
)

// newCluster starts a platform for one scenario. At the end the daemons still running
// are stopped with SIGTERM (they must exit 0 within 5 s) and the logs of a failed
// scenario are printed.
func newCluster(t *testing.T) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end scenario: starts the real platform and agents; skipped with -short")
	}
	c, err := StartCluster(t.Context(), binary, t.TempDir(), PlatformOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			if err := c.StopAll(); err != nil {
				t.Errorf("graceful stop at the end of the scenario: %v", err)
			}
		}
		c.Close()
		if t.Failed() {
			for _, path := range c.LogPaths() {
				t.Logf("----- %s -----\n%s", path, LogTail(path, 16000))
			}
		}
	})
	return c
}

// addTill starts till S001/<id> with the scenario's options.
func addTill(t *testing.T, c *Cluster, id string, opts AgentOptions) *Agent {
	t.Helper()
	opts.StoreID, opts.TillID = "S001", id
	a, err := c.AddTill(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// setUpOffer creates store S001 and a single-use offer with the given coupons.
func setUpOffer(t *testing.T, c *Cluster, offerID string, codes []string) {
	t.Helper()
	if err := SetUpOffer(t.Context(), c.Platform.Ops(), "S001", offerID, codes); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// bill is a bill that every scenario coupon accepts (the offer's minimum is 100 USD).
var bill = USD(12000)

// redeem redeems code at till a under transaction tx; it must be accepted in mode.
func redeem(t *testing.T, a *Agent, code, tx, mode string) Redeemed {
	t.Helper()
	r, err := a.POS().Redeem(t.Context(), RedeemRequest{Code: code, TransactionID: tx, Bill: bill})
	if err != nil {
		t.Fatalf("till %s: redeem %s (transaction %s): %v", a.Name(), code, tx, err)
	}
	if r.Mode != mode {
		t.Fatalf("till %s: redeem %s: mode %q, want %q", a.Name(), code, r.Mode, mode)
	}
	if r.RedemptionID == "" || r.Discount != USD(4000) {
		t.Fatalf("till %s: redeem %s: answer %+v, want a redemption id and a discount of 40 USD", a.Name(), code, r)
	}
	return r
}

// redeemMany redeems every code at till a, over lanes concurrent POS lanes, each in
// mode; it returns the redemption id of each code.
func redeemMany(t *testing.T, a *Agent, codes []string, txPrefix, mode string, lanes int) map[string]string {
	t.Helper()
	var (
		mu   gosync.Mutex
		ids  = make(map[string]string, len(codes))
		errs []error
		wg   gosync.WaitGroup
		next = make(chan int)
	)
	pos := a.POS()
	for range lanes {
		wg.Go(func() {
			for i := range next {
				r, err := pos.Redeem(t.Context(), RedeemRequest{Code: codes[i], TransactionID: fmt.Sprintf("%s-%05d", txPrefix, i), Bill: bill})
				if err == nil && r.Mode != mode {
					err = fmt.Errorf("redeem %s: mode %q, want %q", codes[i], r.Mode, mode)
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					ids[codes[i]] = r.RedemptionID
				}
				mu.Unlock()
			}
		})
	}
	for i := range codes {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("till %s: %d of %d redemptions failed; first: %v", a.Name(), len(errs), len(codes), errs[0])
	}
	return ids
}

// status reads a till's status.
func status(t *testing.T, a *Agent) AgentStatus {
	t.Helper()
	st, err := a.POS().Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// checkOnPlatformOnce checks that the platform holds exactly the redemptions in want
// (code → redemption id) for till a: each once, nothing else, and returns them by id.
func checkOnPlatformOnce(t *testing.T, c *Cluster, a *Agent, want map[string]string) map[string]Redemption {
	t.Helper()
	list, err := c.Platform.Ops().Redemptions(t.Context(), RedemptionFilter{StoreID: a.StoreID, TillID: a.TillID})
	if err != nil {
		t.Fatal(err)
	}
	byID := make(map[string]Redemption, len(list))
	for _, r := range list {
		if prev, dup := byID[r.ID]; dup {
			t.Errorf("till %s: redemption %s is listed twice by the platform: %+v and %+v", a.Name(), r.ID, prev, r)
		}
		byID[r.ID] = r
	}
	missing := 0
	for code, id := range want {
		r, ok := byID[id]
		switch {
		case !ok:
			missing++
			if missing <= 5 {
				t.Errorf("till %s: redemption %s of %s (answered 201 to the POS) is not on the platform", a.Name(), id, code)
			}
		case r.Code != code || r.TillID != a.TillID || r.StoreID != a.StoreID:
			t.Errorf("till %s: redemption %s is on the platform as %+v, want code %s", a.Name(), id, r, code)
		}
	}
	if missing > 0 {
		t.Errorf("till %s: %d of %d redemptions missing on the platform", a.Name(), missing, len(want))
	}
	wantIDs := make(map[string]bool, len(want))
	for _, id := range want {
		wantIDs[id] = true
	}
	extra := 0
	for id, r := range byID {
		if !wantIDs[id] {
			extra++
			if extra <= 5 {
				t.Errorf("till %s: the platform holds redemption %s (%s) that the POS was never given", a.Name(), id, r.Code)
			}
		}
	}
	if len(list) != len(want) {
		t.Errorf("till %s: the platform lists %d redemptions, want exactly %d", a.Name(), len(list), len(want))
	}
	return byID
}

// waitPlatformCount waits until the platform lists n redemptions of till a: a restored
// or restarted platform is caught up by re-sends, which the till's own status does not
// show (it believes it is done until it asks).
func waitPlatformCount(t *testing.T, c *Cluster, a *Agent, n int) {
	t.Helper()
	ops := c.Platform.Ops()
	err := WaitFor(t.Context(), convergeTimeout, fmt.Sprintf("%d redemptions of till %s on the platform", n, a.Name()),
		func(ctx context.Context) (bool, string, error) {
			acked, err := ops.AckedSeq(ctx, a.StoreID, a.TillID)
			if err != nil {
				return false, "", err
			}
			if acked < uint64(n) {
				return false, fmt.Sprintf("acked_seq %d", acked), nil
			}
			list, err := ops.Redemptions(ctx, RedemptionFilter{StoreID: a.StoreID, TillID: a.TillID})
			if err != nil {
				return false, "", err
			}
			return len(list) >= n, fmt.Sprintf("acked_seq %d, %d redemptions listed", acked, len(list)), nil
		})
	must(t, err)
}

// openConflictsOn returns the open conflict cases on code.
func openConflictsOn(t *testing.T, c *Cluster, code string) []Conflict {
	t.Helper()
	all, err := c.Platform.Ops().Conflicts(t.Context(), "open")
	if err != nil {
		t.Fatal(err)
	}
	var out []Conflict
	for _, cf := range all {
		if cf.Code == code {
			out = append(out, cf)
		}
	}
	return out
}
