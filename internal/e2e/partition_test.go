package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep/internal/faultproxy"
)

// The partition matrix (issue #6): the link between two tills of one store and the
// platform is put in each failure state in turn, one named subtest per state. In every
// state both tills keep redeeming, each redemption answers 201 within the online budget
// plus a margin, and one coupon is used at both tills; after healing, the system
// converges exactly once: every 201 is on the platform once and nothing else is, the
// platform acknowledged each till's whole journal, nothing is pending at either till,
// and each double use is one double_redemption case.
//
// The cells run in order on one cluster, so its start-up is paid once; the checks are
// cumulative (every redemption made since the start, per till). A failed cell stops
// the matrix: the cells after it would inherit its mess. Run one cell alone with
// -run 'TestPartitionMatrix/HTTP429RetryAfter'.
//
// The cells that overlap other scenarios keep to the state itself: the blackhole's
// breaker timings in detail are TestBlackholedLink, a platform killed in the middle of
// an upload is TestPlatformRestartMidUpload, a deeper restore is
// TestPlatformRestoredFromOlderCopy.

const (
	// matrixTimeout is platform.timeout of the matrix's tills.
	matrixTimeout = 800 * time.Millisecond
	// answerMargin is how much longer than the online budget a redemption may take: the
	// machine running the tests is shared and busy. A cashier-facing bound, not a
	// benchmark.
	answerMargin = 1500 * time.Millisecond
	// freshPerCell is how many unused coupons each till redeems in each state, besides
	// the double use.
	freshPerCell = 3
	// stateHold is how long a state lasts at least: longer than the tills' sync period
	// (1 s) plus its jitter, so that their pushes and the breaker's probes meet the
	// fault too, not only the online attempts.
	stateHold = 3 * time.Second
	// matrixCodesPerCell leaves room for the 429 cell, which keeps redeeming while it
	// watches the tills' request rate.
	matrixCodesPerCell = 40
)

// retryAfterHeader is what the 429 cell's proxies answer with: an hour, far beyond the
// till's 10 s cap, so that a till that honoured it without a cap would not come back
// within the cell, and one that ignored it would show in the request count.
const retryAfterHeader = "3600"

type partitionMatrix struct {
	c     *Cluster
	tills []*Agent // T01, T02
	// want is every redemption answered 201 since the start, per till: code → id.
	want map[*Agent]map[string]string
	// codes are each cell's unused coupons, taken in order.
	codes map[string][]string
}

// cellState is one state of the matrix: its tag (coupon prefix) and what it does.
type cellState struct {
	name string
	tag  string
	run  func(m *partitionMatrix, t *testing.T, tag string)
}

func TestPartitionMatrix(t *testing.T) {
	cells := []cellState{
		{"Reset", "RST", func(m *partitionMatrix, t *testing.T, tag string) {
			m.linkCell(t, tag, faultproxy.Reset{}, linkCellOptions{})
		}},
		{"Blackhole", "BLK", func(m *partitionMatrix, t *testing.T, tag string) {
			m.linkCell(t, tag, faultproxy.Blackhole{}, linkCellOptions{breakerSpares: true})
		}},
		{"HTTP503", "503", func(m *partitionMatrix, t *testing.T, tag string) {
			m.linkCell(t, tag, faultproxy.HTTPStatus{Code: http.StatusServiceUnavailable,
				Header: http.Header{"Content-Type": {"application/json"}},
				Body:   `{"error":{"code":"unavailable","message":"the platform is down for maintenance"}}`,
			}, linkCellOptions{})
		}},
		{"HTTP429RetryAfter", "429", func(m *partitionMatrix, t *testing.T, tag string) {
			m.linkCell(t, tag, faultproxy.HTTPStatus{Code: http.StatusTooManyRequests,
				Header: http.Header{"Retry-After": {retryAfterHeader}, "Content-Type": {"application/json"}},
				Body:   `{"error":{"code":"rate_limited","message":"slow down"}}`,
			}, linkCellOptions{
				// Long enough that a till ignoring Retry-After (several requests a
				// second) cannot pass for one honouring it (a push every 10 s, probes
				// backing off from 1 s to 15 s).
				hold: 12 * time.Second,
				// A sane rate: one request per 2 s, plus the online attempt that opens
				// the breaker and a few probes.
				maxRequests: func(d time.Duration) int64 { return 4 + int64(d/(2*time.Second)) },
				// The cap (10 s) bounds how long a till waits once the link heals; an
				// uncapped Retry-After would hold its push for the whole bulk-call
				// timeout (2 minutes).
				healWithin: 45 * time.Second,
			})
		}},
		{"SlowLink", "SLW", func(m *partitionMatrix, t *testing.T, tag string) {
			// Every chunk waits twice the online budget: online calls time out, while
			// the bulk client's pushes still get through, slowly.
			m.linkCell(t, tag, faultproxy.Slow{Latency: 2 * matrixTimeout, BytesPerSecond: 50_000}, linkCellOptions{})
		}},
		{"CutMidResponse", "CUT", func(m *partitionMatrix, t *testing.T, tag string) {
			// Requests reach the platform whole and it commits them; the answers are
			// cut after 200 bytes: past the headers (about 150 bytes), inside the JSON
			// body of a 201 redemption (about 330 bytes in all) or of a position read
			// (about 250). A 201 whose body never arrives is no decision. Each till's
			// first redemption is attempted online: the platform records it, the till
			// never hears so, decides offline under the same redemption id, and its
			// upload must be recognised as the same redemption.
			m.linkCell(t, tag, faultproxy.CutAfter{Bytes: 200}, linkCellOptions{landsOnline: true})
		}},
		{"PlatformRestarted", "RES", (*partitionMatrix).platformRestartedCell},
		{"PlatformRestoredFromOlderBackup", "BAK", (*partitionMatrix).platformRestoredCell},
	}

	c := newCluster(t)
	ctx := t.Context()
	m := &partitionMatrix{c: c, want: map[*Agent]map[string]string{}, codes: map[string][]string{}}
	var all []string
	for _, cell := range cells {
		m.codes[cell.tag] = Codes("PM"+cell.tag, matrixCodesPerCell)
		all = append(all, m.codes[cell.tag]...)
	}
	setUpOffer(t, c, "PM40", all)
	opts := AgentOptions{Timeout: matrixTimeout}
	m.tills = []*Agent{addTill(t, c, "T01", opts), addTill(t, c, "T02", opts)}
	for _, a := range m.tills {
		m.want[a] = map[string]string{}
	}
	must(t, WaitSynced(ctx, syncTimeout, len(all), m.tills...))

	start := time.Now()
	for _, cell := range cells {
		cellStart, ran := time.Now(), false
		ok := t.Run(cell.name, func(t *testing.T) { ran = true; cell.run(m, t, cell.tag) })
		if ran {
			t.Logf("cell %s: %s", cell.name, time.Since(cellStart).Round(time.Millisecond))
		}
		if !ok {
			t.Fatalf("cell %s failed; the cells after it share its cluster and were not run", cell.name)
		}
	}
	t.Logf("partition matrix: %d cells in %s", len(cells), time.Since(start).Round(time.Millisecond))
}

// linkCellOptions tune a cell in which the tills' links are in one proxy mode.
type linkCellOptions struct {
	// breakerSpares: an online attempt in this state waits for its whole budget, so
	// after the first the breaker must spare the till the wait.
	breakerSpares bool
	// hold keeps the state at least this long (default stateHold), the tills redeeming
	// about once a second.
	hold time.Duration
	// maxRequests bounds the requests each till's proxy may answer itself over d of
	// the state (HTTPStatus modes only).
	maxRequests func(d time.Duration) int64
	// healWithin bounds the convergence after healing (default convergeTimeout).
	healWithin time.Duration
	// landsOnline: each till's first redemption reaches the platform, which accepts
	// it online, although the till answered the POS offline.
	landsOnline bool
}

// linkCell puts both tills' links in mode, redeems through it, heals and checks.
func (m *partitionMatrix) linkCell(t *testing.T, tag string, mode faultproxy.Mode, opts linkCellOptions) {
	ctx := t.Context()
	before := m.proxyStats()
	for _, a := range m.tills {
		must(t, a.Link(mode))
	}
	entered := time.Now()
	double, ids, firsts := m.redeemThrough(t, tag, "offline", opts.breakerSpares)
	hold := opts.hold
	if hold == 0 {
		hold = stateHold
	}
	m.keepRedeeming(t, tag, "offline", entered, hold)
	held := time.Since(entered)
	stats := m.proxyStats()
	for _, a := range m.tills {
		must(t, a.Link(faultproxy.Pass{}))
	}
	healed := time.Now()
	for i, a := range m.tills {
		s, b := stats[i], before[i]
		answered := s.Answered - b.Answered
		t.Logf("till %s over %s of %s: the proxy accepted %d connections, reset %d, cut %d, held data %d times, answered %d requests itself",
			a.Name(), held.Round(time.Millisecond), mode, s.Accepted-b.Accepted, s.Resets-b.Resets, s.Cuts-b.Cuts, s.Blackholed-b.Blackholed, answered)
		// Every mode but Slow counts what it did; the online attempt that opened the
		// breaker is one, the sync loop (pushes, probes) must have met the fault too.
		if _, slow := mode.(faultproxy.Slow); !slow {
			if met := s.Resets - b.Resets + s.Cuts - b.Cuts + s.Blackholed - b.Blackholed + answered; met < 2 {
				t.Errorf("till %s: the fault acted %d times in %s of %s: the sync loop never met it, the cell tested only the online path",
					a.Name(), met, held.Round(time.Millisecond), mode)
			}
		}
		if opts.maxRequests != nil {
			if limit := opts.maxRequests(held); answered > limit {
				t.Errorf("till %s sent %d requests in %s of %s: it hammers the platform (want at most %d: Retry-After honoured, capped at 10 s, probes backing off)",
					a.Name(), answered, held.Round(time.Millisecond), mode, limit)
			}
			if answered == 0 {
				t.Errorf("till %s sent no request in %s of %s: the cell tested nothing", a.Name(), held.Round(time.Millisecond), mode)
			}
		}
	}
	within := opts.healWithin
	if within == 0 {
		within = convergeTimeout
	}
	m.converge(t, within)
	t.Logf("converged %s after healing", time.Since(healed).Round(time.Millisecond))
	m.checkDoubleUse(t, double, ids)
	if opts.landsOnline {
		for i, a := range m.tills {
			list, err := m.c.Platform.Ops().Redemptions(ctx, RedemptionFilter{TillID: a.TillID, StoreID: a.StoreID, Mode: "online"})
			must(t, err)
			found := false
			for _, r := range list {
				found = found || r.ID == firsts[i]
			}
			if !found {
				t.Errorf("till %s: its first redemption %s in %s is not recorded online on the platform: the online attempt did not land, the cell did not test the fallback under the same id",
					a.Name(), firsts[i], mode)
			}
		}
	}
}

// platformRestartedCell stops the platform (SIGTERM, which it must obey within 5 s),
// redeems at both tills while it is down, and starts it again on the same data.
func (m *partitionMatrix) platformRestartedCell(t *testing.T, tag string) {
	ctx := t.Context()
	must(t, m.c.Platform.Stop())
	down := time.Now()
	double, ids, _ := m.redeemThrough(t, tag, "offline", false)
	m.keepRedeeming(t, tag, "offline", down, stateHold)
	must(t, m.c.Platform.Start(ctx))
	m.converge(t, convergeTimeout)
	m.checkDoubleUse(t, double, ids)
}

// platformRestoredCell restores the platform from a copy of its data taken at the start
// of the cell, after both tills had redeemed and uploaded since: the platform has lost
// their redemptions and must get them again. In the restored state T02 redeems online
// the coupon T01 used before the restore (the platform no longer knows it was used),
// while T01 is cut off and keeps redeeming offline; when T01 comes back and re-sends,
// that coupon is one double_redemption case.
func (m *partitionMatrix) platformRestoredCell(t *testing.T, tag string) {
	ctx := t.Context()
	p := m.c.Platform
	t1, t2 := m.tills[0], m.tills[1]

	must(t, p.Stop())
	older := filepath.Join(t.TempDir(), "platform-data-copy")
	must(t, p.CopyData(older))
	must(t, p.Start(ctx))
	must(t, WaitMode(ctx, syncTimeout, "online", m.tills...))

	// After the copy: fresh redemptions at both tills, and the future double use at
	// T01, all online and uploaded.
	double := m.next(t, tag)
	for range freshPerCell {
		for _, a := range m.tills {
			m.redeemFresh(t, a, tag, "online", matrixTimeout+answerMargin)
		}
	}
	first := m.redeemCode(t, t1, double, tag, "online", matrixTimeout+answerMargin)
	m.converge(t, convergeTimeout)

	// The restore: what happened since the copy is gone from the platform. Both links
	// are cut while the loss is checked, or a till re-sends before the check looks.
	must(t, t1.Link(faultproxy.Refuse{}))
	must(t, t2.Link(faultproxy.Refuse{}))
	must(t, p.Stop())
	must(t, p.RestoreData(older))
	must(t, p.Start(ctx))
	if held, err := p.Ops().Redemptions(ctx, RedemptionFilter{Code: double}); err != nil {
		t.Fatal(err)
	} else if len(held) != 0 {
		t.Fatalf("the restored platform already lists %d redemptions of %s; the copy predates its use", len(held), double)
	}
	for _, a := range m.tills {
		acked, err := p.Ops().AckedSeq(ctx, a.StoreID, a.TillID)
		must(t, err)
		if n := uint64(len(m.want[a])); acked >= n {
			t.Fatalf("the restored platform acknowledges %d entries of till %s, which answered %d: the copy lost nothing", acked, a.Name(), n)
		} else {
			t.Logf("the restored platform acknowledges %d of the %d entries of till %s", acked, n, a.Name())
		}
	}

	must(t, t2.Link(faultproxy.Pass{}))
	must(t, WaitMode(ctx, syncTimeout, "online", t2))
	second := m.redeemCode(t, t2, double, tag, "online", matrixTimeout+answerMargin)
	for range freshPerCell {
		m.redeemFresh(t, t2, tag, "online", matrixTimeout+answerMargin)
		m.redeemFresh(t, t1, tag, "offline", matrixTimeout+answerMargin)
	}
	must(t, t1.Link(faultproxy.Pass{}))
	m.converge(t, convergeTimeout)
	m.checkDoubleUse(t, double, [2]string{first.RedemptionID, second.RedemptionID})
}

// redeemThrough redeems freshPerCell unused coupons at each till, in mode, then one
// coupon at both tills (T01 first). Every redemption must answer 201 within the online
// budget plus a margin; with breakerSpares, the redemptions after a till's first must
// not wait for the platform. It returns the double-used code, both its redemption ids,
// and the id of each till's first redemption.
func (m *partitionMatrix) redeemThrough(t *testing.T, tag, mode string, breakerSpares bool) (double string, ids, firsts [2]string) {
	t.Helper()
	bound := matrixTimeout + answerMargin
	later := map[*Agent][]time.Duration{}
	for i := range freshPerCell {
		for j, a := range m.tills {
			r := m.redeemFresh(t, a, tag, mode, bound)
			if i == 0 {
				firsts[j] = r.RedemptionID
			} else {
				later[a] = append(later[a], r.Elapsed)
			}
		}
	}
	double = m.next(t, tag)
	for i, a := range m.tills {
		r := m.redeemCode(t, a, double, tag, mode, bound)
		later[a] = append(later[a], r.Elapsed)
		ids[i] = r.RedemptionID
	}
	if ids[0] == ids[1] {
		t.Fatalf("both tills answered redemption id %s for %s", ids[0], double)
	}
	for _, a := range m.tills {
		var total time.Duration
		for _, d := range later[a] {
			total += d
		}
		t.Logf("till %s: the redemptions after its first took %s together (%d)", a.Name(), total.Round(time.Millisecond), len(later[a]))
		// With the breaker closed each of them would wait the whole budget.
		if breakerSpares && total >= time.Duration(len(later[a])-1)*matrixTimeout {
			t.Errorf("till %s: %d redemptions after the first took %s together: they waited for the platform, the breaker did not spare them",
				a.Name(), len(later[a]), total.Round(time.Millisecond))
		}
	}
	return double, ids, firsts
}

// keepRedeeming has each till redeem an unused coupon about once a second until the
// state has lasted hold since entered.
func (m *partitionMatrix) keepRedeeming(t *testing.T, tag, mode string, entered time.Time, hold time.Duration) {
	t.Helper()
	for time.Since(entered) < hold {
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(min(time.Second, time.Until(entered.Add(hold)))):
		}
		for _, a := range m.tills {
			m.redeemFresh(t, a, tag, mode, matrixTimeout+answerMargin)
		}
	}
}

// next takes the cell's next unused coupon.
func (m *partitionMatrix) next(t *testing.T, tag string) string {
	t.Helper()
	codes := m.codes[tag]
	if len(codes) == 0 {
		t.Fatalf("cell %s ran out of coupons", tag)
	}
	m.codes[tag] = codes[1:]
	return codes[0]
}

func (m *partitionMatrix) redeemFresh(t *testing.T, a *Agent, tag, mode string, bound time.Duration) Redeemed {
	t.Helper()
	return m.redeemCode(t, a, m.next(t, tag), tag, mode, bound)
}

// redeemCode redeems code at till a; it must answer 201 in mode within bound, and it
// joins the redemptions the platform must end up with.
func (m *partitionMatrix) redeemCode(t *testing.T, a *Agent, code, tag, mode string, bound time.Duration) Redeemed {
	t.Helper()
	r := redeem(t, a, code, fmt.Sprintf("%s-%s-%s", tag, a.TillID, code), mode)
	if r.Elapsed > bound {
		t.Errorf("till %s: redeeming %s took %s, want under %s (platform.timeout %s + %s)",
			a.Name(), code, r.Elapsed.Round(time.Millisecond), bound, matrixTimeout, answerMargin)
	}
	m.want[a][code] = r.RedemptionID
	return r
}

// converge waits until both tills are online with nothing pending and the platform has
// acknowledged every redemption they answered, then checks that it holds each of them
// exactly once and nothing else.
func (m *partitionMatrix) converge(t *testing.T, within time.Duration) {
	t.Helper()
	ctx := t.Context()
	ops := m.c.Platform.Ops()
	err := WaitFor(ctx, within, "both tills converged with the platform", func(ctx context.Context) (bool, string, error) {
		var seen []string
		done := true
		for _, a := range m.tills {
			st, err := a.POS().Status(ctx)
			if err != nil {
				return false, strings.Join(seen, "; "), err
			}
			acked, err := ops.AckedSeq(ctx, a.StoreID, a.TillID)
			if err != nil {
				return false, strings.Join(seen, "; "), err
			}
			n := uint64(len(m.want[a]))
			seen = append(seen, fmt.Sprintf("%s, platform acked_seq %d of %d", DescribeStatus(a.Name(), st), acked, n))
			done = done && st.Mode == "online" && st.PendingUploads == 0 && acked == n
		}
		return done, strings.Join(seen, "; "), nil
	})
	must(t, err)
	for _, a := range m.tills {
		checkOnPlatformOnce(t, m.c, a, m.want[a])
		checkAcked(t, m.c, a, uint64(len(m.want[a])))
	}
}

// checkDoubleUse checks that the coupon used at both tills is one open
// double_redemption case naming both redemptions and both tills.
func (m *partitionMatrix) checkDoubleUse(t *testing.T, code string, ids [2]string) {
	t.Helper()
	cases := openConflictsOn(t, m.c, code)
	if len(cases) != 1 {
		t.Fatalf("open conflict cases on %s: %+v, want exactly one", code, cases)
	}
	cf := cases[0]
	if cf.Kind != "double_redemption" || !SameSet(cf.RedemptionIDs, ids[:]) || !SameSet(cf.TillIDs, []string{"T01", "T02"}) {
		t.Errorf("case on %s: %+v, want kind double_redemption with redemptions %v at T01 and T02", code, cf, ids)
	}
}

func (m *partitionMatrix) proxyStats() []faultproxy.Stats {
	out := make([]faultproxy.Stats, len(m.tills))
	for i, a := range m.tills {
		out[i] = a.Proxy.Stats()
	}
	return out
}
