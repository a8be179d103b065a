package e2e

import (
	"context"
	"fmt"
	"time"
)

// Check is one look at the system: done when ok; state describes what was seen, for the
// message when the wait runs out; an error is remembered but not fatal (a daemon being
// restarted refuses connections for a moment).
type Check func(ctx context.Context) (ok bool, state string, err error)

// WaitFor polls check until it is ok, timeout passes or ctx ends. Polls start 50 ms
// apart and slow down to 500 ms, so that a long wait does not load the daemons it
// watches. Scenarios synchronise only through this, never through fixed sleeps.
func WaitFor(ctx context.Context, timeout time.Duration, what string, check Check) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	interval := 50 * time.Millisecond
	var (
		state   string
		lastErr error
	)
	for {
		ok, st, err := check(ctx)
		if err == nil && ok {
			return nil
		}
		if st != "" {
			state = st
		}
		if err != nil {
			lastErr = err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			msg := fmt.Sprintf("waited %s for %s", time.Since(start).Round(time.Millisecond), what)
			if parent.Err() != nil {
				msg += fmt.Sprintf(" (%v)", context.Cause(parent))
			}
			if state != "" {
				msg += "; last seen: " + state
			}
			if lastErr != nil {
				msg += fmt.Sprintf("; last error: %v", lastErr)
			}
			return fmt.Errorf("%s", msg)
		case <-t.C:
		}
		interval = min(interval*3/2, 500*time.Millisecond)
	}
}
