package storetest

import (
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/tillkeep/tillkeep/store"
)

// MustOpenBolt opens a new bbolt ledger of StoreID/TillID in a temporary directory.
// When the test ends it closes the ledger, reopens the file and runs Check on it, so
// every test also proves that it left a sound file behind.
func MustOpenBolt(tb testing.TB) *store.DB {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), store.FileName)
	db, err := store.Open(path, store.Options{StoreID: StoreID, TillID: TillID, Logger: testLogger(tb)})
	if err != nil {
		tb.Fatalf("open ledger: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close ledger: %v", err)
		}
		CheckFile(tb, path)
	})
	return db
}

// CheckFile opens the ledger at path and runs Check on it.
func CheckFile(tb testing.TB, path string) {
	tb.Helper()
	db, err := store.Open(path, store.Options{Logger: testLogger(tb)})
	if err != nil {
		tb.Errorf("reopen ledger for check: %v", err)
		return
	}
	defer db.Close()
	if err := db.Check(); err != nil && !errors.Is(err, store.ErrClosed) {
		tb.Errorf("ledger check: %v", err)
	}
}

// testLogger writes the ledger's log lines into the test's output.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}
