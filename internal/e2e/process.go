package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	gosync "sync"
	"syscall"
	"time"
)

// StopGrace is how long a daemon may take to stop on SIGTERM: the contract says 5 s.
const StopGrace = 5 * time.Second

// healthTimeout bounds the wait for /healthz after a start. Starting is fast, but the
// machine running the tests is shared and slow; a daemon that exits is noticed at once.
const healthTimeout = 60 * time.Second

// Process is one run of the tillkeep binary. Its stdout and stderr are appended to a log
// file that every run of the same daemon shares, each run headed by a line.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}

	mu    gosync.Mutex
	state *os.ProcessState
	err   error
}

// startProcess runs bin with args, appending its output to logPath.
func startProcess(name, bin string, args []string, logPath string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the log of %s: %w", name, err)
	}
	fmt.Fprintf(logFile, "=== %s: %s %s (started %s)\n", name, bin, strings.Join(args, " "), time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = childEnv()
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, logFile: logFile, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.state, p.err = cmd.ProcessState, err
		p.mu.Unlock()
		fmt.Fprintf(logFile, "=== %s: exited: %v (%s)\n", name, cmd.ProcessState, time.Now().UTC().Format(time.RFC3339Nano))
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// childEnv is the environment of the daemons: this process's, without TILLKEEP_*
// variables, which would override the generated config files (a developer who followed
// the README may have TILLKEEP_DATA_DIR or a token exported).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TILLKEEP_") {
			env = append(env, kv)
		}
	}
	return env
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the exit status once exited; -1 while running or after a signal.
func (p *Process) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return -1
	}
	return p.state.ExitCode()
}

// Stop sends SIGTERM and waits for the process to exit with status 0 within StopGrace.
// A process that overstays is killed, and Stop says so.
func (p *Process) Stop() error {
	if p.Exited() {
		return p.exitError("had already exited")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.Exited() {
		return fmt.Errorf("send SIGTERM to %s: %w", p.name, err)
	}
	t := time.NewTimer(StopGrace)
	defer t.Stop()
	select {
	case <-p.done:
		return p.exitError("after SIGTERM")
	case <-t.C:
		_ = p.Kill()
		return fmt.Errorf("%s (pid %d) did not exit within %s of SIGTERM; killed it", p.name, p.Pid(), StopGrace)
	}
}

func (p *Process) exitError(when string) error {
	if code := p.ExitCode(); code != 0 {
		p.mu.Lock()
		state := p.state
		p.mu.Unlock()
		return fmt.Errorf("%s %s: %v, want exit status 0", p.name, when, state)
	}
	return nil
}

// Kill sends SIGKILL and waits for the exit: a crash, a power cut.
func (p *Process) Kill() error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(StopGrace):
		return fmt.Errorf("%s (pid %d) still there %s after SIGKILL", p.name, p.Pid(), StopGrace)
	}
}

// waitHealthy polls http://addr/healthz until it answers 200, the process exits, or the
// time runs out.
func waitHealthy(ctx context.Context, p *Process, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	url := "http://" + addr + "/healthz"
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it served /healthz on %s: %v", p.name, addr, p.exitError("at start"))
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer /healthz on %s within %s", p.name, addr, healthTimeout)
		case <-tick.C:
		}
	}
}

// FreePort returns a loopback address whose port was free a moment ago. The daemons
// need their address in their config file before they start, and a platform restarted
// in a test must come back on the same address, so the harness cannot let them pick.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	return addr, nil
}

// NewToken returns a random secret of 48 hex characters.
func NewToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// logSize is the current size of a log file (0 when it does not exist yet), to read
// what a run wrote from there on.
func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// addrInUseSince reports whether a daemon's log, from offset on, says its listen
// address was taken: the race between FreePort and the daemon binding it, lost to
// another process.
func addrInUseSince(path string, offset int64) bool {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return false
	}
	return strings.Contains(string(b[offset:]), "address already in use")
}

// LogTail returns the last max bytes of a log file, for failure reports.
func LogTail(path string, max int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log at %s: %v)", path, err)
	}
	if len(b) > max {
		b = b[len(b)-max:]
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
		return "...\n" + string(b)
	}
	return string(b)
}

// CLIResult is what one run of a tillkeep command printed and how it exited.
type CLIResult struct {
	Stdout   string
	Stderr   string
	ExitCode int
}

// RunCLI runs a short-lived tillkeep command (ops, pos, config...) in the daemons'
// environment, without TILLKEEP_* variables, so that it uses exactly the config files
// and flags it is given. A non-zero exit is not an error here: callers check ExitCode.
func RunCLI(ctx context.Context, bin string, args ...string) (CLIResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = childEnv()
	cmd.SysProcAttr = childProcAttr()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := CLIResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && exitErr.Exited():
		res.ExitCode = exitErr.ExitCode()
	default:
		return res, fmt.Errorf("run tillkeep %s: %w", strings.Join(args, " "), err)
	}
	return res, nil
}
