package installer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDaemonStartReturnsWhileServeRuns(t *testing.T) {
	started := make(chan struct{})
	returned := make(chan struct{})
	d := &daemon{parent: context.Background(), stopTimeout: StopTimeout, serve: func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		close(returned)
		return ctx.Err()
	}}
	if err := d.Start(nil); err != nil {
		t.Fatal(err)
	}
	<-started
	select {
	case <-returned:
		t.Fatal("serve returned before Stop")
	default:
	}
	if err := d.Stop(nil); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-returned:
	default:
		t.Fatal("Stop returned before serve did")
	}
	if err := d.failure(); err != nil {
		t.Errorf("a stopped daemon reports failure %v", err)
	}
}

func TestDaemonStopReportsServeError(t *testing.T) {
	boom := errors.New("flush journal: disk full")
	d := &daemon{parent: context.Background(), stopTimeout: StopTimeout, serve: func(ctx context.Context) error {
		<-ctx.Done()
		return boom
	}}
	if err := d.Start(nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(nil); !errors.Is(err, boom) {
		t.Fatalf("Stop = %v, want %v", err, boom)
	}
}

func TestDaemonStopGivesUpAfterTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	d := &daemon{parent: context.Background(), stopTimeout: 20 * time.Millisecond, serve: func(context.Context) error {
		<-release // ignores cancellation
		return nil
	}}
	if err := d.Start(nil); err != nil {
		t.Fatal(err)
	}
	err := d.Stop(nil)
	if err == nil || !strings.Contains(err.Error(), "did not stop within") {
		t.Fatalf("Stop = %v, want a timeout error", err)
	}
}

func TestDaemonFailingOnItsOwnEndsTheRun(t *testing.T) {
	boom := errors.New("listen tcp 127.0.0.1:7070: address already in use")
	var mu sync.Mutex
	var exitErr error
	d := &daemon{
		parent:      context.Background(),
		stopTimeout: StopTimeout,
		serve:       func(context.Context) error { return boom },
		onExit: func(err error) {
			mu.Lock()
			exitErr = err
			mu.Unlock()
		},
	}
	if err := d.Start(nil); err != nil {
		t.Fatal(err)
	}
	<-d.exited() // what RunWait waits for besides ctx
	if err := d.Stop(nil); err != nil {
		t.Errorf("Stop after a failure = %v, want nil (RunDaemon reports the failure)", err)
	}
	if err := d.failure(); !errors.Is(err, boom) {
		t.Errorf("failure = %v, want %v", err, boom)
	}
	mu.Lock()
	defer mu.Unlock()
	if !errors.Is(exitErr, boom) {
		t.Errorf("onExit got %v, want %v", exitErr, boom)
	}
}

func TestDaemonParentCancelStopsServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{parent: ctx, stopTimeout: StopTimeout, serve: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	if err := d.Start(nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-d.exited()
	if err := d.Stop(nil); err != nil {
		t.Errorf("Stop = %v", err)
	}
	if err := d.Start(nil); err == nil {
		t.Error("a second Start was accepted")
	}
}

func TestDaemonStopBeforeStart(t *testing.T) {
	d := &daemon{stopTimeout: StopTimeout}
	if err := d.Stop(nil); err != nil {
		t.Fatalf("Stop before Start = %v", err)
	}
	if d.exited() != nil {
		t.Fatal("exited is non-nil before Start")
	}
}

// From a terminal (and in a container, where kardianos always reports interactive),
// RunDaemon runs serve in the foreground with the console logger.
func TestRunDaemonInteractive(t *testing.T) {
	var buf syncBuffer
	newLogger := func(w io.Writer) (*slog.Logger, error) { return slog.New(slog.NewTextHandler(w, nil)), nil }
	ctx, cancel := context.WithCancel(context.Background())
	err := RunDaemon(ctx, Daemon{Role: RoleAgent, Logger: newLogger, Console: &buf,
		Serve: func(ctx context.Context, log *slog.Logger) error {
			log.Info("serving", "listen", "127.0.0.1:7070")
			cancel() // as SIGTERM would
			<-ctx.Done()
			return ctx.Err()
		}})
	if err != nil {
		t.Fatalf("RunDaemon after cancel = %v, want nil", err)
	}
	if !strings.Contains(buf.String(), "msg=serving listen=127.0.0.1:7070") {
		t.Errorf("console got %q", buf.String())
	}

	boom := errors.New("open ledger: another tillkeep agent is using /var/lib/tillkeep/agent")
	err = RunDaemon(context.Background(), Daemon{Role: RoleAgent, Logger: newLogger, Console: &buf,
		Serve: func(context.Context, *slog.Logger) error { return boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("RunDaemon = %v, want %v", err, boom)
	}

	badLogger := errors.New(`log level "loud" is not one of debug, info, warn, error`)
	err = RunDaemon(context.Background(), Daemon{Role: RoleAgent, Console: &buf,
		Logger: func(io.Writer) (*slog.Logger, error) { return nil, badLogger },
		Serve:  func(context.Context, *slog.Logger) error { t.Error("served without a logger"); return nil }})
	if !errors.Is(err, badLogger) {
		t.Fatalf("RunDaemon with a failing logger = %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// recordingLogger is a service.Logger that keeps what it is given.
type recordingLogger struct {
	mu    sync.Mutex
	lines []string // "severity: line"
}

func (r *recordingLogger) add(sev string, v ...any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, sev+": "+fmt.Sprint(v...))
	return nil
}
func (r *recordingLogger) Error(v ...any) error   { return r.add("error", v...) }
func (r *recordingLogger) Warning(v ...any) error { return r.add("warning", v...) }
func (r *recordingLogger) Info(v ...any) error    { return r.add("info", v...) }
func (r *recordingLogger) Errorf(f string, a ...any) error {
	return r.add("error", fmt.Sprintf(f, a...))
}
func (r *recordingLogger) Warningf(f string, a ...any) error {
	return r.add("warning", fmt.Sprintf(f, a...))
}
func (r *recordingLogger) Infof(f string, a ...any) error { return r.add("info", fmt.Sprintf(f, a...)) }

// lineHandler renders records the way a daemon's text logger does, without the time
// (so that the test can compare lines).
func lineHandler(level slog.Level) func(io.Writer) slog.Handler {
	return func(w io.Writer) slog.Handler {
		return slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})
	}
}

func TestSystemLogHandlerMapsLevelsAndKeepsAttrs(t *testing.T) {
	rec := &recordingLogger{}
	log := slog.New(NewSystemLogHandler(rec, lineHandler(slog.LevelInfo))).With("role", "agent").WithGroup("sync")
	log.Debug("dropped")
	log.Info("pulled catalog", "coupons", 1200)
	log.Warn("platform slow", "took", "900ms")
	log.Error("push failed", "err", "connection refused")
	want := []string{
		"info: level=INFO msg=\"pulled catalog\" role=agent sync.coupons=1200",
		"warning: level=WARN msg=\"platform slow\" role=agent sync.took=900ms",
		"error: level=ERROR msg=\"push failed\" role=agent sync.err=\"connection refused\"",
	}
	if strings.Join(rec.lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("system log got\n%s\nwant\n%s", strings.Join(rec.lines, "\n"), strings.Join(want, "\n"))
	}
}

// Concurrent records must each reach the system log at their own severity.
func TestSystemLogHandlerConcurrentSeverities(t *testing.T) {
	rec := &recordingLogger{}
	log := slog.New(NewSystemLogHandler(rec, lineHandler(slog.LevelDebug)))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				switch (i + j) % 3 {
				case 0:
					log.Info("m", "sev", "info")
				case 1:
					log.Warn("m", "sev", "warning")
				case 2:
					log.Error("m", "sev", "error")
				}
			}
		}()
	}
	wg.Wait()
	if len(rec.lines) != 400 {
		t.Fatalf("%d lines, want 400", len(rec.lines))
	}
	for _, l := range rec.lines {
		sev, line, _ := strings.Cut(l, ": ")
		if !strings.HasSuffix(line, "sev="+sev) {
			t.Fatalf("line %q went out as %s", line, sev)
		}
	}
}
