package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
)

// The crash test: the real binary is killed with SIGKILL in the middle of a burst of
// offline redemptions, again and again. After each kill the agent is restarted, the POS
// retries every transaction it had sent, and the journal is checked: every redemption
// answered 201 is in it exactly once, with the redemption id the POS was given, and no
// coupon is redeemed twice.
//
// TILLKEEP_CRASH_CYCLES sets the number of kill cycles (default 10).

const (
	crashWorkers        = 8
	crashDefaultCycles  = 10
	crashCouponsPerKill = 1500
)

func TestCrashDuringOfflineBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash test builds the binary and kills it repeatedly; skipped with -short")
	}
	if runtime.GOOS == "windows" {
		t.Skip("the crash test kills the agent with SIGKILL and stops it with SIGTERM, which Windows lacks")
	}
	cycles := crashDefaultCycles
	if v := os.Getenv("TILLKEEP_CRASH_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TILLKEEP_CRASH_CYCLES=%q is not a positive number", v)
		}
		cycles = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("TILLKEEP_CRASH_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("crash test: %d cycles, seed %d (TILLKEEP_CRASH_SEED to repeat)", cycles, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))

	bin := buildTillkeep(t)
	s := newAgentTestSetup(t, "warn", "\n[offline]\nmax_redemptions = 100000000\n")
	coupons := max(2000, cycles*crashCouponsPerKill)
	snapPath := writeSnapshot(t, s.dir, agentTestSnapshot(coupons, time.Now().Add(-time.Minute)))
	if out, err := exec.Command(bin, "agent", "catalog", "import", "--config", s.configPath, "--file", snapPath).CombinedOutput(); err != nil {
		t.Fatalf("catalog import: %v\n%s", err, out)
	}

	ledger := &posLedger{byTx: map[string]*posTransaction{}}
	var nextCoupon atomic.Int64
	for cycle := range cycles {
		agentProc := startAgentProcess(t, bin, s, fmt.Sprintf("cycle%02d-a", cycle))
		killAfter := time.Duration(10+rng.IntN(291)) * time.Millisecond
		sent := ledger.burst(t, s.baseURL, cycle, coupons, &nextCoupon, rng.Uint64(), killAfter, agentProc)

		restarted := startAgentProcess(t, bin, s, fmt.Sprintf("cycle%02d-b", cycle))
		retried := ledger.retryAll(t, s.baseURL, cycle)
		restarted.stop(t)
		entries := readJournal(t, bin, s)
		ledger.check(t, cycle, entries)
		t.Logf("cycle %d: killed after %v; %d requests sent, %d answered 201 before the kill, %d retried; journal holds %d redemptions",
			cycle, killAfter, sent.sent, sent.answered, retried, len(entries))
		if t.Failed() {
			t.Logf("agent log of the killed run:\n%s", agentProc.logTail())
			t.Logf("agent log of the restart:\n%s", restarted.logTail())
			return
		}
	}
}

// buildTillkeep builds the real binary, without the race detector whatever the test
// runs with: the crash test measures the agent, not the detector.
func buildTillkeep(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "tillkeep")
	cmd := exec.Command("go", "build", "-o", exe, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// agentProcess is one run of `tillkeep agent run`.
type agentProcess struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	state   *os.ProcessState
}

func startAgentProcess(t *testing.T, bin string, s agentTestSetup, name string) *agentProcess {
	t.Helper()
	logPath := filepath.Join(s.dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "agent", "run", "--config", s.configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	p := &agentProcess{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	stop := time.Now().Add(15 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.exited:
			t.Fatalf("agent %s exited at start:\n%s", name, p.logTail())
		default:
		}
		if resp, err := client.Get(s.baseURL + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(stop) {
			t.Fatalf("agent %s did not serve /healthz within 15 s:\n%s", name, p.logTail())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *agentProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop sends SIGTERM and expects exit status 0 within the contract's 5 s.
func (p *agentProcess) stop(t *testing.T) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("the agent did not stop within 10 s of SIGTERM:\n%s", p.logTail())
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the agent took %v to stop after SIGTERM, the contract allows 5 s", took)
	}
	if code := p.state.ExitCode(); code != 0 {
		t.Fatalf("the agent exited %d after SIGTERM, want 0:\n%s", code, p.logTail())
	}
}

func (p *agentProcess) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// posTransaction is what the simulated POS knows of one transaction.
type posTransaction struct {
	id, code string
	cycle    int
	// answered: the agent said 201 with redemptionID. refused: it said 422. Neither:
	// the request was in flight when the agent died.
	answered     bool
	refused      bool
	redemptionID string
}

// posLedger is the POS side of the test: every transaction ever sent.
type posLedger struct {
	mu   sync.Mutex
	byTx map[string]*posTransaction
}

type burstCount struct{ sent, answered int }

// redeemBody is the request of a transaction; a retry sends exactly the same.
func (tx *posTransaction) redeemBody() []byte {
	j, _ := json.Marshal(map[string]any{
		"code": tx.code, "transaction_id": tx.id, "bill": map[string]any{"amount": 9000, "currency": "USD"},
	})
	return j
}

type redeemAnswer struct {
	status       int
	redemptionID string
	errCode      string
}

func postRedeem(client *http.Client, baseURL string, body []byte) (redeemAnswer, error) {
	req, err := http.NewRequest(http.MethodPost, baseURL+"/v1/redemptions", bytes.NewReader(body))
	if err != nil {
		return redeemAnswer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+agentTestToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return redeemAnswer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return redeemAnswer{}, err
	}
	var v struct {
		RedemptionID string `json:"redemption_id"`
		Error        struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return redeemAnswer{}, fmt.Errorf("answer %d %q: %w", resp.StatusCode, raw, err)
	}
	return redeemAnswer{status: resp.StatusCode, redemptionID: v.RedemptionID, errCode: v.Error.Code}, nil
}

// newPOSClient returns a client with its own connections: a pooled connection to a
// killed agent must not be reused.
func newPOSClient() *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: crashWorkers, DisableCompression: true},
	}
}

// burst runs crashWorkers POS lanes redeeming fresh coupons, one in ten times a coupon
// already used (which must be refused), and SIGKILLs the agent after killAfter.
func (l *posLedger) burst(t *testing.T, baseURL string, cycle, coupons int, next *atomic.Int64, seed uint64, killAfter time.Duration, agentProc *agentProcess) burstCount {
	t.Helper()
	client := newPOSClient()
	defer client.CloseIdleConnections()
	var sent, answered atomic.Int64
	var wg sync.WaitGroup
	for w := range crashWorkers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for n := 0; ; n++ {
				var code string
				if used := min(next.Load(), int64(coupons)); used > 0 && rng.IntN(10) == 0 {
					code = fmt.Sprintf("C%04d", 1+rng.Int64N(used))
				} else {
					i := next.Add(1)
					if i > int64(coupons) {
						return
					}
					code = fmt.Sprintf("C%04d", i)
				}
				tx := &posTransaction{id: fmt.Sprintf("c%02d-w%d-%05d", cycle, w, n), code: code, cycle: cycle}
				l.mu.Lock()
				l.byTx[tx.id] = tx
				l.mu.Unlock()
				sent.Add(1)
				a, err := postRedeem(client, baseURL, tx.redeemBody())
				if err != nil {
					return // the agent died with this request in flight
				}
				switch {
				case a.status == http.StatusCreated:
					l.mu.Lock()
					tx.answered, tx.redemptionID = true, a.redemptionID
					l.mu.Unlock()
					answered.Add(1)
				case a.status == http.StatusUnprocessableEntity && a.errCode == "already_redeemed":
					l.mu.Lock()
					tx.refused = true
					l.mu.Unlock()
				default:
					t.Errorf("transaction %s (%s): answered %d %s", tx.id, tx.code, a.status, a.errCode)
					return
				}
			}
		})
	}
	time.Sleep(killAfter)
	agentProc.kill()
	wg.Wait()
	return burstCount{sent: int(sent.Load()), answered: int(answered.Load())}
}

// retryAll replays every transaction of the cycle that was answered 201 or in flight,
// as a POS does after the agent comes back: answered ones must get the same
// redemption id; in-flight ones get whatever the agent decides now, once and for all.
func (l *posLedger) retryAll(t *testing.T, baseURL string, cycle int) int {
	t.Helper()
	l.mu.Lock()
	var todo []*posTransaction
	for _, tx := range l.byTx {
		if tx.cycle == cycle && !tx.refused {
			todo = append(todo, tx)
		}
	}
	l.mu.Unlock()
	client := newPOSClient()
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	work := make(chan *posTransaction)
	for range crashWorkers {
		wg.Go(func() {
			for tx := range work {
				a, err := postRedeem(client, baseURL, tx.redeemBody())
				if err != nil {
					t.Errorf("retry %s: %v", tx.id, err)
					continue
				}
				l.mu.Lock()
				switch {
				case tx.answered && (a.status != http.StatusCreated || a.redemptionID != tx.redemptionID):
					t.Errorf("retry of %s (answered 201 %s before the kill) got %d %q %s",
						tx.id, tx.redemptionID, a.status, a.redemptionID, a.errCode)
				case a.status == http.StatusCreated:
					tx.answered, tx.redemptionID = true, a.redemptionID
				case a.status == http.StatusUnprocessableEntity && a.errCode == "already_redeemed":
					tx.refused = true
				default:
					t.Errorf("retry of in-flight %s got %d %s", tx.id, a.status, a.errCode)
				}
				l.mu.Unlock()
			}
		})
	}
	for _, tx := range todo {
		work <- tx
	}
	close(work)
	wg.Wait()
	return len(todo)
}

func readJournal(t *testing.T, bin string, s agentTestSetup) []tillkeep.JournalEntry {
	t.Helper()
	cmd := exec.Command(bin, "agent", "journal", "--config", s.configPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("agent journal: %v\n%s", err, stderr.String())
	}
	return decodeJournal(t, string(out))
}

// check compares the journal with what the POS was told.
func (l *posLedger) check(t *testing.T, cycle int, entries []tillkeep.JournalEntry) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	byTx := map[string]tillkeep.JournalEntry{}
	byCode := map[string]string{}
	byID := map[string]bool{}
	for i, e := range entries {
		if e.Seq != uint64(i+1) {
			t.Errorf("cycle %d: journal entry #%d has seq %d: the sequence has a gap or a repeat", cycle, i+1, e.Seq)
		}
		if e.Kind != tillkeep.EntryRedemption || e.Mode != tillkeep.ModeOffline {
			t.Errorf("cycle %d: unexpected entry %+v", cycle, e)
		}
		if byID[e.RedemptionID] {
			t.Errorf("cycle %d: redemption %s is in the journal twice", cycle, e.RedemptionID)
		}
		byID[e.RedemptionID] = true
		if prev, dup := byTx[e.TransactionID]; dup {
			t.Errorf("cycle %d: transaction %s is in the journal twice (%s and %s)", cycle, e.TransactionID, prev.RedemptionID, e.RedemptionID)
		}
		byTx[e.TransactionID] = e
		if prev, dup := byCode[e.Code]; dup {
			t.Errorf("cycle %d: coupon %s redeemed twice (transactions %s and %s)", cycle, e.Code, prev, e.TransactionID)
		}
		byCode[e.Code] = e.TransactionID
	}
	for _, tx := range l.byTx {
		e, inJournal := byTx[tx.id]
		switch {
		case tx.answered && !inJournal:
			t.Errorf("cycle %d: transaction %s was answered 201 (%s) but is not in the journal", cycle, tx.id, tx.redemptionID)
		case tx.answered && e.RedemptionID != tx.redemptionID:
			t.Errorf("cycle %d: transaction %s was answered %s, the journal says %s", cycle, tx.id, tx.redemptionID, e.RedemptionID)
		case !tx.answered && inJournal:
			t.Errorf("cycle %d: transaction %s is in the journal (%s) but the POS was never told", cycle, tx.id, e.RedemptionID)
		case !tx.answered && !tx.refused:
			t.Errorf("cycle %d: transaction %s was never resolved", cycle, tx.id)
		}
	}
}
