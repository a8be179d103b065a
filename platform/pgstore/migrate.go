package pgstore

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the key of the session-level advisory lock held while migrations
// run, so that instances starting together apply each migration once, one after the
// other ("tillkeep" in ASCII).
const migrationLock int64 = 0x74696c6c6b656570

// Migration is one versioned schema change, embedded in the binary.
type Migration struct {
	Version  int
	Name     string // file name, e.g. 0001_init.sql
	SQL      string
	Checksum string // hex SHA-256 of SQL
}

// Migrations returns the embedded migrations in version order. Versions start at 1
// and have no holes; a broken set is a build mistake, hence the panic.
func Migrations() []Migration {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		panic(fmt.Sprintf("pgstore: embedded migrations: %v", err))
	}
	return ms
}

func loadMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: the name must start with a positive version number and an underscore", base)
		}
		raw, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(raw)
		out = append(out, Migration{Version: v, Name: base, SQL: string(raw), Checksum: hex.EncodeToString(sum[:])})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d (versions start at 1 without holes)", m.Name, i+1)
		}
	}
	return out, nil
}

// SchemaVersion is the schema this code reads and writes: the last embedded migration.
func SchemaVersion() int { return len(Migrations()) }

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	checksum   text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// migrate brings the database's schema to SchemaVersion on conn, under the advisory
// lock. It returns the migrations it applied (none when the schema was current). A
// database with a newer schema, or whose applied migrations differ from the embedded
// ones, is refused without a change.
func migrate(ctx context.Context, conn *pgx.Conn, log *slog.Logger) ([]Migration, error) {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return nil, fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		// A session lock outlives a failed statement; release it on a fresh context so
		// that a cancelled start does not leave other instances waiting for it. If the
		// connection is gone, so is the lock.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrationLock)
	}()

	if _, err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	applied := map[int]Migration{}
	rows, err := conn.Query(ctx, "SELECT version, name, checksum FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	for rows.Next() {
		var m Migration
		if err := rows.Scan(&m.Version, &m.Name, &m.Checksum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[m.Version] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}

	known := Migrations()
	for v, m := range applied {
		if v > len(known) {
			return nil, fmt.Errorf("the database has schema version %d (%s), newer than this tillkeep understands (%d): upgrade tillkeep", v, m.Name, len(known))
		}
		if k := known[v-1]; k.Checksum != m.Checksum {
			return nil, fmt.Errorf("migration %d was applied as %s with checksum %.12s…, but this tillkeep embeds %s with checksum %.12s…: an applied migration must never change", v, m.Name, m.Checksum, k.Name, k.Checksum)
		}
	}

	var done []Migration
	for _, m := range known {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		start := time.Now()
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", m.Version, m.Name, m.Checksum)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
		log.Info("applied database migration", "migration", m.Name, "took", time.Since(start).Round(time.Millisecond))
		done = append(done, m)
	}
	return done, nil
}
