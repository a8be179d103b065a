package installer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/kardianos/service"
)

// StopTimeout is how long a service stop waits for Serve to return.
const StopTimeout = 5 * time.Second

// ServeFunc is a daemon: it serves until ctx is cancelled, then drains and returns.
// It logs through log, which RunDaemon points at the console or the system log.
type ServeFunc func(ctx context.Context, log *slog.Logger) error

// Daemon is what RunDaemon runs.
type Daemon struct {
	Role Role
	// Logger builds the daemon's one logger over w: the console when interactive, the
	// system log under a service manager. Pass the same function either way, e.g.
	// func(w io.Writer) (*slog.Logger, error) { return logging.New(cfg.Log, w) }.
	// It must write each record with one Write, as slog's text and JSON handlers do.
	Logger func(w io.Writer) (*slog.Logger, error)
	// Console is where an interactive daemon logs; nil means os.Stderr.
	Console io.Writer
	// Serve is the daemon itself.
	Serve ServeFunc
}

// RunDaemon runs d in the foreground or under the service manager, whichever started
// the process. `agent run` and `platform serve` call it with the same arguments either
// way: the service definitions run exactly those commands.
//
// Interactive (a terminal, a container, a SysV init script): Serve logs to Console and
// runs until ctx is cancelled (SIGINT/SIGTERM in main).
//
// Under the service manager (systemd, launchd, the Windows SCM): Serve logs to the
// platform's log system, or to Console if that cannot be opened. Start returns at once;
// Stop cancels Serve and waits at most StopTimeout. If Serve fails on its own, RunDaemon
// returns its error so that the process exits non-zero and the service manager restarts
// it; on Windows, where the SCM owns the process's life, the process exits with status
// 1 so that the recovery actions apply.
func RunDaemon(ctx context.Context, d Daemon) error {
	if d.Console == nil {
		d.Console = os.Stderr
	}
	if d.Logger == nil {
		d.Logger = func(w io.Writer) (*slog.Logger, error) { return slog.New(slog.NewTextHandler(w, nil)), nil }
	}
	if d.Serve == nil {
		return errors.New("run daemon: no Serve function")
	}
	console, err := d.Logger(d.Console)
	if err != nil {
		return fmt.Errorf("set up logging: %w", err)
	}
	if service.Interactive() || service.ChosenSystem() == nil {
		return ignoreCanceled(d.Serve(ctx, console))
	}

	p := &daemon{parent: ctx, stopTimeout: StopTimeout}
	cfg := &service.Config{
		Name: d.Role.ServiceName(),
		Option: service.KeyValue{
			// Replaces kardianos' own signal wait on Unix: main's ctx already ends on
			// SIGINT/SIGTERM, and a daemon that died on its own must end Run too.
			"RunWait": func() {
				select {
				case <-ctx.Done():
				case <-p.exited():
				}
			},
		},
	}
	svc, err := service.New(p, cfg)
	if err != nil {
		return fmt.Errorf("set up service %s: %w", cfg.Name, err)
	}
	log := console
	if sys, err := svc.SystemLogger(nil); err != nil {
		log.Warn("system log unavailable, logging to the console", "service", cfg.Name, "err", err)
	} else {
		var buildErr error
		h := NewSystemLogHandler(sys, func(w io.Writer) slog.Handler {
			l, err := d.Logger(w)
			if err != nil {
				buildErr = err
				return console.Handler()
			}
			return l.Handler()
		})
		if buildErr != nil {
			return fmt.Errorf("set up logging: %w", buildErr)
		}
		log = slog.New(h)
	}
	p.serve = func(ctx context.Context) error { return d.Serve(ctx, log) }
	if runtime.GOOS == "windows" {
		p.onExit = func(err error) {
			log.Error("daemon stopped on its own; exiting so that the service recovery restarts it", "err", err)
			os.Exit(1)
		}
	}
	runErr := svc.Run()
	if err := p.failure(); err != nil {
		log.Error("daemon failed", "err", err)
		return err
	}
	return runErr
}

// daemon adapts a Serve function to kardianos' service.Interface.
type daemon struct {
	parent      context.Context
	serve       func(ctx context.Context) error
	stopTimeout time.Duration
	onExit      func(error) // called when serve returns without being stopped

	mu       sync.Mutex
	cancel   context.CancelFunc
	done     chan struct{}
	err      error
	stopping bool
	ended    bool // serve returned without a Stop
}

var _ service.Interface = (*daemon)(nil)

// Start runs serve in a goroutine and returns at once: the service manager counts a
// slow Start as a failed start.
func (d *daemon) Start(service.Service) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done != nil {
		return errors.New("daemon already started")
	}
	parent := d.parent
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	d.cancel = cancel
	d.done = make(chan struct{})
	go func() {
		err := d.serve(ctx)
		d.mu.Lock()
		d.err = ignoreCanceled(err)
		d.ended = !d.stopping
		onExit := d.onExit
		ended := d.ended
		d.mu.Unlock()
		close(d.done)
		if ended && onExit != nil {
			onExit(err)
		}
	}()
	return nil
}

// Stop cancels serve and waits up to stopTimeout for it to return. It never exits the
// process: kardianos returns from Run after Stop, and main exits.
func (d *daemon) Stop(service.Service) error {
	d.mu.Lock()
	if d.done == nil {
		d.mu.Unlock()
		return nil
	}
	d.stopping = true
	cancel, done := d.cancel, d.done
	d.mu.Unlock()

	cancel()
	timer := time.NewTimer(d.stopTimeout)
	defer timer.Stop()
	select {
	case <-done:
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.ended {
			// serve had already failed; RunDaemon reports that error itself.
			return nil
		}
		return d.err
	case <-timer.C:
		return fmt.Errorf("daemon did not stop within %s", d.stopTimeout)
	}
}

// exited is closed when serve has returned; before Start it never closes.
func (d *daemon) exited() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done == nil {
		return nil
	}
	return d.done
}

// failure is serve's error when it returned without being stopped.
func (d *daemon) failure() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.ended {
		return nil
	}
	if d.err == nil {
		return errors.New("daemon stopped on its own")
	}
	return d.err
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
