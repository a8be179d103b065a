package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep/internal/faultproxy"
)

// Disk and clock faults on a till (issue #6): a full disk and a read-only data
// directory give clear refusals — never a 201 the till cannot keep, never a crash —
// and the till recovers without losing anything; a till whose clock is 3 days off
// keeps selling, its stamps are corrected by the offset it measures, and the platform
// flags the skew.

// tmpfsSize is the till's disk in the full-disk scenarios: room for the agent's ledger
// and little else.
const tmpfsSize = 4 << 20

// requireMounts skips a scenario that mounts filesystems where that is impossible.
func requireMounts(t *testing.T, tools ...string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("disk faults: mounting a test filesystem needs Linux")
	}
	if os.Geteuid() != 0 {
		t.Skip("disk faults: mounting a test filesystem needs root (CI runs as root)")
	}
	for _, tool := range append([]string{"mount", "umount"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("disk faults: %s is not installed: %v", tool, err)
		}
	}
}

// addTillOnDisk starts till S001/id with its data directory on a filesystem that mount
// puts there first. At the end of the scenario the till is stopped (gracefully, unless
// the scenario failed) before the filesystem is unmounted, which must happen before the
// cluster's temporary directory is removed.
func addTillOnDisk(t *testing.T, c *Cluster, id string, opts AgentOptions, mount func(dir string) error) *Agent {
	t.Helper()
	opts.StoreID, opts.TillID = "S001", id
	mounted := ""
	a, err := c.AddTillWith(t.Context(), c.Bin, opts, func(a *Agent) error {
		if err := mount(a.DataDir); err != nil {
			return err
		}
		mounted = a.DataDir
		return nil
	})
	if mounted != "" {
		t.Cleanup(func() {
			if a.Running() {
				if err := a.Stop(); err != nil && !t.Failed() {
					t.Errorf("graceful stop of till %s at the end of the scenario: %v", a.Name(), err)
				}
				_ = a.Kill()
			}
			if err := Unmount(mounted); err != nil {
				t.Errorf("unmount the test filesystem of till %s: %v", a.Name(), err)
			}
		})
	}
	if err != nil {
		if mounted == "" {
			t.Skipf("disk faults: cannot mount a test filesystem here: %v", err)
		}
		t.Fatal(err)
	}
	return a
}

// isStorageRefusal reports whether err is the agent's clear refusal of a write it could
// not make durable: 507 storage_full or 503 unavailable, in the error envelope, with a
// message.
func isStorageRefusal(err error) bool {
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Message == "" {
		return false
	}
	return (apiErr.Status == http.StatusInsufficientStorage && apiErr.Code == "storage_full") ||
		(apiErr.Status == http.StatusServiceUnavailable && apiErr.Code == "unavailable")
}

// pendingRetry is a POS transaction the till refused; the POS retries it, with the
// same transaction id and body, once the till recovers.
type pendingRetry struct{ code, tx string }

// codeSupply hands out unused coupon codes.
type codeSupply struct{ codes []string }

func (s *codeSupply) next(t *testing.T) string {
	t.Helper()
	if len(s.codes) == 0 {
		t.Fatal("the scenario ran out of coupons")
	}
	c := s.codes[0]
	s.codes = s.codes[1:]
	return c
}

// checkAlive checks that a till in trouble still runs, answers /healthz and reports
// its status, and that a POS retry of a transaction answered before the trouble gets
// the first answer again, from the ledger.
func checkAlive(t *testing.T, a *Agent, replayCode, replayTx, replayID string) {
	t.Helper()
	ctx := t.Context()
	if !a.Running() {
		t.Fatalf("till %s: the agent process has exited\n%s", a.Name(), LogTail(a.LogPath, 4000))
	}
	if err := a.Healthz(ctx); err != nil {
		t.Errorf("till %s: %v", a.Name(), err)
	}
	if _, err := a.POS().Status(ctx); err != nil {
		t.Errorf("till %s: GET /v1/status: %v", a.Name(), err)
	}
	r, err := a.POS().Redeem(ctx, RedeemRequest{Code: replayCode, TransactionID: replayTx, Bill: bill})
	if err != nil || r.RedemptionID != replayID || !r.Replayed {
		t.Errorf("till %s: the POS's retry of transaction %s: %+v, %v; want a replay of redemption %s", a.Name(), replayTx, r, err, replayID)
	}
}

// retryRefused replays the POS's retries of the transactions the till refused: each
// must now be accepted, and joins want.
func retryRefused(t *testing.T, a *Agent, retries []pendingRetry, want map[string]string) {
	t.Helper()
	for _, p := range retries {
		r, err := a.POS().Redeem(t.Context(), RedeemRequest{Code: p.code, TransactionID: p.tx, Bill: bill})
		if err != nil {
			t.Fatalf("till %s: the POS's retry of refused transaction %s (%s): %v", a.Name(), p.tx, p.code, err)
		}
		want[p.code] = r.RedemptionID
	}
}

// checkTillLedger stops the till and runs `tillkeep agent check` on its ledger: bbolt's
// page check and the ledger's invariants, after everything the scenario put it through.
func checkTillLedger(t *testing.T, a *Agent) {
	t.Helper()
	must(t, a.Stop())
	res, err := RunCLI(t.Context(), a.Bin, "agent", "check", "--config", a.ConfigPath)
	must(t, err)
	if res.ExitCode != 0 {
		t.Errorf("tillkeep agent check of till %s: exit %d:\n%s%s", a.Name(), res.ExitCode, res.Stdout, res.Stderr)
	}
}

// The till's disk fills up while it is offline. It keeps whatever fits in the space
// its ledger already holds and then refuses with 507 storage_full (or 503): never a 201
// it cannot keep, never a crash. Online, the platform may accept a redemption the till
// cannot journal: the till refuses it too, and the POS's retry after recovery gets the
// same redemption, not a second one. When space returns everything is accepted again,
// survives a power cut, and converges exactly once.
func TestTillDiskFull(t *testing.T) {
	requireMounts(t)
	c := newCluster(t)
	ctx := t.Context()
	supply := &codeSupply{codes: Codes("DF", 600)}
	setUpOffer(t, c, "DF40", supply.codes)
	till := addTillOnDisk(t, c, "T01", AgentOptions{MaxOfflineRedemptions: 100_000},
		func(dir string) error { return MountTmpfs(ctx, dir, tmpfsSize) })
	must(t, WaitSynced(ctx, syncTimeout, len(supply.codes), till))

	want := map[string]string{}
	code := supply.next(t)
	want[code] = redeem(t, till, code, "DF-online-0", "online").RedemptionID
	must(t, till.Link(faultproxy.Refuse{}))
	replayCode := supply.next(t)
	replayID := redeem(t, till, replayCode, "DF-offline-0", "offline").RedemptionID
	want[replayCode] = replayID

	ballast := filepath.Join(till.DataDir, "ballast")
	n, err := FillFilesystem(ballast)
	must(t, err)
	t.Logf("the till's %d MiB disk is full: %d bytes of ballast", tmpfsSize>>20, n)

	// Offline on a full disk: redemptions that fit in the ledger's free pages are
	// accepted (and must be kept), then the till must refuse.
	var retries []pendingRetry
	accepted := 0
	for i := 0; len(retries) < 3; i++ {
		if i >= 400 {
			t.Fatalf("%d redemptions accepted on a full disk, %d refused: want refusals once the ledger's space is used up", accepted, len(retries))
		}
		code, tx := supply.next(t), fmt.Sprintf("DF-full-%03d", i)
		r, err := till.POS().Redeem(ctx, RedeemRequest{Code: code, TransactionID: tx, Bill: bill})
		switch {
		case err == nil && r.Mode == "offline":
			accepted++
			want[code] = r.RedemptionID
		case isStorageRefusal(err):
			if len(retries) == 0 {
				t.Logf("offline on a full disk: %d accepted into the ledger's free pages, then refused: %v", accepted, err)
			}
			retries = append(retries, pendingRetry{code, tx})
		default:
			t.Fatalf("offline redemption %d on a full disk: %+v, %v; want 201 offline, or 507 storage_full / 503 unavailable", i, r, err)
		}
	}
	checkAlive(t, till, replayCode, "DF-offline-0", replayID)

	// Online on a full disk: the till refuses what it cannot journal, even when the
	// platform accepted it.
	must(t, till.Link(faultproxy.Pass{}))
	must(t, WaitMode(ctx, syncTimeout, "online", till))
	var onlineRefused []string
	for i := range 3 {
		code, tx := supply.next(t), fmt.Sprintf("DF-full-online-%d", i)
		r, err := till.POS().Redeem(ctx, RedeemRequest{Code: code, TransactionID: tx, Bill: bill})
		switch {
		case err == nil:
			want[code] = r.RedemptionID
		case isStorageRefusal(err):
			retries = append(retries, pendingRetry{code, tx})
			onlineRefused = append(onlineRefused, code)
		default:
			t.Fatalf("online redemption on a full disk: %+v, %v; want 201, or 507 storage_full / 503 unavailable", r, err)
		}
	}
	held := 0
	for _, code := range onlineRefused {
		list, err := c.Platform.Ops().Redemptions(ctx, RedemptionFilter{Code: code})
		must(t, err)
		held += len(list)
	}
	t.Logf("online on a full disk: %d of 3 refused by the till; the platform holds %d of those (the POS's retry must get them, not new ones)",
		len(onlineRefused), held)
	checkAlive(t, till, replayCode, "DF-offline-0", replayID)

	// Space returns: the POS's retries are accepted, new redemptions too, and all of it
	// survives a power cut.
	must(t, os.Remove(ballast))
	retryRefused(t, till, retries, want)
	for i := range 3 {
		code := supply.next(t)
		want[code] = redeem(t, till, code, fmt.Sprintf("DF-after-%d", i), "online").RedemptionID
	}
	must(t, till.Kill())
	must(t, till.Start(ctx))
	must(t, WaitConverged(ctx, convergeTimeout, till))
	waitPlatformCount(t, c, till, len(want))
	checkOnPlatformOnce(t, c, till, want)
	checkAcked(t, c, till, uint64(len(want)))
	checkTillLedger(t, till)
}

// The till's data directory turns read-only under the running agent, as ext4 with
// errors=remount-ro does when the disk fails. (A tmpfs cannot be made read-only while the
// agent holds its ledger open: Linux refuses with EBUSY, so the scenario uses ext4 on a
// loop device and the kernel's own error hook.) The till refuses every redemption with a
// clear 503/507 and keeps serving; after the operator's repair (stop, fsck, mount, start)
// everything acknowledged before the failure is there, and it all converges exactly once.
func TestTillDataDirTurnsReadOnly(t *testing.T) {
	requireMounts(t, "mkfs.ext4", "e2fsck")
	c := newCluster(t)
	ctx := t.Context()
	supply := &codeSupply{codes: Codes("RO", 40)}
	setUpOffer(t, c, "RO40", supply.codes)
	var disk *Ext4Disk
	till := addTillOnDisk(t, c, "T01", AgentOptions{}, func(dir string) error {
		var err error
		disk, err = NewExt4Disk(ctx, filepath.Join(t.TempDir(), "till-disk.img"), dir, 32<<20)
		return err
	})
	must(t, WaitSynced(ctx, syncTimeout, len(supply.codes), till))

	want := map[string]string{}
	code := supply.next(t)
	want[code] = redeem(t, till, code, "RO-online-0", "online").RedemptionID
	must(t, till.Link(faultproxy.Refuse{}))
	var replayCode, replayID string
	for i := range 3 {
		replayCode = supply.next(t)
		replayID = redeem(t, till, replayCode, fmt.Sprintf("RO-offline-%d", i), "offline").RedemptionID
		want[replayCode] = replayID
	}

	if err := disk.FailReadOnly(ctx); err != nil {
		t.Skipf("disk faults: cannot make ext4 fail here: %v", err)
	}
	var retries []pendingRetry
	for i := range 3 {
		code, tx := supply.next(t), fmt.Sprintf("RO-failed-%d", i)
		r, err := till.POS().Redeem(ctx, RedeemRequest{Code: code, TransactionID: tx, Bill: bill})
		if !isStorageRefusal(err) {
			t.Fatalf("redemption on a read-only data dir: %+v, %v; want 503 unavailable or 507 storage_full", r, err)
		}
		if i == 0 {
			t.Logf("refused on a read-only data dir: %v", err)
		}
		retries = append(retries, pendingRetry{code, tx})
	}
	checkAlive(t, till, replayCode, "RO-offline-2", replayID)

	// The operator's repair. The agent must still stop gracefully.
	must(t, till.Stop())
	must(t, disk.Unmount())
	must(t, disk.Repair(ctx))
	must(t, disk.Mount(ctx))
	must(t, till.Start(ctx))
	must(t, till.Link(faultproxy.Pass{}))
	retryRefused(t, till, retries, want)
	must(t, WaitConverged(ctx, convergeTimeout, till))
	waitPlatformCount(t, c, till, len(want))
	checkOnPlatformOnce(t, c, till, want)
	checkAcked(t, c, till, uint64(len(want)))
	checkTillLedger(t, till)
}

// The till starts on a data directory that is read-only (a tmpfs remounted read-only
// while the agent was stopped: a till rebooting onto a filesystem the kernel mounted
// read-only after an error). It must refuse clearly and acknowledge nothing; once the
// directory is writable again it starts, and nothing it held is lost.
func TestTillStartsOnReadOnlyDataDir(t *testing.T) {
	requireMounts(t)
	c := newCluster(t)
	ctx := t.Context()
	supply := &codeSupply{codes: Codes("RS", 20)}
	setUpOffer(t, c, "RS40", supply.codes)
	till := addTillOnDisk(t, c, "T01", AgentOptions{},
		func(dir string) error { return MountTmpfs(ctx, dir, tmpfsSize) })
	must(t, WaitSynced(ctx, syncTimeout, len(supply.codes), till))
	want := map[string]string{}
	code := supply.next(t)
	want[code] = redeem(t, till, code, "RS-online-0", "online").RedemptionID
	must(t, till.Link(faultproxy.Refuse{}))
	code = supply.next(t)
	want[code] = redeem(t, till, code, "RS-offline-0", "offline").RedemptionID

	must(t, till.Stop())
	must(t, Remount(ctx, till.DataDir, "ro"))
	offset := logSize(till.LogPath)
	err := till.Start(ctx)
	switch {
	case err == nil:
		// It serves: then it must refuse every redemption clearly.
		code := supply.next(t)
		r, rerr := till.POS().Redeem(ctx, RedeemRequest{Code: code, TransactionID: "RS-ro-0", Bill: bill})
		if !isStorageRefusal(rerr) {
			t.Fatalf("redemption by an agent started on a read-only data dir: %+v, %v; want 503 unavailable or 507 storage_full", r, rerr)
		}
		t.Logf("the agent serves on a read-only data dir and refuses: %v", rerr)
		must(t, till.Stop())
	case till.Running():
		t.Fatalf("start on a read-only data dir: %v, yet the agent runs", err)
	default:
		// It refuses to start: with a message naming the cause, not a panic.
		out := readLogFrom(t, till.LogPath, offset)
		if !strings.Contains(out, "read-only file system") {
			t.Errorf("the agent refused to start on a read-only data dir without saying why:\n%s", out)
		}
		if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
			t.Errorf("the agent crashed on a read-only data dir:\n%s", out)
		}
		t.Logf("the agent refuses to start on a read-only data dir: %s", lastLines(out, 2))
	}

	must(t, Remount(ctx, till.DataDir, "rw"))
	must(t, till.Start(ctx))
	must(t, till.Link(faultproxy.Pass{}))
	must(t, WaitMode(ctx, syncTimeout, "online", till))
	code = supply.next(t)
	want[code] = redeem(t, till, code, "RS-online-1", "online").RedemptionID
	must(t, WaitConverged(ctx, convergeTimeout, till))
	waitPlatformCount(t, c, till, len(want))
	checkOnPlatformOnce(t, c, till, want)
	checkAcked(t, c, till, uint64(len(want)))
}

func readLogFrom(t *testing.T, path string, offset int64) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	if int64(len(b)) < offset {
		return string(b)
	}
	return string(b[offset:])
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// clockSlack is how far a corrected stamp may be from the real time of its event: the
// offset is measured over loopback at the last contact.
const clockSlack = 5 * time.Second

// Two tills of one store, one clock 3 days ahead and one 3 days behind (the agent's
// TILLKEEP_TEST_CLOCK_OFFSET: Go reads the clock without libc, so faketime cannot skew
// it). Both keep selling online and offline; each measures its offset at sync and
// stamps its journal with corrected HLC stamps while keeping its wrong wall time; the
// platform judges by the stamps and flags clock_skew. A coupon used first at the till
// that runs ahead, then at the one that runs behind, is won by the first use in real
// time, although the second till's wall clock puts its use 6 days earlier.
func TestTillClockSkew(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	supply := &codeSupply{codes: Codes("CLK", 20)}
	setUpOffer(t, c, "CLK40", supply.codes)
	skews := map[string]time.Duration{"T01": 72 * time.Hour, "T02": -72 * time.Hour}
	var tills []*Agent
	for _, id := range []string{"T01", "T02"} {
		bin, err := EnvBinary(filepath.Join(c.Dir, "bin-"+id), c.Bin, "TILLKEEP_TEST_CLOCK_OFFSET="+skews[id].String())
		must(t, err)
		a, err := c.AddTillWith(ctx, bin, AgentOptions{StoreID: "S001", TillID: id}, nil)
		must(t, err)
		tills = append(tills, a)
	}
	ahead, behind := tills[0], tills[1]
	must(t, WaitSynced(ctx, syncTimeout, len(supply.codes), tills...))

	// Each till measured the platform's clock against its own.
	for _, a := range tills {
		st := status(t, a)
		if st.Sync == nil {
			t.Fatalf("till %s: its status has no sync section", a.Name())
		}
		want := -skews[a.TillID]
		if got := time.Duration(st.Sync.ClockOffsetMS) * time.Millisecond; (got - want).Abs() > clockSlack {
			t.Errorf("till %s (clock %+v): sync.clock_offset_ms %s, want about %s", a.Name(), skews[a.TillID], got, want)
		}
	}

	type sale struct {
		till           *Agent
		code, id, mode string
		from, to       time.Time // the real time around the POS call
	}
	var sales []sale
	sell := func(a *Agent, code, tx, mode string) sale {
		from := time.Now()
		r := redeem(t, a, code, tx, mode)
		s := sale{till: a, code: code, id: r.RedemptionID, mode: mode, from: from, to: time.Now()}
		sales = append(sales, s)
		return s
	}
	for _, a := range tills {
		sell(a, supply.next(t), a.TillID+"-online", "online")
	}
	for _, a := range tills {
		must(t, a.Link(faultproxy.Refuse{}))
	}
	for _, a := range tills {
		for i := range 2 {
			sell(a, supply.next(t), fmt.Sprintf("%s-offline-%d", a.TillID, i), "offline")
		}
	}
	double := supply.next(t)
	first := sell(ahead, double, "T01-double", "offline")
	// The two uses must be further apart in real time than the error of the tills'
	// offset estimates (milliseconds over loopback), so that which came first is not a
	// coin toss.
	time.Sleep(300 * time.Millisecond)
	second := sell(behind, double, "T02-double", "offline")

	for _, a := range tills {
		must(t, a.Link(faultproxy.Pass{}))
	}
	must(t, WaitConverged(ctx, convergeTimeout, tills...))
	byTill := map[*Agent]map[string]RedemptionRecord{}
	for _, a := range tills {
		want := map[string]string{}
		for _, s := range sales {
			if s.till == a {
				want[s.code] = s.id
			}
		}
		waitPlatformCount(t, c, a, len(want))
		checkOnPlatformOnce(t, c, a, want)
		records, err := c.Platform.Ops().RedemptionRecords(ctx, a.StoreID, a.TillID)
		must(t, err)
		byTill[a] = map[string]RedemptionRecord{}
		for _, r := range records {
			byTill[a][r.ID] = r
		}
	}

	for _, s := range sales {
		r := byTill[s.till][s.id]
		skew := skews[s.till.TillID]
		hlc := time.UnixMilli(r.HLC.WallMS)
		// The wall time is the till's own, wrong by its skew: kept, not trusted.
		if off := r.At.Sub(s.from); (off - skew).Abs() > clockSlack+s.to.Sub(s.from) {
			t.Errorf("till %s, %s redemption %s: at %s is %s from the real time, want the till's wall clock, about %s off",
				s.till.Name(), s.mode, s.code, r.At.Format(time.RFC3339), off.Round(time.Second), skew)
		}
		// The stamp is corrected by the offset the till measured.
		if hlc.Before(s.from.Add(-clockSlack)) || hlc.After(s.to.Add(clockSlack)) {
			t.Errorf("till %s, %s redemption %s: HLC stamp %s, want the real time of the sale (%s to %s): the offset was not applied",
				s.till.Name(), s.mode, s.code, hlc.UTC().Format(time.RFC3339Nano), s.from.UTC().Format(time.RFC3339Nano), s.to.UTC().Format(time.RFC3339Nano))
		}
		if s.mode != "offline" {
			continue
		}
		// An uploaded redemption is judged at its stamp and flagged.
		if !r.EventAt.Equal(hlc) {
			t.Errorf("till %s, offline redemption %s: judged at %s, want its HLC stamp %s",
				s.till.Name(), s.code, r.EventAt.Format(time.RFC3339Nano), hlc.UTC().Format(time.RFC3339Nano))
		}
		if !slices.Contains(r.Flags, "clock_skew") {
			t.Errorf("till %s (clock %+v), offline redemption %s: flags %v, want clock_skew", s.till.Name(), skew, s.code, r.Flags)
		}
		if got := time.Duration(r.SkewMS) * time.Millisecond; (got - skew).Abs() > clockSlack {
			t.Errorf("till %s, offline redemption %s: skew_ms %s, want about %s", s.till.Name(), s.code, got, skew)
		}
	}

	// The first use in real time wins, whatever the wall clocks say.
	if r := byTill[ahead][first.id]; r.Status != "accepted" {
		t.Errorf("the first use of %s (till %s, clock ahead): status %q, want accepted", double, ahead.Name(), r.Status)
	}
	if r := byTill[behind][second.id]; r.Status != "conflict" || r.ConflictKind != "double_redemption" {
		t.Errorf("the second use of %s (till %s, clock behind, wall time 6 days earlier): status %q kind %q, want conflict double_redemption",
			double, behind.Name(), r.Status, r.ConflictKind)
	}
	if cases := openConflictsOn(t, c, double); len(cases) != 1 || !SameSet(cases[0].RedemptionIDs, []string{first.id, second.id}) {
		t.Errorf("open cases on %s: %+v, want one naming %s and %s", double, cases, first.id, second.id)
	}

	t.Run("OnlineRedemptionsFlagged", func(t *testing.T) {
		for _, s := range sales {
			if r := byTill[s.till][s.id]; s.mode == "online" && !slices.Contains(r.Flags, "clock_skew") {
				t.Errorf("till %s (clock %+v), online redemption %s: flags %v, want clock_skew",
					s.till.Name(), skews[s.till.TillID], s.code, r.Flags)
			}
		}
	})
}
