package sync

import (
	gosync "sync"
	"time"
)

// Breaker remembers whether the platform is reachable, so that a till in an outage
// answers at offline speed instead of spending its online budget on every redemption.
// It opens on the first unreachable answer and closes only when a probe (or any other
// call) gets through; the syncer probes in the background while it is open.
type Breaker struct {
	mu       gosync.Mutex
	open     bool
	since    time.Time
	failures int
	// onClose is called (outside the lock) when the platform becomes reachable again, so
	// that a push starts at once on reconnect rather than at the next tick.
	onClose func()
	now     func() time.Time
}

// NewBreaker returns a breaker that starts open: until the platform has answered once,
// the till assumes it is offline.
func NewBreaker(now func() time.Time, onClose func()) *Breaker {
	return &Breaker{open: true, since: now(), now: now, onClose: onClose}
}

// Allow reports whether an online attempt should be made now.
func (b *Breaker) Allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.open
}

// Success records an answer from the platform.
func (b *Breaker) Success() {
	b.mu.Lock()
	wasOpen := b.open
	b.open, b.failures = false, 0
	if wasOpen {
		b.since = b.now()
	}
	cb := b.onClose
	b.mu.Unlock()
	if wasOpen && cb != nil {
		cb()
	}
}

// Failure records an unreachable platform.
func (b *Breaker) Failure() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	if !b.open {
		b.open, b.since = true, b.now()
	}
}

// State returns whether the breaker is open, since when, and the consecutive failures.
func (b *Breaker) State() (open bool, since time.Time, failures int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open, b.since, b.failures
}
