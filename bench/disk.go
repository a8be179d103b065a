package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite"
)

// measureRawAppends appends small records to a file, fdatasync'ing each one: the
// ceiling of one-at-a-time durable writes on this disk, and the reference the till's
// journal is held against.
func measureRawAppends(ctx context.Context, e *env) ([]Row, error) {
	path := filepath.Join(e.dir, "raw-appends.log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	defer f.Close()
	rec := make([]byte, 256)
	for i := range rec {
		rec[i] = byte('a' + i%26)
	}
	d := 3 * time.Second
	if e.quick {
		d = time.Second
	}
	n := 0
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil {
		if _, err := f.Write(rec); err != nil {
			return nil, err
		}
		if err := fdatasync(f); err != nil {
			return nil, err
		}
		n++
	}
	rate := float64(n) / time.Since(start).Seconds()
	return []Row{{Group: "disk", Name: "raw fdatasync'd appends", Value: rate, Unit: "appends/s",
		Note: "256-byte records, one fdatasync each"}}, nil
}

// measureSQLite inserts single rows into SQLite in WAL mode with synchronous=FULL, one
// transaction each: what a POS application would otherwise use as its embedded store.
func measureSQLite(ctx context.Context, e *env) ([]Row, error) {
	path := filepath.Join(e.dir, "reference.sqlite")
	defer os.Remove(path)
	defer os.Remove(path + "-wal")
	defer os.Remove(path + "-shm")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE redemptions (id TEXT PRIMARY KEY, code TEXT, amount INTEGER, at TEXT)`); err != nil {
		return nil, fmt.Errorf("create table: %w", err)
	}
	d := 3 * time.Second
	if e.quick {
		d = time.Second
	}
	n := 0
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil {
		if _, err := db.ExecContext(ctx, `INSERT INTO redemptions VALUES (?, ?, ?, ?)`,
			fmt.Sprintf("r-%09d", n), "CODE", 4000, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			return nil, fmt.Errorf("insert: %w", err)
		}
		n++
	}
	rate := float64(n) / time.Since(start).Seconds()
	row := Row{Group: "disk", Name: "SQLite WAL synchronous=FULL single-row inserts", Value: rate, Unit: "inserts/s",
		Note: "reference embedded store (modernc.org/sqlite)"}
	if raw := e.results["disk/raw fdatasync'd appends"]; raw > 0 {
		row.Reference, row.Ratio = "raw appends", rate/raw
	}
	return []Row{row}, nil
}
