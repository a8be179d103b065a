package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	gosync "sync"
)

// PlatformOptions shape a platform's config file.
type PlatformOptions struct {
	// LogLevel of the daemon ("info" by default; "debug" for a failing scenario).
	LogLevel string
	// NoAutoRevoke sets reconcile.auto_revoke = false.
	NoAutoRevoke bool
}

// Platform is one `tillkeep platform serve` with its own data directory, config file
// and log, started and stopped as often as a scenario needs, always on the same address
// so that the tills' proxies keep pointing at it.
type Platform struct {
	Bin         string
	Dir         string // everything of this platform lives under it
	DataDir     string
	ConfigPath  string
	LogPath     string
	Addr        string // host:port it listens on
	AdminToken  string
	EnrollToken string

	opts PlatformOptions

	mu      gosync.Mutex
	proc    *Process
	started bool // once it has served, its address is fixed
}

// NewPlatform prepares a platform under dir (created if needed); Start runs it.
func NewPlatform(bin, dir string, opts PlatformOptions) (*Platform, error) {
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the platform's directory: %w", err)
	}
	p := &Platform{
		Bin:         bin,
		Dir:         dir,
		DataDir:     filepath.Join(dir, "data"),
		ConfigPath:  filepath.Join(dir, "platform.toml"),
		LogPath:     filepath.Join(dir, "platform.log"),
		AdminToken:  NewToken(),
		EnrollToken: NewToken(),
		opts:        opts,
	}
	addr, err := FreePort()
	if err != nil {
		return nil, err
	}
	if err := p.writeConfig(addr); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Platform) writeConfig(addr string) error {
	p.Addr = addr
	body := fmt.Sprintf(`# written by the end-to-end harness (internal/e2e)
listen       = %q
data_dir     = %q
admin_token  = %q
enroll_token = %q

[storage]
driver = "bolt"

[reconcile]
auto_revoke = %t

[log]
level  = %q
format = "text"
`, addr, p.DataDir, p.AdminToken, p.EnrollToken, !p.opts.NoAutoRevoke, p.opts.LogLevel)
	if err := os.WriteFile(p.ConfigPath, []byte(body), 0o600); err != nil {
		return fmt.Errorf("write the platform's config: %w", err)
	}
	return nil
}

// URL is the platform's base URL (the ops API; tills go through their proxies).
func (p *Platform) URL() string { return "http://" + p.Addr }

// Ops is a client of the ops API with the admin token.
func (p *Platform) Ops() *OpsClient { return NewOpsClient(p.URL(), p.AdminToken) }

// Start runs the platform and waits until /healthz answers. On its very first start a
// listen address taken meanwhile by another process is replaced by a fresh one.
func (p *Platform) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil && !p.proc.Exited() {
		return errors.New("start the platform: it is running")
	}
	for attempt := 0; ; attempt++ {
		offset := logSize(p.LogPath)
		proc, err := startProcess("platform", p.Bin, []string{"platform", "serve", "--config", p.ConfigPath}, p.LogPath)
		if err != nil {
			return err
		}
		p.proc = proc
		err = waitHealthy(ctx, proc, p.Addr)
		if err == nil {
			p.started = true
			return nil
		}
		_ = proc.Kill()
		if p.started || attempt >= 2 || !addrInUseSince(p.LogPath, offset) {
			return fmt.Errorf("start the platform: %w\n%s", err, LogTail(p.LogPath, 4000))
		}
		addr, perr := FreePort()
		if perr != nil {
			return perr
		}
		if werr := p.writeConfig(addr); werr != nil {
			return werr
		}
	}
}

// Stop stops the platform with SIGTERM; it must exit 0 within 5 s.
func (p *Platform) Stop() error {
	p.mu.Lock()
	proc := p.proc
	p.mu.Unlock()
	if proc == nil {
		return nil
	}
	return proc.Stop()
}

// Kill kills the platform with SIGKILL.
func (p *Platform) Kill() error {
	p.mu.Lock()
	proc := p.proc
	p.mu.Unlock()
	if proc == nil {
		return nil
	}
	return proc.Kill()
}

// Running reports whether the platform process is up.
func (p *Platform) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc != nil && !p.proc.Exited()
}

// Process is the current run (nil before the first Start).
func (p *Platform) Process() *Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc
}

// CopyData copies the platform's data directory to dst, as an operator takes a backup:
// the platform must be stopped, so that the copy is consistent.
func (p *Platform) CopyData(dst string) error {
	if p.Running() {
		return errors.New("copy the platform's data: stop it first, a copy of a live bbolt file may be torn")
	}
	return CopyDir(p.DataDir, dst)
}

// RestoreData replaces the platform's data directory by a copy taken earlier, as an
// operator restores a backup. The platform must be stopped.
func (p *Platform) RestoreData(src string) error {
	if p.Running() {
		return errors.New("restore the platform's data: stop it first")
	}
	if err := os.RemoveAll(p.DataDir); err != nil {
		return fmt.Errorf("restore the platform's data: remove %s: %w", p.DataDir, err)
	}
	return CopyDir(src, p.DataDir)
}
