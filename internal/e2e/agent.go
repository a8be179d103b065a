package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	gosync "sync"
	"time"

	"github.com/tillkeep/tillkeep/internal/faultproxy"
)

// AgentOptions shape a till agent's config file.
type AgentOptions struct {
	StoreID string
	TillID  string
	// Timeout is platform.timeout, the budget of one online redemption (800ms default).
	Timeout time.Duration
	// Schedule is sync.schedule ("@every 1s" default: scenarios must not wait 15 s).
	Schedule string
	// MaxOfflineRedemptions is offline.max_redemptions (500 default).
	MaxOfflineRedemptions int
	// MaxDiscount is offline.max_discount in minor units (5000 default).
	MaxDiscount int64
	// LogLevel of the daemon ("info" default).
	LogLevel string
}

// Agent is one `tillkeep agent run` with its own data directory, config and log, whose
// platform.url points at a fault proxy in front of the platform: Link switches what the
// network between this till and the platform does.
type Agent struct {
	Bin        string
	StoreID    string
	TillID     string
	Dir        string
	DataDir    string
	ConfigPath string
	LogPath    string
	ProxyLog   string
	Addr       string // the POS API, host:port
	PosToken   string
	Timeout    time.Duration
	// Proxy is the link to the platform.
	Proxy *faultproxy.Proxy

	opts        AgentOptions
	enrollToken string
	proxyFile   *os.File

	mu      gosync.Mutex
	proc    *Process
	started bool
}

// NewAgent prepares till opts.StoreID/opts.TillID under dir, with a proxy to the
// platform (which must have started once, so that its address is final).
func NewAgent(bin, dir string, platform *Platform, opts AgentOptions) (*Agent, error) {
	if opts.StoreID == "" || opts.TillID == "" {
		return nil, errors.New("new agent: store and till ids are required")
	}
	if !platform.started {
		return nil, errors.New("new agent: start the platform first, the proxy needs its final address")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 800 * time.Millisecond
	}
	if opts.Schedule == "" {
		opts.Schedule = "@every 1s"
	}
	if opts.MaxOfflineRedemptions <= 0 {
		opts.MaxOfflineRedemptions = 500
	}
	if opts.MaxDiscount <= 0 {
		opts.MaxDiscount = 5000
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the agent's directory: %w", err)
	}
	a := &Agent{
		Bin:        bin,
		StoreID:    opts.StoreID,
		TillID:     opts.TillID,
		Dir:        dir,
		DataDir:    filepath.Join(dir, "data"),
		ConfigPath: filepath.Join(dir, "agent.toml"),
		LogPath:    filepath.Join(dir, "agent.log"),
		ProxyLog:   filepath.Join(dir, "proxy.log"),
		PosToken:   NewToken(),
		Timeout:    opts.Timeout,
		opts:       opts,
	}
	pf, err := os.OpenFile(a.ProxyLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the proxy log: %w", err)
	}
	proxy, err := faultproxy.New(platform.Addr, slog.New(slog.NewTextHandler(pf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		pf.Close()
		return nil, err
	}
	a.Proxy, a.proxyFile = proxy, pf
	addr, err := FreePort()
	if err != nil {
		a.Close()
		return nil, err
	}
	if err := a.writeConfig(addr, platform.EnrollToken); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *Agent) writeConfig(addr, enrollToken string) error {
	a.Addr = addr
	body := fmt.Sprintf(`# written by the end-to-end harness (internal/e2e)
listen    = %q
data_dir  = %q
pos_token = %q
store_id  = %q
till_id   = %q

[platform]
url          = %q
enroll_token = %q
timeout      = %q

[sync]
schedule = %q

[offline]
enabled         = true
max_discount    = %d
max_redemptions = %d
max_catalog_age = "72h"

[log]
level  = %q
format = "text"
`, addr, a.DataDir, a.PosToken, a.StoreID, a.TillID, a.Proxy.URL(), enrollToken, a.opts.Timeout.String(),
		a.opts.Schedule, a.opts.MaxDiscount, a.opts.MaxOfflineRedemptions, a.opts.LogLevel)
	if err := os.WriteFile(a.ConfigPath, []byte(body), 0o600); err != nil {
		return fmt.Errorf("write the agent's config: %w", err)
	}
	a.enrollToken = enrollToken
	return nil
}

// Name is "S001/T01".
func (a *Agent) Name() string { return a.StoreID + "/" + a.TillID }

// POS is a client of this till's POS API.
func (a *Agent) POS() *POSClient { return NewPOSClient("http://"+a.Addr, a.PosToken) }

// Link sets what the network between this till and the platform does.
func (a *Agent) Link(mode faultproxy.Mode) error {
	if err := a.Proxy.Set(mode); err != nil {
		return fmt.Errorf("set the link of till %s to %s: %w", a.Name(), mode, err)
	}
	return nil
}

// Start runs the agent and waits until /healthz answers (the agent serves before it
// has reached the platform).
func (a *Agent) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.proc != nil && !a.proc.Exited() {
		return fmt.Errorf("start agent %s: it is running", a.Name())
	}
	for attempt := 0; ; attempt++ {
		offset := logSize(a.LogPath)
		proc, err := startProcess("agent "+a.Name(), a.Bin, []string{"agent", "run", "--config", a.ConfigPath}, a.LogPath)
		if err != nil {
			return err
		}
		a.proc = proc
		err = waitHealthy(ctx, proc, a.Addr)
		if err == nil {
			a.started = true
			return nil
		}
		_ = proc.Kill()
		if a.started || attempt >= 2 || !addrInUseSince(a.LogPath, offset) {
			return fmt.Errorf("start agent %s: %w\n%s", a.Name(), err, LogTail(a.LogPath, 4000))
		}
		addr, perr := FreePort()
		if perr != nil {
			return perr
		}
		if werr := a.writeConfig(addr, a.enrollToken); werr != nil {
			return werr
		}
	}
}

// Stop stops the agent with SIGTERM; it must exit 0 within 5 s.
func (a *Agent) Stop() error {
	a.mu.Lock()
	proc := a.proc
	a.mu.Unlock()
	if proc == nil {
		return nil
	}
	return proc.Stop()
}

// Kill kills the agent with SIGKILL: a till losing power.
func (a *Agent) Kill() error {
	a.mu.Lock()
	proc := a.proc
	a.mu.Unlock()
	if proc == nil {
		return nil
	}
	return proc.Kill()
}

// Running reports whether the agent process is up.
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.proc != nil && !a.proc.Exited()
}

// Close kills the agent if it runs and closes its proxy.
func (a *Agent) Close() {
	_ = a.Kill()
	if a.Proxy != nil {
		_ = a.Proxy.Close()
	}
	if a.proxyFile != nil {
		_ = a.proxyFile.Close()
	}
}
