package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
)

// holdWriter takes bbolt's writer lock, so that the committer blocks in its next
// transaction and requests pile up in the queue behind it.
func holdWriter(t *testing.T, db *DB) (release func()) {
	t.Helper()
	tx, err := db.bolt.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback() }) }
	t.Cleanup(release)
	return release
}

// openObserved opens a ledger whose committer reports each batch it starts.
func openObserved(t *testing.T) (*DB, <-chan int) {
	t.Helper()
	db := openTestWithCatalog(t)
	started := make(chan int, 64)
	// Set before any request is submitted; the committer reads it only for requests.
	db.batchStarted = func(n int) { started <- n }
	return db, started
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGroupCommitSharesCommits(t *testing.T) {
	db, started := openObserved(t)
	ctx := context.Background()
	base := db.commits.Load()
	release := holdWriter(t, db)

	const n = 9
	var wg sync.WaitGroup
	errs := make([]error, n)
	// The first request is taken by the committer, which then waits for the lock.
	wg.Go(func() { _, _, errs[0] = db.Record(ctx, recordReq("tx-0")) })
	if got := <-started; got != 1 {
		t.Fatalf("first batch has %d requests", got)
	}
	for i := 1; i < n; i++ {
		wg.Go(func() { _, _, errs[i] = db.Record(ctx, recordReq(fmt.Sprintf("tx-%d", i))) })
	}
	waitFor(t, "the other requests to queue", func() bool { return len(db.queue) == n-1 })
	release()
	wg.Wait()
	if got := <-started; got != n-1 {
		t.Fatalf("second batch has %d requests, want %d", got, n-1)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
	}
	if got := db.commits.Load() - base; got != 2 {
		t.Fatalf("%d requests took %d commits, want 2 (one alone, then the rest together)", n, got)
	}
	st, _ := db.Status(ctx)
	if st.LastSeq != n {
		t.Fatalf("last seq %d, want %d", st.LastSeq, n)
	}
}

func TestPoisonRequestDoesNotFailNeighbours(t *testing.T) {
	db := openTestWithCatalog(t)
	ctx := context.Background()
	good1, res1 := db.recordRequest(recordReq("tx-good-1"))
	good2, res2 := db.recordRequest(recordReq("tx-good-2"))
	poisonErr := errors.New("disk says no")
	poison := &writeRequest{prepare: func(tx *bolt.Tx) (func() error, error) {
		return func() error {
			// Half a write, then a failure: the transaction cannot be kept.
			if err := tx.Bucket(bucketMeta).Put([]byte("junk"), []byte("x")); err != nil {
				return err
			}
			return poisonErr
		}, nil
	}}
	panicky := &writeRequest{prepare: func(tx *bolt.Tx) (func() error, error) {
		return func() error { panic("write phase panic") }, nil
	}}
	batch := []*writeRequest{good1, poison, panicky, good2}
	for _, r := range batch {
		r.done = make(chan struct{})
	}
	db.commitBatch(batch)
	for _, r := range batch {
		<-r.done
	}
	if good1.err != nil || good2.err != nil {
		t.Fatalf("good requests failed: %v, %v", good1.err, good2.err)
	}
	if !errors.Is(poison.err, poisonErr) || panicky.err == nil {
		t.Fatalf("poisoned requests: %v, %v", poison.err, panicky.err)
	}
	if res1.out.Seq != 1 || res2.out.Seq != 2 {
		t.Fatalf("seqs %d and %d, want 1 and 2", res1.out.Seq, res2.out.Seq)
	}
	es, _ := db.Journal(ctx, 0, 0)
	if len(es) != 2 || es[0].TransactionID != "tx-good-1" || es[1].TransactionID != "tx-good-2" {
		t.Fatalf("journal %+v", es)
	}
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get([]byte("junk")) != nil {
			t.Error("the poisoned request's half write was committed")
		}
		return nil
	})
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}

// Two requests for the same transaction in one batch: the second sees the first's
// uncommitted write and replays it.
func TestSameTransactionInOneBatch(t *testing.T) {
	db := openTestWithCatalog(t)
	a, resA := db.recordRequest(recordReq("tx-1"))
	b, resB := db.recordRequest(recordReq("tx-1"))
	a.done, b.done = make(chan struct{}), make(chan struct{})
	db.commitBatch([]*writeRequest{a, b})
	if a.err != nil || b.err != nil {
		t.Fatal(a.err, b.err)
	}
	if resA.replayed || !resB.replayed || resA.out.RedemptionID != resB.out.RedemptionID {
		t.Fatalf("outcomes %+v / %+v", resA, resB)
	}
	if st, _ := db.Status(context.Background()); st.LastSeq != 1 {
		t.Fatalf("last seq %d, want 1", st.LastSeq)
	}
}

func TestCancelWhileQueued(t *testing.T) {
	db, started := openObserved(t)
	release := holdWriter(t, db)
	var wg sync.WaitGroup
	var firstErr error
	wg.Go(func() { _, _, firstErr = db.Record(context.Background(), recordReq("tx-first")) })
	<-started

	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan error, 1)
	go func() { _, _, err := db.Record(ctx, recordReq("tx-queued")); queued <- err }()
	waitFor(t, "the second request to queue", func() bool { return len(db.queue) == 1 })
	cancel()
	// The cancelled caller returns while the writer is still blocked.
	if queuedErr := <-queued; !errors.Is(queuedErr, context.Canceled) {
		t.Fatalf("cancelled Record: %v", queuedErr)
	}
	release()
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	if _, ok, _ := db.OutcomeByTransaction(context.Background(), "tx-queued"); ok {
		t.Fatal("a request cancelled in the queue was committed")
	}
}

func TestCloseFailsQueuedRequests(t *testing.T) {
	db, started := openObserved(t)
	release := holdWriter(t, db)
	var wg sync.WaitGroup
	var firstErr, queuedErr error
	wg.Go(func() { _, _, firstErr = db.Record(context.Background(), recordReq("tx-first")) })
	<-started
	wg.Go(func() { _, _, queuedErr = db.Record(context.Background(), recordReq("tx-queued")) })
	waitFor(t, "the second request to queue", func() bool { return len(db.queue) == 1 })
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	waitFor(t, "Close to begin", db.isClosed)
	release()
	wg.Wait()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if firstErr != nil {
		t.Fatalf("the request already committing failed: %v", firstErr)
	}
	if !errors.Is(queuedErr, ErrClosed) {
		t.Fatalf("queued request at Close: %v", queuedErr)
	}
	if _, _, err := db.Record(context.Background(), recordReq("tx-late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Record after Close: %v", err)
	}
	if tillkeep.ErrorCode(ErrClosed) != tillkeep.CodeUnavailable {
		t.Fatal("ErrClosed is not coded unavailable")
	}
}

// A batch of replays and refusals commits nothing: no fsync for answers that change
// nothing.
func TestReadOnlyBatchDoesNotCommit(t *testing.T) {
	db := openTestWithCatalog(t)
	ctx := context.Background()
	if _, _, err := db.Record(ctx, recordReq("tx-1")); err != nil {
		t.Fatal(err)
	}
	base := db.commits.Load()
	for range 3 {
		if _, replayed, err := db.Record(ctx, recordReq("tx-1")); err != nil || !replayed {
			t.Fatal(replayed, err)
		}
	}
	unknown := recordReq("tx-2")
	unknown.Code = "NOPE"
	if _, _, err := db.Record(ctx, unknown); tillkeep.ErrorCode(err) != tillkeep.CodeUnknownCoupon {
		t.Fatal(err)
	}
	if got := db.commits.Load() - base; got != 0 {
		t.Fatalf("%d commits for replays and refusals, want 0", got)
	}
}
