package boltstore_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/boltstore"
	"github.com/tillkeep/tillkeep/platform/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) platform.Storage { return boltstore.MustOpen(t) })
}

func TestFileModeAndEpochSurviveReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := boltstore.OpenDir(dir, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	epoch := s.Epoch()
	if err := s.Update(t.Context(), func(tx platform.Tx) error {
		return tx.PutStore(tillkeep.Store{ID: "S001"})
	}); err != nil {
		t.Fatal(err)
	}
	boltstore.MustClose(t, s)

	fi, err := os.Stat(filepath.Join(dir, boltstore.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(dir)
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %v, want 0700", di.Mode().Perm())
	}

	s2 := boltstore.MustOpenPath(t, filepath.Join(dir, boltstore.FileName))
	if s2.Epoch() != epoch {
		t.Fatalf("epoch changed on reopen: %s then %s", epoch, s2.Epoch())
	}
	if err := s2.View(t.Context(), func(tx platform.ReadTx) error {
		_, err := tx.Store("S001")
		return err
	}); err != nil {
		t.Fatalf("store lost across reopen: %v", err)
	}
}

func TestSecondOpenFailsClearly(t *testing.T) {
	s := boltstore.MustOpen(t)
	_, err := boltstore.Open(s.Path(), boltstore.Options{})
	if err == nil {
		t.Fatal("a second open of a locked file succeeded")
	}
	if !strings.Contains(err.Error(), "another tillkeep platform using DATA_DIR") {
		t.Fatalf("unclear lock error: %v", err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	// A file written by a newer tillkeep must not be touched.
	path := filepath.Join(t.TempDir(), boltstore.FileName)
	s := boltstore.MustOpenPath(t, path)
	if err := boltstore.SetSchemaVersionForTest(s, boltstore.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	boltstore.MustClose(t, s)
	_, err := boltstore.Open(path, boltstore.Options{})
	if err == nil || !strings.Contains(err.Error(), "newer than this tillkeep") {
		t.Fatalf("open of a newer schema: %v", err)
	}
}
