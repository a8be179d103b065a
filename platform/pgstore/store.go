package pgstore

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform"
)

// Pool defaults, used when the DSN does not set them (pgx reads pool_max_conns,
// pool_min_conns, pool_health_check_period, pool_max_conn_lifetime,
// pool_max_conn_idle_time and connect_timeout from the DSN).
const (
	// DefaultMaxConns bounds one instance's connections. Ten instances stay at 160,
	// inside a server's usual max_connections with room for ops and replication.
	DefaultMaxConns = 16
	// DefaultConnectTimeout bounds each connection attempt, so that an unreachable
	// database is reported instead of hanging a start or a request.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultHealthCheckPeriod is how often idle connections are checked and replaced:
	// after a database restart the pool is whole again within this period.
	DefaultHealthCheckPeriod = 15 * time.Second
	// idleInTransactionTimeout makes the server end a session that sits in an open
	// transaction (a frozen or partitioned instance), releasing its row locks, so that
	// one stuck instance cannot block every redemption of an offer.
	idleInTransactionTimeout = 60 * time.Second
)

// Retry bounds for serialization failures, deadlocks and concurrent inserts.
const (
	maxAttempts  = 10
	retryBackoff = 2 * time.Millisecond
	retryMaxWait = 250 * time.Millisecond
)

// Meta keys owned by the storage.
const (
	metaEpoch         = "epoch"
	metaSchemaVersion = "schema_version"
)

var _ platform.Storage = (*Store)(nil)

// Store is a platform.Storage on a PostgreSQL database, shared by any number of
// platform instances.
type Store struct {
	pool    *pgxpool.Pool
	epoch   string
	target  string // host:port/db as user, for messages; never the password
	log     *slog.Logger
	retries atomic.Uint64
}

// Options tune Open; the zero value is right for production.
type Options struct {
	// Logger receives migration and retry messages (nil: discard).
	Logger *slog.Logger
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o.Logger
}

// poolConfig parses dsn and applies the defaults the DSN leaves open.
func poolConfig(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx redacts the password from its parse errors.
		return nil, fmt.Errorf("parse storage.dsn: %w", err)
	}
	set := func(param string) bool { return strings.Contains(dsn, param) }
	if !set("pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	if !set("pool_health_check_period") {
		cfg.HealthCheckPeriod = DefaultHealthCheckPeriod
	}
	if !set("connect_timeout") {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	rp := cfg.ConnConfig.RuntimeParams
	if _, ok := rp["application_name"]; !ok {
		rp["application_name"] = "tillkeep-platform"
	}
	if _, ok := rp["idle_in_transaction_session_timeout"]; !ok {
		rp["idle_in_transaction_session_timeout"] = strconv.FormatInt(idleInTransactionTimeout.Milliseconds(), 10)
	}
	return cfg, nil
}

// describe names the database a config points at, without the password.
func describe(cfg *pgconn.Config) string {
	host := cfg.Host
	if strings.HasPrefix(host, "/") {
		host = "socket " + host
	} else {
		host = net.JoinHostPort(host, strconv.Itoa(int(cfg.Port)))
	}
	return fmt.Sprintf("%s, database %q, user %q", host, cfg.Database, cfg.User)
}

// connectError explains why the database at target could not be used, with a hint at
// the usual cause.
func connectError(target string, err error) error {
	hint := ""
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "3D000":
		hint = "; create the database first (CREATE DATABASE) or fix the database name in storage.dsn"
	case errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000"):
		hint = "; check the user and password in storage.dsn (or TILLKEEP_STORAGE_DSN) and pg_hba.conf"
	case errors.As(err, &pgErr) && pgErr.Code == "53300":
		hint = "; the server has no free connection slots: lower pool_max_conns or raise max_connections"
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
		hint = "; no answer within the connect timeout: check host, port and firewalls"
	case strings.Contains(err.Error(), "connection refused"):
		hint = "; is PostgreSQL running and listening there?"
	}
	return fmt.Errorf("connect to PostgreSQL at %s: %w%s", target, err, hint)
}

// Open connects to the database dsn names, applies pending migrations (under an
// advisory lock, so that instances starting together do not race) and returns the
// store. It fails with a message naming host, port, database and user (never the
// password) when the database cannot be reached.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	log := opts.logger()
	cfg, err := poolConfig(dsn)
	if err != nil {
		return nil, err
	}
	target := describe(cfg.ConnConfig.Config.Copy())
	if _, err := migrateDSN(ctx, cfg, target, log); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, connectError(target, err)
	}
	s := &Store{pool: pool, target: target, log: log}
	if err := s.loadEpoch(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	log.Info("opened PostgreSQL storage", "database", target, "epoch", s.epoch,
		"schema_version", SchemaVersion(), "max_conns", cfg.MaxConns)
	return s, nil
}

// Migrate applies the pending migrations of the database dsn names and returns them;
// it is what `tillkeep platform migrate` runs. Open does the same on every start.
func Migrate(ctx context.Context, dsn string, opts Options) ([]Migration, error) {
	cfg, err := poolConfig(dsn)
	if err != nil {
		return nil, err
	}
	return migrateDSN(ctx, cfg, describe(cfg.ConnConfig.Config.Copy()), opts.logger())
}

// migrateDSN runs the migrations on a connection of their own: the advisory lock is a
// session lock and must not travel with a pooled connection.
func migrateDSN(ctx context.Context, cfg *pgxpool.Config, target string, log *slog.Logger) ([]Migration, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy())
	if err != nil {
		return nil, connectError(target, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	done, err := migrate(ctx, conn, log)
	if err != nil {
		return done, fmt.Errorf("migrate PostgreSQL schema at %s: %w", target, err)
	}
	return done, nil
}

// loadEpoch makes the epoch when the database has none, and reads it. Instances that
// start together agree on one: the insert does nothing when a row is there.
func (s *Store) loadEpoch(ctx context.Context) error {
	var raw [16]byte
	if _, err := cryptorand.Read(raw[:]); err != nil {
		return fmt.Errorf("make epoch: %w", err)
	}
	fresh := hex.EncodeToString(raw[:])
	var epoch []byte
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		ct, err := tx.Exec(ctx, "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", metaEpoch, []byte(fresh))
		if err != nil {
			return err
		}
		if ct.RowsAffected() == 1 {
			s.log.Info("created platform database", "database", s.target, "epoch", fresh)
		}
		return tx.QueryRow(ctx, "SELECT value FROM meta WHERE key = $1", metaEpoch).Scan(&epoch)
	})
	if err != nil {
		return connectError(s.target, fmt.Errorf("read the database epoch: %w", err))
	}
	s.epoch = string(epoch)
	return nil
}

// Epoch implements platform.Storage.
func (s *Store) Epoch() string { return s.epoch }

// Target names the database (host, port, database, user; no password).
func (s *Store) Target() string { return s.target }

// Retries is how many times Update re-ran a function since Open, after a
// serialization failure, a deadlock or a concurrent insert.
func (s *Store) Retries() uint64 { return s.retries.Load() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return s.unavailable("ping", err)
	}
	return nil
}

// Close implements platform.Storage: it waits for connections in use to be returned
// and closes them all.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// errRetry is returned by a transaction that must run again.
var errRetry = errors.New("transaction must run again")

// retryable reports whether err is a failure Update answers by running fn again:
// PostgreSQL's serialization failures and deadlocks, and a concurrent insert of a key
// this transaction read as absent (reported by txn).
func retryable(err error) bool {
	if errors.Is(err, errRetry) {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// isUnavailable reports whether err means the database cannot be reached (down,
// restarting, out of connections, network gone) rather than a refused statement.
func isUnavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", // shutdown, crash, starting
			pgErr.Code == "53300": // too many connections
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.Timeout(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "closed pool") || strings.Contains(err.Error(), "conn closed")
}

// unavailable turns a connectivity failure into a coded "unavailable" error (HTTP 503,
// retried by tills), leaving other errors as they are.
func (s *Store) unavailable(what string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if isUnavailable(err) {
		return tillkeep.Wrap(tillkeep.CodeUnavailable, err, "the platform database (%s) cannot be reached (%s); retry later", s.target, what)
	}
	return err
}

// View implements platform.Storage: fn runs in a REPEATABLE READ, READ ONLY
// transaction, so that every statement sees the same snapshot. Its BEGIN travels with
// fn's first statement.
func (s *Store) View(ctx context.Context, fn func(platform.ReadTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.unavailable("connect", fmt.Errorf("acquire a connection: %w", err))
	}
	defer conn.Release()
	t := newTxn(ctx, conn.Conn(), false)
	ferr := runGuarded(func() error { return fn(t) })
	t.abort() // read-only: ROLLBACK ends it as well as COMMIT would
	if t.err != nil {
		return s.unavailable("read", t.err)
	}
	return ferr
}

// Update implements platform.Storage. fn runs in a READ COMMITTED transaction in which
// every read of a row fn may change locks it (SELECT … FOR UPDATE), in the lock order
// platform.Storage documents; see docs/scaling.md for why that isolation is enough.
// fn runs again, up to maxAttempts times with jittered backoff, after a serialization
// failure, a deadlock, an insert that found a key fn had read as absent, or a
// connection lost before the COMMIT was sent.
func (s *Store) Update(ctx context.Context, fn func(platform.Tx) error) error {
	var last error
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			if last != nil {
				return fmt.Errorf("%w (after %v)", err, last)
			}
			return err
		}
		again, err := s.updateOnce(ctx, fn)
		if !again {
			return err
		}
		last = err
		if attempt >= maxAttempts {
			// Transient by nature (contention, a database coming back): the client
			// retries later with its idempotency key.
			return tillkeep.Wrap(tillkeep.CodeUnavailable, err, "the platform database stayed busy for %d attempts; retry later", attempt)
		}
		s.retries.Add(1)
		s.log.Debug("retrying storage update", "attempt", attempt, "err", err)
		wait := min(retryBackoff<<(attempt-1), retryMaxWait)
		wait = wait/2 + rand.N(wait/2+1)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
		case <-timer.C:
		}
	}
}

// updateOnce runs fn once; again says whether the failure calls for another run.
func (s *Store) updateOnce(ctx context.Context, fn func(platform.Tx) error) (again bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, s.unavailable("connect", fmt.Errorf("acquire a connection: %w", err))
	}
	defer conn.Release()
	t := newTxn(ctx, conn.Conn(), true)
	ferr := runGuarded(func() error { return fn(t) })
	if ferr == nil && t.usable() == nil {
		_ = t.commit() // a concurrent insert may show up only now
	}
	switch {
	case t.retry != nil:
		t.abort()
		return true, t.retry
	case t.err != nil:
		t.abort()
		if retryable(t.err) {
			return true, t.err
		}
		if t.commitSent {
			// The COMMIT went out: it may or may not have taken effect, so fn is not
			// run again here. The platform's operations are idempotent by key, and
			// their callers retry.
			return false, s.unavailable("commit", fmt.Errorf("commit: %w", t.err))
		}
		// A connection lost before the commit committed nothing: run again, on
		// another connection (or fail at once if the database is gone).
		return isUnavailable(t.err), s.unavailable("update", t.err)
	case ferr != nil:
		t.abort()
		return retryable(ferr), ferr
	}
	return false, nil
}

// runGuarded runs fn, turning a panic into an error so that the transaction is rolled
// back and its connection returned.
func runGuarded(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("storage function panicked: %v", v)
		}
	}()
	return fn()
}
