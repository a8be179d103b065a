package store

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
)

// Group commit.
//
// A bbolt commit costs two fsyncs, so committing lanes one at a time caps a till near
// half its disk's fsync rate. bbolt's own Batch shares commits but waits up to 10 ms to
// gather them, which a lone lane would pay on every redemption. Instead one committer
// goroutine takes the first queued request, adds whatever else is already queued
// (without waiting), runs them all in one write transaction and answers each after the
// commit. A lone request is committed at once; while a commit is running, the next
// requests queue up and share the following one.
//
// Each request is split into a read-and-decide phase (prepare) that must not write, and
// a write phase (apply). A request refused in prepare writes nothing and its neighbours
// go on. If an apply or the commit fails, the transaction is rolled back and every
// request of the batch is run again in a transaction of its own, so one poisoned
// request cannot fail the others.

// maxBatch caps how many requests share one transaction.
const maxBatch = 256

// writeRequest is one queued Record or Reverse.
type writeRequest struct {
	// prepare reads the transaction and decides. It must not write. It returns the
	// write phase (nil: nothing to write, e.g. a replay) or the request's error. It may
	// run more than once; the run that is committed sets the caller's result.
	prepare func(tx *bolt.Tx) (apply func() error, err error)
	err     error
	state   atomic.Int32
	done    chan struct{}
}

const (
	requestQueued int32 = iota
	requestStarted
	requestAbandoned // the caller gave up while it was still queued
)

// submit queues r and waits for its answer. A caller whose context ends while r is
// still queued gets the context's error and r is never run; once the committer has
// started r, the caller waits for the true result, which is then at most one commit
// away.
func (db *DB) submit(ctx context.Context, r *writeRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.done = make(chan struct{})
	select {
	case db.queue <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-db.stopping:
		return ErrClosed
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(requestQueued, requestAbandoned) {
			return ctx.Err()
		}
	case <-db.stopped:
		if r.state.CompareAndSwap(requestQueued, requestAbandoned) {
			return ErrClosed
		}
	}
	<-r.done
	return r.err
}

func (db *DB) commitLoop() {
	defer close(db.stopped)
	batch := make([]*writeRequest, 0, maxBatch)
	for {
		// Close wins over queued work: what has not started is answered ErrClosed
		// rather than racing the shutdown.
		select {
		case <-db.stopping:
			db.failQueued()
			return
		default:
		}
		select {
		case <-db.stopping:
			db.failQueued()
			return
		case first := <-db.queue:
			batch = append(batch[:0], first)
			// Lanes woken by the previous commit may be about to queue their next
			// request; yielding once lets them, at the cost of a scheduler pass (not a
			// timer) for a lone lane.
			runtime.Gosched()
		drain:
			for len(batch) < maxBatch {
				select {
				case r := <-db.queue:
					batch = append(batch, r)
				default:
					break drain
				}
			}
			db.commitBatch(batch)
			clear(batch)
		}
	}
}

// failQueued answers what is still queued at Close.
func (db *DB) failQueued() {
	for {
		select {
		case r := <-db.queue:
			if r.state.CompareAndSwap(requestQueued, requestStarted) {
				r.err = ErrClosed
				close(r.done)
			}
		default:
			return
		}
	}
}

func (db *DB) commitBatch(batch []*writeRequest) {
	live := batch[:0:0]
	for _, r := range batch {
		if r.state.CompareAndSwap(requestQueued, requestStarted) {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	if err := db.runBatch(live); err != nil {
		if len(live) == 1 {
			live[0].err = err
		} else {
			db.log.Warn("group commit failed; committing its requests one by one", "requests", len(live), "err", err)
			for _, r := range live {
				if err := db.runBatch([]*writeRequest{r}); err != nil {
					r.err = err
				}
			}
		}
	}
	for _, r := range live {
		close(r.done)
	}
}

// runBatch runs reqs in one write transaction. A request's own refusal is left in its
// err; a returned error means nothing was committed.
func (db *DB) runBatch(reqs []*writeRequest) error {
	if db.batchStarted != nil {
		db.batchStarted(len(reqs))
	}
	tx, err := db.bolt.Begin(true)
	if err != nil {
		return storageError("begin ledger transaction", err)
	}
	wrote := false
	for _, r := range reqs {
		apply, err := safePrepare(r, tx)
		r.err = err
		if err != nil || apply == nil {
			continue
		}
		if err := safeApply(apply); err != nil {
			_ = tx.Rollback()
			return storageError("write ledger", err)
		}
		wrote = true
	}
	if !wrote {
		// Replays and refusals only: nothing to make durable, so spare the fsyncs.
		return storageError("end ledger transaction", tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		return storageError("commit ledger", err)
	}
	db.commits.Add(1)
	return nil
}

func safePrepare(r *writeRequest, tx *bolt.Tx) (apply func() error, err error) {
	defer func() {
		if p := recover(); p != nil {
			apply, err = nil, tillkeep.Errorf(tillkeep.CodeInternal, "ledger request panicked: %v", p)
		}
	}()
	return r.prepare(tx)
}

func safeApply(apply func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("ledger write panicked: %v", p)
		}
	}()
	return apply()
}
