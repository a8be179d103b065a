package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	gosync "sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/agent"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/store"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// Tunables of the sync loop.
const (
	pushBatch     = 500
	probeMin      = 1 * time.Second
	probeMax      = 15 * time.Second
	enrollRetry   = 5 * time.Second
	enrollRetryHi = 2 * time.Minute
	// maxScheduleJitter bounds the random delay before a scheduled run, which spreads
	// 50,000 tills on the same schedule over time instead of one second.
	maxScheduleJitter = 30 * time.Second
	// reconnectJitter bounds the delay before the push that follows a reconnect: a
	// platform coming back is greeted by every till of the estate at once otherwise.
	reconnectJitter = 2 * time.Second
	// cursorConflicts is the ledger cursor holding the conflicts the platform reported
	// for this till's uploads.
	cursorConflicts = "sync.conflicts"
	// cursorClockOffset holds the last measured offset of the platform clock, in ms.
	cursorClockOffset = "sync.clock_offset_ms"
)

// Syncer runs a till's conversation with the platform: enrollment, the breaker's
// background probe, and the scheduled and reconnect-triggered push and pull.
type Syncer struct {
	cfg    config.Agent
	ledger store.Ledger
	log    *slog.Logger
	now    func() time.Time

	breaker *Breaker
	kick    chan struct{}

	mu     gosync.Mutex
	client *Client
	creds  Credentials
	status Status
	// offsetMS is platform time minus till time at the last contact.
	offsetMS int64
}

// Status is what the syncer reports for /v1/status.
type Status struct {
	Enrolled      bool          `json:"enrolled"`
	LastPushAt    time.Time     `json:"last_push_at,omitzero"`
	LastPullAt    time.Time     `json:"last_pull_at,omitzero"`
	LastError     string        `json:"last_error,omitempty"`
	ClockOffsetMS int64         `json:"clock_offset_ms"`
	Conflicts     ConflictsSeen `json:"conflicts"`
}

// ConflictsSeen are the conflict outcomes the platform reported for this till's
// uploaded redemptions.
type ConflictsSeen struct {
	Total  int                `json:"total"`
	Recent []wire.EntryResult `json:"recent"`
}

const maxRecentConflicts = 50

// Option configures a Syncer.
type Option func(*Syncer)

// WithClock replaces the wall clock (tests).
func WithClock(now func() time.Time) Option { return func(s *Syncer) { s.now = now } }

// New returns a syncer for the till described by cfg. It loads the till's credentials
// if it has any; a till without them enrolls when Serve starts.
func New(cfg config.Agent, ledger store.Ledger, log *slog.Logger, opts ...Option) (*Syncer, error) {
	s := &Syncer{cfg: cfg, ledger: ledger, log: log, now: time.Now, kick: make(chan struct{}, 1)}
	for _, o := range opts {
		o(s)
	}
	s.breaker = NewBreaker(s.now, func() { s.trigger(reconnectJitter) })
	if cfg.Platform.URL == "" {
		return nil, errors.New("sync needs platform.url")
	}
	creds, err := LoadCredentials(cfg.DataDir)
	switch {
	case errors.Is(err, ErrNotEnrolled):
	case err != nil:
		return nil, err
	default:
		if err := checkCredentials(creds, cfg); err != nil {
			return nil, err
		}
		if err := s.useCredentials(creds); err != nil {
			return nil, err
		}
	}
	if v, err := ledger.Cursor(context.Background(), cursorConflicts); err == nil && v != "" {
		_ = json.Unmarshal([]byte(v), &s.status.Conflicts)
	}
	if v, err := ledger.Cursor(context.Background(), cursorClockOffset); err == nil && v != "" {
		_, _ = fmt.Sscan(v, &s.offsetMS)
	}
	return s, nil
}

func checkCredentials(c Credentials, cfg config.Agent) error {
	if c.StoreID != cfg.StoreID || c.TillID != cfg.TillID {
		return fmt.Errorf("the credentials in %s are for till %s/%s, but the config says %s/%s: remove the file and re-enroll",
			cfg.DataDir, c.StoreID, c.TillID, cfg.StoreID, cfg.TillID)
	}
	return nil
}

func (s *Syncer) useCredentials(c Credentials) error {
	cl, err := NewClient(s.cfg.Platform.URL, c.Token, s.cfg.Platform.Timeout.Duration, s.log)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.client, s.creds = cl, c
	s.status.Enrolled = true
	s.mu.Unlock()
	return nil
}

func (s *Syncer) currentClient() *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

// Online returns the agent's online path through this syncer.
func (s *Syncer) Online() agent.Online { return onlinePath{s: s} }

// Status returns a copy of the syncer's status.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.ClockOffsetMS = s.offsetMS
	st.Conflicts.Recent = append([]wire.EntryResult{}, s.status.Conflicts.Recent...)
	return st
}

// PlatformNow is the till's best estimate of the platform's clock: its own clock
// corrected by the offset measured at the last contact. Till clocks are not trusted.
func (s *Syncer) PlatformNow() time.Time {
	s.mu.Lock()
	off := s.offsetMS
	s.mu.Unlock()
	return s.now().Add(time.Duration(off) * time.Millisecond)
}

// stamp returns an HLC stamp for an event at the till's wall time at.
func (s *Syncer) stamp(at time.Time) tillkeep.HLC {
	s.mu.Lock()
	off := s.offsetMS
	s.mu.Unlock()
	return tillkeep.HLC{WallMS: at.UnixMilli() + off}
}

// observeServerTime measures the platform clock and merges it into the till's HLC.
func (s *Syncer) observeServerTime(ctx context.Context, server time.Time) {
	s.measureOffset(ctx, server)
	if server.IsZero() {
		return
	}
	local := s.now()
	if _, err := s.ledger.MergeHLC(ctx, tillkeep.HLC{WallMS: server.UnixMilli()}, local.UnixMilli()+s.offset()); err != nil {
		s.log.Warn("merge platform clock into the till's HLC", "err", err)
	}
}

func (s *Syncer) offset() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offsetMS
}

// measureOffset updates the till's estimate of the platform clock. It writes to the
// ledger only when the offset moved noticeably, so it can sit on the redemption path:
// stamps made after it already include the new offset.
func (s *Syncer) measureOffset(ctx context.Context, server time.Time) {
	if server.IsZero() {
		return
	}
	local := s.now()
	off := server.Sub(local).Milliseconds()
	s.mu.Lock()
	// Only a real move is persisted (the stored value just seeds the next start);
	// network jitter of a few hundred ms is not one.
	changed := abs64(off-s.offsetMS) > time.Second.Milliseconds()
	s.offsetMS = off
	s.mu.Unlock()
	if changed {
		_ = s.ledger.SetCursor(ctx, cursorClockOffset, fmt.Sprint(off))
	}
	if changed && abs64(off) > (5*time.Minute).Milliseconds() {
		s.log.Warn("till clock is off the platform's", "offset", time.Duration(off)*time.Millisecond)
	}
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// trigger asks the loop for a push and pull after a random delay below jitter.
func (s *Syncer) trigger(jitter time.Duration) {
	delay := time.Duration(0)
	if jitter > 0 {
		delay = time.Duration(rand.Int64N(int64(jitter)))
	}
	time.AfterFunc(delay, func() {
		select {
		case s.kick <- struct{}{}:
		default: // a run is already pending; runs never overlap or pile up
		}
	})
}

// Serve runs until ctx ends: it enrolls if needed, then pushes and pulls on the
// schedule, on reconnect, and at start. It returns nil on a clean stop.
func (s *Syncer) Serve(ctx context.Context) error {
	sched, err := config.ParseSchedule(s.cfg.Sync.Schedule)
	if err != nil {
		return fmt.Errorf("sync.schedule %q: %w", s.cfg.Sync.Schedule, err)
	}
	jitter := scheduleJitter(sched, s.now())
	logger := cronLogger{s.log}
	c := cron.New(
		cron.WithLocation(time.UTC), // DST must never skip or double a run
		cron.WithLogger(logger),
		cron.WithChain(cron.Recover(logger), cron.SkipIfStillRunning(logger)),
	)
	c.Schedule(sched, cron.FuncJob(func() { s.trigger(jitter) }))

	var wg gosync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.probeLoop(ctx) }()
	c.Start()
	defer func() {
		<-c.Stop().Done()
		wg.Wait()
	}()

	s.trigger(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
			s.runOnceSafely(ctx)
		}
	}
}

// scheduleJitter spreads scheduled runs over a slice of the schedule's period.
func scheduleJitter(sched cron.Schedule, now time.Time) time.Duration {
	first := sched.Next(now)
	period := sched.Next(first).Sub(first)
	return min(period/2, maxScheduleJitter)
}

func (s *Syncer) runOnceSafely(ctx context.Context) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("sync run panicked", "panic", fmt.Sprint(v))
		}
	}()
	if err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
		s.setError(err)
	}
}

func (s *Syncer) setError(err error) {
	s.mu.Lock()
	s.status.LastError = err.Error()
	s.mu.Unlock()
}

// RunOnce enrolls if needed, then pushes the journal and pulls the catalog. Push comes
// first: when the platform asks for a re-fetch of the catalog, what the till redeemed
// must already be up, so that the new snapshot reflects it.
func (s *Syncer) RunOnce(ctx context.Context) error {
	if s.currentClient() == nil {
		if err := s.enroll(ctx); err != nil {
			return err
		}
	}
	if err := s.Push(ctx); err != nil {
		return err
	}
	if err := s.Pull(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.status.LastError = ""
	s.mu.Unlock()
	return nil
}

// probeLoop watches the platform while the breaker is open, backing off between probes.
func (s *Syncer) probeLoop(ctx context.Context) {
	wait := probeMin
	for {
		t := time.NewTimer(wait/2 + time.Duration(rand.Int64N(int64(wait))))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		open, _, _ := s.breaker.State()
		c := s.currentClient()
		if !open || c == nil {
			wait = probeMin
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, max(s.cfg.Platform.Timeout.Duration, time.Second))
		st, err := c.Ack(pctx)
		cancel()
		var coded *tillkeep.Error
		if err == nil || errors.As(err, &coded) {
			if err == nil {
				s.observeServerTime(ctx, st.ServerTime)
			}
			s.log.Info("platform reachable again")
			s.breaker.Success() // triggers a push
			wait = probeMin
			continue
		}
		s.breaker.Failure()
		wait = min(wait*2, probeMax)
	}
}

// enroll obtains the till's credentials with the enrollment token, retrying with
// backoff until it succeeds, is refused, or ctx ends.
func (s *Syncer) enroll(ctx context.Context) error {
	wait := enrollRetry
	for {
		creds, err := Enroll(ctx, s.cfg, s.log)
		if err == nil {
			if err := s.useCredentials(creds); err != nil {
				return err
			}
			s.breaker.Success()
			return nil
		}
		if !errors.Is(err, ErrUnreachable) {
			return err // a refusal: retrying the same token will not help
		}
		s.setError(err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, enrollRetryHi)
	}
}

// Enroll presents the enrollment token of cfg to the platform once and saves the
// till's credentials in its data dir. It refuses when the till already has them.
func Enroll(ctx context.Context, cfg config.Agent, log *slog.Logger) (Credentials, error) {
	if c, err := LoadCredentials(cfg.DataDir); err == nil {
		return c, checkCredentials(c, cfg)
	}
	if cfg.Platform.URL == "" {
		return Credentials{}, errors.New("enrollment needs platform.url")
	}
	if cfg.Platform.EnrollToken == "" {
		return Credentials{}, errors.New("the till is not enrolled and platform.enroll_token is empty (or set TILLKEEP_PLATFORM_ENROLL_TOKEN)")
	}
	cl, err := NewClient(cfg.Platform.URL, "", cfg.Platform.Timeout.Duration, log)
	if err != nil {
		return Credentials{}, err
	}
	resp, err := cl.Enroll(ctx, wire.EnrollRequest{StoreID: cfg.StoreID, TillID: cfg.TillID, EnrollToken: cfg.Platform.EnrollToken})
	if err != nil {
		return Credentials{}, fmt.Errorf("enroll till %s/%s: %w", cfg.StoreID, cfg.TillID, err)
	}
	creds := Credentials{PlatformURL: cfg.Platform.URL, StoreID: resp.StoreID, TillID: resp.TillID,
		Token: resp.Token, Epoch: resp.Epoch, EnrolledAt: time.Now().UTC()}
	if err := SaveCredentials(cfg.DataDir, creds); err != nil {
		return Credentials{}, err
	}
	log.Info("till enrolled", "store_id", creds.StoreID, "till_id", creds.TillID, "epoch", creds.Epoch)
	return creds, nil
}

// cronLogger hands robfig/cron's messages to slog.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("sync schedule: "+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("sync schedule: "+msg, append(kv, "err", err)...)
}
