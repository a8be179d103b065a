package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// The upgrade machinery, exercised with a synthetic version 2 whose migration adds a
// bucket and rewrites a meta key.
func synthetic(fail bool) schemaPlan {
	return schemaPlan{current: 2, migrations: map[uint64]migration{
		1: func(tx *bolt.Tx) error {
			if _, err := tx.CreateBucket([]byte("v2_things")); err != nil {
				return err
			}
			if fail {
				return errors.New("synthetic failure")
			}
			return tx.Bucket(bucketMeta).Put([]byte("v2_marker"), []byte("yes"))
		},
	}}
}

func makeV1(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{StoreID: "S001", TillID: "T01"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.ReplaceCatalog(context.Background(), testSnapshot()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Record(context.Background(), recordReq("tx-1")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func backups(t *testing.T, path string) []string {
	t.Helper()
	matches, err := filepath.Glob(path + ".bak-v*")
	if err != nil {
		t.Fatal(err)
	}
	return matches
}

func schemaOf(t *testing.T, path string) uint64 {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	var v uint64
	_ = bdb.View(func(tx *bolt.Tx) error { v = getU64(tx.Bucket(bucketMeta), metaSchema); return nil })
	return v
}

func TestUpgradeBacksUpFirst(t *testing.T) {
	path := makeV1(t)
	db, err := open(path, Options{StoreID: "S001", TillID: "T01"}, synthetic(false))
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	st, err := db.Status(context.Background())
	if err != nil || st.LastSeq != 1 || st.Coupons != 1 {
		t.Fatalf("status after upgrade: %+v %v", st, err)
	}
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("v2_things")) == nil || string(tx.Bucket(bucketMeta).Get([]byte("v2_marker"))) != "yes" {
			t.Error("the migration did not run")
		}
		return nil
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if v := schemaOf(t, path); v != 2 {
		t.Fatalf("schema after upgrade %d, want 2", v)
	}
	bs := backups(t, path)
	if len(bs) != 1 {
		t.Fatalf("backups %v, want one", bs)
	}
	if !regexp.MustCompile(`\.bak-v1-\d{8}T\d{6}\.\d{3}Z$`).MatchString(bs[0]) {
		t.Fatalf("backup name %s", bs[0])
	}
	if fi, _ := os.Stat(bs[0]); fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("backup mode %v", fi.Mode().Perm())
	}
	// The backup is the old file, usable by the old binary.
	if v := schemaOf(t, bs[0]); v != 1 {
		t.Fatalf("backup schema %d, want 1", v)
	}
	old, err := Open(bs[0], Options{})
	if err != nil {
		t.Fatalf("open backup with the v1 plan: %v", err)
	}
	defer old.Close()
	if err := old.Check(); err != nil {
		t.Fatal(err)
	}
	if st, _ := old.Status(context.Background()); st.LastSeq != 1 {
		t.Fatalf("backup status %+v", st)
	}
	// An upgraded file is refused by the v1 binary.
	if _, err := Open(path, Options{}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("v1 opening a v2 file: %v", err)
	}
	// Opening again with v2 needs no upgrade and makes no backup.
	db, err = open(path, Options{}, synthetic(false))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if bs := backups(t, path); len(bs) != 1 {
		t.Fatalf("a second open made another backup: %v", bs)
	}
}

func TestFailedUpgradeLeavesFileUnchanged(t *testing.T) {
	path := makeV1(t)
	if _, err := open(path, Options{}, synthetic(true)); err == nil {
		t.Fatal("a failing migration succeeded")
	}
	if v := schemaOf(t, path); v != 1 {
		t.Fatalf("schema after a failed upgrade %d, want 1", v)
	}
	if len(backups(t, path)) != 1 {
		t.Fatal("no backup before the failed upgrade")
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("v2_things")) != nil {
			t.Error("a failed migration left a change behind")
		}
		return nil
	})
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestMissingMigrationRefused(t *testing.T) {
	path := makeV1(t)
	plan := schemaPlan{current: 3, migrations: synthetic(false).migrations}
	if _, err := open(path, Options{}, plan); err == nil {
		t.Fatal("an upgrade without a path from 2 to 3 succeeded")
	}
	if v := schemaOf(t, path); v != 1 {
		t.Fatalf("schema %d, want 1", v)
	}
	if len(backups(t, path)) != 0 {
		t.Fatal("a refused upgrade made a backup")
	}
}

// testdata/ledger-v1.db is a committed file written by schema version 1 (see
// TestWriteFixture). Every later binary must open it, upgrading as needed, and find
// the same ledger.
func TestOpensV1Fixture(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "ledger-v1.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{StoreID: "S001", TillID: "T01"})
	if err != nil {
		t.Fatalf("open the v1 fixture: %v", err)
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
	checkFixtureContents(t, db)
}
