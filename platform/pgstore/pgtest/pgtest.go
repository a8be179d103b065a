// Package pgtest gives tests a PostgreSQL database of their own: it creates
// tillkeep_test_<random> on the local server, opens a pgstore.Store on it and drops
// the database when the test ends.
//
// The server is postgres://root@127.0.0.1:5432 or postgres://postgres@127.0.0.1:5432
// (trust authentication), or the maintenance database named by TILLKEEP_TEST_PG_DSN.
// When none answers, the test is skipped with the reason — except under CI=true, where
// it fails: CI starts PostgreSQL, so its absence there is a broken machine.
//
// It is for tests only and must not be imported by production code.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tillkeep/tillkeep/platform/pgstore"
)

// EnvDSN overrides the maintenance database tests connect to.
const EnvDSN = "TILLKEEP_TEST_PG_DSN"

// defaultDSNs are tried in order when EnvDSN is unset.
var defaultDSNs = []string{
	"postgres://root@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=3",
	"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=3",
}

var (
	findOnce sync.Once
	adminDSN string
	findErr  error
)

// AdminDSN returns the DSN of a maintenance database on the test server that may
// create databases, or why there is none.
func AdminDSN() (string, error) {
	findOnce.Do(func() {
		candidates := defaultDSNs
		if v := os.Getenv(EnvDSN); v != "" {
			candidates = []string{v}
		}
		var errs []error
		for _, dsn := range candidates {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := probe(ctx, dsn)
			cancel()
			if err == nil {
				adminDSN = dsn
				sweep(dsn)
				return
			}
			errs = append(errs, err)
		}
		findErr = errors.Join(errs...)
	})
	return adminDSN, findErr
}

func probe(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var canCreate bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user").Scan(&canCreate); err != nil {
		return err
	}
	if !canCreate {
		return fmt.Errorf("%s: the user may not create databases", redact(dsn))
	}
	return nil
}

// staleAfter is the age past which a test database nobody is connected to is left
// over from a test process that was killed before its cleanup (a -timeout, a ^C).
const staleAfter = time.Hour

// sweep drops test databases left over by killed test processes, once per process.
// Databases younger than staleAfter, or with a connection, may belong to a test
// running now and are kept.
func sweep(admin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database d
		WHERE datname LIKE 'tillkeep\_test\_%'
		  AND (pg_stat_file('base/' || oid || '/PG_VERSION')).modification < now() - $1::interval
		  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)`, staleAfter.String())
	if err != nil {
		return // not a superuser (pg_stat_file): leave them
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, name := range names {
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize())
	}
}

// redact drops a password from a DSN for messages.
func redact(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// Require skips tb (or, under CI=true, fails it) when no test server answers.
func Require(tb testing.TB) string {
	tb.Helper()
	dsn, err := AdminDSN()
	if err == nil {
		return dsn
	}
	msg := fmt.Sprintf("PostgreSQL is not reachable for tests (%v); start it (pg_isready -h 127.0.0.1) or set %s to a maintenance database DSN", err, EnvDSN)
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg + " — CI must run these tests")
	}
	tb.Skip(msg)
	return ""
}

// NewDatabase creates an empty database for tb, drops it (with any connection left
// open) when tb ends, and returns its DSN.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	admin := Require(tb)
	var raw [6]byte
	if _, err := rand.Read(raw[:]); err != nil {
		tb.Fatal(err)
	}
	name := "tillkeep_test_" + hex.EncodeToString(raw[:])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("connect to the test server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("create test database %s: %v", name, err)
	}
	tb.Cleanup(func() { dropDatabase(tb, admin, name) })
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		tb.Fatal(err)
	}
	return withDatabase(admin, cfg.Database, name)
}

// withDatabase replaces the database of a URL or key=value DSN.
func withDatabase(dsn, from, to string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		head, query, _ := strings.Cut(dsn, "?")
		if i := strings.LastIndex(head, "/"); i > strings.Index(head, "//")+1 {
			head = head[:i]
		}
		out := head + "/" + to
		if query != "" {
			out += "?" + query
		}
		return out
	}
	return dsn + " dbname=" + to
}

func dropDatabase(tb testing.TB, admin, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Errorf("drop test database %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		tb.Errorf("drop test database %s: %v", name, err)
	}
}

// Open opens a store on a fresh database; it is closed, then the database dropped,
// when tb ends.
func Open(tb testing.TB) *pgstore.Store {
	tb.Helper()
	return OpenDSN(tb, NewDatabase(tb))
}

// OpenDSN opens a store on dsn (a second instance on the same database, or a reopen)
// and closes it when tb ends.
func OpenDSN(tb testing.TB, dsn string) *pgstore.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := pgstore.Open(ctx, dsn, pgstore.Options{})
	if err != nil {
		tb.Fatalf("open PostgreSQL store: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}
