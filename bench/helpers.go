package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"time"
)

// profileDirEnv names a directory: when set, the agent, platform and storm measurements
// write a CPU profile of their measured phase there (<row>.cpu.pprof), so that a figure
// that misses its target can be explained with `go tool pprof`. traceDirEnv does the same
// with an execution trace (<row>.trace, for `go tool trace`), which shows where time
// goes that is not CPU: waiting on fsync, on locks, or for the scheduler.
const (
	profileDirEnv = "TILLKEEP_BENCH_PROFILE"
	traceDirEnv   = "TILLKEEP_BENCH_TRACE"
)

// profilePhase starts a CPU profile and an execution trace named name, each when its
// variable is set, and returns the function that stops them. Only one of each can run
// at a time; the measurements run one after the other, so they never overlap.
func profilePhase(name string) (stop func()) {
	stopTrace := startPhaseTrace(name)
	stopCPU := startPhaseCPUProfile(name)
	return func() {
		stopCPU()
		stopTrace()
	}
}

func startPhaseTrace(name string) (stop func()) {
	dir := os.Getenv(traceDirEnv)
	if dir == "" {
		return func() {}
	}
	path := filepath.Join(dir, name+".trace")
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: trace %s: %v\n", name, err)
		return func() {}
	}
	if err := trace.Start(f); err != nil {
		fmt.Fprintf(os.Stderr, "bench: trace %s: %v\n", name, err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		trace.Stop()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: trace %s: %v\n", name, err)
			return
		}
		fmt.Fprintf(os.Stderr, "bench: execution trace written to %s\n", path)
	}
}

func startPhaseCPUProfile(name string) (stop func()) {
	dir := os.Getenv(profileDirEnv)
	if dir == "" {
		return func() {}
	}
	path := filepath.Join(dir, name+".cpu.pprof")
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: profile %s: %v\n", name, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "bench: profile %s: %v\n", name, err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: profile %s: %v\n", name, err)
			return
		}
		fmt.Fprintf(os.Stderr, "bench: CPU profile written to %s\n", path)
	}
}

// stepf reports a setup or measurement step on stderr, so a long run shows where
// it is; the table on stdout stays clean.
func stepf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench:   "+format+"\n", args...)
}

// loopbackClient is an HTTP client that keeps one connection per concurrent caller:
// the default transport keeps only two idle connections per host, and the others
// would be re-dialled on every request, measuring TCP set-up instead of the server.
func loopbackClient(conns int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = conns
	t.MaxIdleConnsPerHost = conns
	t.Proxy = nil // loopback: never through a proxy the environment names
	return &http.Client{Transport: t, Timeout: 60 * time.Second}
}

// apiErrorBody is the contract's error envelope, for messages.
type apiErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// loopbackCall sends in as JSON (nil: no body) with a bearer token and decodes a want
// answer into out. Any other status is an error naming the code the server answered.
func loopbackCall(ctx context.Context, c *http.Client, method, url, token string, in any, want int, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, url, err)
		}
		body = b
	}
	return loopbackCallRaw(ctx, c, method, url, token, body, want, out)
}

// loopbackCallRaw is loopbackCall with a body already encoded (nil: no body), so that a
// measurement can leave the encoding of large uploads out of its timed phase.
func loopbackCallRaw(ctx context.Context, c *http.Client, method, url, token string, body []byte, want int, out any) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return fmt.Errorf("build %s %s: %w", method, url, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		var eb apiErrorBody
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&eb)
		return fmt.Errorf("%s %s: answered %d %s: %s", method, url, resp.StatusCode, eb.Error.Code, eb.Error.Message)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, url, err)
	}
	return nil
}

// loopbackDaemon is a daemon serving on a fresh loopback port until stop is called;
// stop waits for the graceful shutdown and returns the daemon's error.
type loopbackDaemon struct {
	url    string
	cancel context.CancelFunc
	done   chan error
}

// serveLoopback runs a daemon's ServeListener on 127.0.0.1:0 and returns once it
// answers /healthz.
func serveLoopback(ctx context.Context, what string, fn func(ctx context.Context, ln net.Listener) error) (*loopbackDaemon, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the %s on loopback: %w", what, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &loopbackDaemon{url: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- fn(ctx, ln) }()
	// Wait until it answers, so that no measurement counts the start-up.
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			cancel()
			return nil, fmt.Errorf("the %s stopped while starting: %v", what, err)
		default:
		}
		if time.Now().After(deadline) {
			_ = s.stop()
			return nil, fmt.Errorf("the %s did not answer /healthz within 10 s (last error: %v)", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *loopbackDaemon) stop() error {
	s.cancel()
	select {
	case err := <-s.done:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("did not stop within 10 s")
	}
}

// latencyPercentile returns the p-th percentile (0 < p <= 100) of sorted by the nearest-rank
// method.
func latencyPercentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// latencyRows are the p50 and p99 rows of one set of measured latencies; the p99 row
// carries the target when there is one.
func latencyRows(group, name string, lat []time.Duration, p99Target time.Duration, note string) []Row {
	slices.Sort(lat)
	p50, p99 := latencyPercentile(lat, 50), latencyPercentile(lat, 99)
	r50 := Row{Group: group, Name: name + " p50", Value: millis(p50), Unit: "ms", Note: note}
	r99 := Row{Group: group, Name: name + " p99", Value: millis(p99), Unit: "ms", Note: note}
	if p99Target > 0 {
		r99.Target = fmt.Sprintf("<= %g ms", millis(p99Target))
		r99.Pass = pass(p99 <= p99Target)
	}
	return []Row{r50, r99}
}

// rawAppendsKey is the raw fdatasync reference row of disk.go, by the results key main sets.
const rawAppendsKey = "disk/raw fdatasync'd appends"

// rawAppendsReference returns the raw fdatasync'd append rate of this run. When the raw row
// did not run (-only), it is measured here, on the same disk, so that a ratio is never
// taken against a figure of another run.
func rawAppendsReference(ctx context.Context, e *env) (rate float64, measuredHere bool, err error) {
	if r := e.results[rawAppendsKey]; r > 0 {
		return r, false, nil
	}
	rows, err := measureRawAppends(ctx, e)
	if err != nil {
		return 0, false, fmt.Errorf("measure the raw fdatasync reference: %w", err)
	}
	if len(rows) == 0 || rows[0].Value <= 0 {
		return 0, false, errors.New("the raw fdatasync reference measured nothing")
	}
	return rows[0].Value, true, nil
}

// loadAverage returns the machine's one-minute load average ("" where the system does
// not publish one). Rows note it: on a shared machine, a figure taken while other work
// held the CPUs or the disk says so.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return ""
}

// loadNote is "; load average A before, B after, on N CPUs" for a phase that began at
// load average began.
func loadNote(began string) string {
	if began == "" {
		return ""
	}
	return fmt.Sprintf("; load average %s before, %s after, on %d CPUs", began, loadAverage(), runtime.NumCPU())
}

// rawAppendsNow measures the raw fdatasync'd append rate for a second, right before a
// run whose figure is held against it: on a shared disk the rate drifts during a run,
// and the note shows by how much.
func rawAppendsNow(ctx context.Context, e *env) float64 {
	rows, err := measureRawAppends(ctx, &env{dir: e.dir, quick: true, results: map[string]float64{}})
	if err != nil || len(rows) == 0 {
		return 0
	}
	return rows[0].Value
}
