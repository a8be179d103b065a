package boltstore

import (
	"path/filepath"
	"testing"
)

// MustOpen opens a fresh store in a temporary directory for a test and, on cleanup,
// closes it and checks the file's structure, so that every test doubles as a check
// that the layout stays consistent.
func MustOpen(tb testing.TB) *Store {
	tb.Helper()
	return MustOpenPath(tb, filepath.Join(tb.TempDir(), FileName))
}

// MustOpenPath opens the store at path (for restart tests) with the same cleanup.
func MustOpenPath(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		tb.Fatalf("open bolt store: %v", err)
	}
	tb.Cleanup(func() { MustClose(tb, s) })
	return s
}

// MustClose checks and closes s; closing twice is harmless, so tests that close a
// store to reopen it may call it themselves.
func MustClose(tb testing.TB, s *Store) {
	tb.Helper()
	if s.db.Path() == "" {
		return // already closed
	}
	if err := s.Check(); err != nil {
		tb.Errorf("bolt file %s failed its consistency check: %v", s.path, err)
	}
	if err := s.Close(); err != nil {
		tb.Errorf("close bolt store: %v", err)
	}
}
