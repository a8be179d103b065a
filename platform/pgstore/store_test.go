package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/pgstore"
	"github.com/tillkeep/tillkeep/platform/pgstore/pgtest"
	"github.com/tillkeep/tillkeep/platform/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) platform.Storage { return pgtest.Open(t) })
}

// sqlConn is a plain connection to dsn, for checks below the storage interface.
func sqlConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func update(t *testing.T, s platform.Storage, fn func(tx platform.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func TestOpenUnreachableNamesTheDatabaseNotThePassword(t *testing.T) {
	// Port 1 on the loopback refuses connections at once.
	dsn := "postgres://tk:s3cret-pw@127.0.0.1:1/tillkeep?sslmode=disable&connect_timeout=2"
	_, err := pgstore.Open(t.Context(), dsn, pgstore.Options{})
	if err == nil {
		t.Fatal("open of an unreachable database succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"127.0.0.1:1", `database "tillkeep"`, `user "tk"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %s", msg, want)
		}
	}
	if strings.Contains(msg, "s3cret-pw") {
		t.Fatalf("error leaks the password: %q", msg)
	}
	for _, dsn := range []string{
		"host=127.0.0.1 port=1 user=tk password=s3cret-pw dbname=tillkeep connect_timeout=2",
		"postgres://tk:s3cret-pw@127.0.0.1:notaport/tillkeep", // unparsable
	} {
		if _, err := pgstore.Open(t.Context(), dsn, pgstore.Options{}); err == nil || strings.Contains(err.Error(), "s3cret-pw") {
			t.Fatalf("DSN %q: %v", strings.ReplaceAll(dsn, "s3cret-pw", "…"), err)
		}
	}
}

func TestOpenMissingDatabaseSaysSo(t *testing.T) {
	admin := pgtest.Require(t)
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("postgres://%s@%s:%d/tillkeep_test_does_not_exist?sslmode=disable", cfg.User, cfg.Host, cfg.Port)
	_, err = pgstore.Open(t.Context(), dsn, pgstore.Options{})
	if err == nil || !strings.Contains(err.Error(), "tillkeep_test_does_not_exist") || !strings.Contains(err.Error(), "create the database") {
		t.Fatalf("open of a missing database: %v", err)
	}
}

// TestInstancesStartingTogetherMigrateOnce opens several stores on a new database at
// once: the advisory lock lets one apply the migrations, the others find them done,
// and all agree on one epoch.
func TestInstancesStartingTogetherMigrateOnce(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	const n = 4
	stores := make([]*pgstore.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = pgstore.Open(t.Context(), dsn, pgstore.Options{})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	for i := 1; i < n; i++ {
		if stores[i].Epoch() != stores[0].Epoch() {
			t.Fatalf("instances disagree on the epoch: %s and %s", stores[0].Epoch(), stores[i].Epoch())
		}
	}
	var rows, version int
	if err := sqlConn(t, dsn).QueryRow(t.Context(), "SELECT count(*), max(version) FROM schema_migrations").Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	if rows != pgstore.SchemaVersion() || version != pgstore.SchemaVersion() {
		t.Fatalf("schema_migrations has %d rows up to version %d, want %d", rows, version, pgstore.SchemaVersion())
	}
	// Migrate alone finds nothing to do.
	done, err := pgstore.Migrate(t.Context(), dsn, pgstore.Options{})
	if err != nil || len(done) != 0 {
		t.Fatalf("second migrate applied %v, %v", done, err)
	}
}

func TestMigrateAloneThenOpen(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	done, err := pgstore.Migrate(t.Context(), dsn, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != pgstore.SchemaVersion() || done[0].Name != "0001_init.sql" {
		t.Fatalf("migrate applied %+v", done)
	}
	s := pgtest.OpenDSN(t, dsn)
	if s.Epoch() == "" {
		t.Fatal("no epoch")
	}
	// The epoch survives a reopen: it belongs to the database.
	if again := pgtest.OpenDSN(t, dsn); again.Epoch() != s.Epoch() {
		t.Fatalf("epoch changed on reopen: %s then %s", s.Epoch(), again.Epoch())
	}
}

func TestSchemaNewerOrChangedIsRefused(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	if _, err := pgstore.Migrate(t.Context(), dsn, pgstore.Options{}); err != nil {
		t.Fatal(err)
	}
	conn := sqlConn(t, dsn)
	if _, err := conn.Exec(t.Context(), "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := pgstore.Open(t.Context(), dsn, pgstore.Options{}); err == nil || !strings.Contains(err.Error(), "must never change") {
		t.Fatalf("open with an edited migration: %v", err)
	}
	if _, err := conn.Exec(t.Context(), "UPDATE schema_migrations SET checksum = $1 WHERE version = 1", pgstore.Migrations()[0].Checksum); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "INSERT INTO schema_migrations (version, name, checksum) VALUES (999, '0999_future.sql', 'x')"); err != nil {
		t.Fatal(err)
	}
	if _, err := pgstore.Open(t.Context(), dsn, pgstore.Options{}); err == nil || !strings.Contains(err.Error(), "newer than this tillkeep") {
		t.Fatalf("open of a newer schema: %v", err)
	}
}

// TestAckedSeqOnlyMovesForward checks the database itself, not only the Go code,
// refuses to move a till's acknowledged sequence back.
func TestAckedSeqOnlyMovesForward(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := pgtest.OpenDSN(t, dsn)
	update(t, s, func(tx platform.Tx) error {
		return tx.PutTill(platform.Till{StoreID: "S001", TillID: "T01", TokenHash: "h1", AckedSeq: 5})
	})
	err := s.Update(t.Context(), func(tx platform.Tx) error {
		tl, err := tx.Till("S001", "T01")
		if err != nil {
			return err
		}
		tl.AckedSeq = 3
		return tx.PutTill(tl)
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
		t.Fatalf("moving acked_seq back through the storage: %v, want a check violation", err)
	}
	if _, err := sqlConn(t, dsn).Exec(t.Context(), "UPDATE tills SET acked_seq = 4 WHERE till_id = 'T01'"); err == nil || !strings.Contains(err.Error(), "cannot move back") {
		t.Fatalf("moving acked_seq back in SQL: %v", err)
	}
	if _, err := sqlConn(t, dsn).Exec(t.Context(), "INSERT INTO redemptions (id, code, offer_id, store_id, till_id, transaction_id, mode, status, event_ns, data) VALUES ('r1', 'K', 'O', 'S', 'T', '', 'online', 'accepted', 0, '{}'), ('r1', 'K', 'O', 'S', 'T', '', 'online', 'accepted', 0, '{}')"); err == nil {
		t.Fatal("the database accepted one redemption id twice")
	}
	update(t, s, func(tx platform.Tx) error {
		tl, err := tx.Till("S001", "T01")
		if err != nil {
			return err
		}
		if tl.AckedSeq != 5 {
			t.Fatalf("acked_seq = %d after refused moves, want 5", tl.AckedSeq)
		}
		tl.AckedSeq = 6
		return tx.PutTill(tl)
	})
}

// TestConcurrentInsertOfAbsentKeyRunsAgain makes two transactions read the same
// missing usage row, then both write it: the second must not overwrite the first
// (a lost update) but run again on the row the first committed.
func TestConcurrentInsertOfAbsentKeyRunsAgain(t *testing.T) {
	s := pgtest.Open(t)
	var bothRead sync.WaitGroup
	bothRead.Add(2)
	inc := func() error {
		var first atomic.Bool
		first.Store(true)
		return s.Update(t.Context(), func(tx platform.Tx) error {
			u, err := tx.OfferUsage("O1")
			if err != nil {
				return err
			}
			if first.Swap(false) {
				bothRead.Done()
				bothRead.Wait()
			}
			u.Redemptions++
			return tx.PutOfferUsage(u)
		})
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- inc() }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var u platform.OfferUsage
	if err := s.View(t.Context(), func(tx platform.ReadTx) error {
		var err error
		u, err = tx.OfferUsage("O1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if u.Redemptions != 2 {
		t.Fatalf("offer usage %d after two increments, want 2", u.Redemptions)
	}
	if s.Retries() == 0 {
		t.Fatal("no transaction ran again, yet both read the row as absent")
	}
}

// TestDeadlockIsRetried locks two coupons in opposite orders from two transactions:
// PostgreSQL breaks the deadlock by failing one, which runs again and succeeds.
func TestDeadlockIsRetried(t *testing.T) {
	s := pgtest.Open(t)
	update(t, s, func(tx platform.Tx) error {
		_, err := tx.InsertCoupons([]tillkeep.Coupon{
			{Code: "A", OfferID: "O1", Status: tillkeep.CouponActive},
			{Code: "B", OfferID: "O1", Status: tillkeep.CouponActive},
		})
		return err
	})
	var bothLocked sync.WaitGroup
	bothLocked.Add(2)
	redeemBoth := func(firstCode, secondCode string) error {
		var first atomic.Bool
		first.Store(true)
		return s.Update(t.Context(), func(tx platform.Tx) error {
			a, err := tx.Coupon(firstCode)
			if err != nil {
				return err
			}
			if first.Swap(false) {
				bothLocked.Done()
				bothLocked.Wait()
			}
			b, err := tx.Coupon(secondCode)
			if err != nil {
				return err
			}
			a.Redemptions++
			b.Redemptions++
			if err := tx.UpdateCoupon(a); err != nil {
				return err
			}
			return tx.UpdateCoupon(b)
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- redeemBoth("A", "B") }()
	go func() { errs <- redeemBoth("B", "A") }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.View(t.Context(), func(tx platform.ReadTx) error {
		for _, code := range []string{"A", "B"} {
			c, err := tx.Coupon(code)
			if err != nil {
				return err
			}
			if c.Redemptions != 2 {
				t.Errorf("coupon %s counts %d, want 2", code, c.Redemptions)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if s.Retries() == 0 {
		t.Fatal("the deadlock was not retried")
	}
}

func TestRetriesAreBounded(t *testing.T) {
	s := pgtest.Open(t)
	runs := 0
	err := s.Update(t.Context(), func(tx platform.Tx) error {
		runs++
		return fmt.Errorf("simulated: %w", &pgconn.PgError{Code: "40001", Message: "could not serialize access"})
	})
	if err == nil || !strings.Contains(err.Error(), "attempts") || tillkeep.ErrorCode(err) != tillkeep.CodeUnavailable {
		t.Fatalf("endless serialization failures: %v; want an unavailable error after a bounded number of attempts", err)
	}
	if runs < 2 || runs > 20 {
		t.Fatalf("fn ran %d times; want a few retries, bounded", runs)
	}
	// Other errors are not retried.
	runs = 0
	boom := errors.New("boom")
	if err := s.Update(t.Context(), func(tx platform.Tx) error { runs++; return boom }); !errors.Is(err, boom) || runs != 1 {
		t.Fatalf("plain error: %v after %d runs", err, runs)
	}
}

// TestRedemptionIDRecordedOnceAcrossInstances races the same redemption id through
// two stores (two instances, two pools) on one database: the primary key lets exactly
// one transaction record it; the others see it on their re-run.
func TestRedemptionIDRecordedOnceAcrossInstances(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := pgtest.OpenDSN(t, dsn), pgtest.OpenDSN(t, dsn)
	const n = 20
	var recorded atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		st := []*pgstore.Store{a, b}[i%2]
		wg.Go(func() {
			<-start
			var inserted bool
			err := st.Update(t.Context(), func(tx platform.Tx) error {
				inserted = false
				if _, err := tx.Redemption("r-1"); err == nil {
					return nil
				} else if !errors.Is(err, platform.ErrNotFound) {
					return err
				}
				inserted = true
				return tx.InsertRedemption(platform.Redemption{ID: "r-1", Code: "K1", OfferID: "O1", StoreID: "S001",
					TillID: fmt.Sprintf("T%02d", i), Mode: tillkeep.ModeOnline, Status: tillkeep.RedemptionAccepted, EventAt: time.Now()})
			})
			if err != nil {
				t.Error(err)
			}
			if inserted {
				recorded.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if recorded.Load() != 1 {
		t.Fatalf("%d transactions recorded redemption r-1, want exactly 1", recorded.Load())
	}
}

// TestInsertCouponsInBulk inserts codes in chunks the size the platform uses and logs
// the rate (no timed assertion: machines differ).
func TestInsertCouponsInBulk(t *testing.T) {
	s := pgtest.Open(t)
	const chunk, chunks = 10_000, 10
	started := time.Now()
	for c := range chunks {
		cs := make([]tillkeep.Coupon, chunk)
		for i := range cs {
			// 7919 is prime to 10,000: a permutation, so that inserts come unsorted.
			cs[i] = tillkeep.Coupon{Code: fmt.Sprintf("B%07d", c*chunk+(i*7919)%chunk), OfferID: "O1", Status: tillkeep.CouponActive, CreatedAt: time.Now()}
		}
		update(t, s, func(tx platform.Tx) error {
			existing, err := tx.InsertCoupons(cs)
			if err != nil {
				return err
			}
			if len(existing) != 0 {
				t.Fatalf("chunk %d: %d codes reported existing", c, len(existing))
			}
			return nil
		})
	}
	took := time.Since(started)
	t.Logf("inserted %d coupons in %v (%.0f/s)", chunk*chunks, took.Round(time.Millisecond), float64(chunk*chunks)/took.Seconds())
	if err := s.View(t.Context(), func(tx platform.ReadTx) error {
		page, err := tx.UnissuedCoupons("O1", "B0049999", 2)
		if err != nil {
			return err
		}
		if len(page) != 2 || page[0].Code != "B0050000" || page[1].Code != "B0050001" {
			t.Fatalf("unissued page after B0049999 = %+v", page)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
