package store

import (
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the ledger layout this tillkeep writes. Raise it with every change to
// the layout, and register a migration from the previous version in currentSchema.
const SchemaVersion = 1

// migration upgrades a file from one version to the next, inside the transaction that
// also records the new version, so an upgrade is all or nothing.
type migration func(tx *bolt.Tx) error

// schemaPlan is the version a binary writes and how to reach it from older files.
type schemaPlan struct {
	current uint64
	// migrations[v] upgrades version v to v+1.
	migrations map[uint64]migration
}

// currentSchema is this binary's plan. Version 1 is the first layout: nothing to
// migrate from yet. The tests exercise the machinery with a synthetic version 2.
var currentSchema = schemaPlan{current: SchemaVersion, migrations: map[uint64]migration{}}

// upgrade copies the file aside and then migrates it in one transaction.
func (db *DB) upgrade(plan schemaPlan, from uint64) error {
	for v := from; v < plan.current; v++ {
		if plan.migrations[v] == nil {
			return fmt.Errorf("no upgrade from schema version %d to %d", v, v+1)
		}
	}
	backup, err := db.backupBeforeUpgrade(from)
	if err != nil {
		return err
	}
	db.log.Info("upgrading ledger schema", "from", from, "to", plan.current, "backup", backup)
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		for v := from; v < plan.current; v++ {
			if err := plan.migrations[v](tx); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
			}
		}
		return putU64(tx.Bucket(bucketMeta), metaSchema, plan.current)
	})
	if err != nil {
		return fmt.Errorf("upgrade ledger (the file is unchanged; a copy is at %s): %w", backup, err)
	}
	return nil
}

// backupBeforeUpgrade writes a consistent copy next to the ledger and fsyncs it.
func (db *DB) backupBeforeUpgrade(from uint64) (string, error) {
	name := fmt.Sprintf("%s.bak-v%d-%s", db.path, from, time.Now().UTC().Format("20060102T150405.000Z"))
	if _, err := writeCopy(db.bolt, name); err != nil {
		return "", fmt.Errorf("back up ledger before upgrade: %w", err)
	}
	return name, nil
}

// writeCopy writes a consistent copy of the database to a new file at path (mode
// 0600), fsyncs it, and returns its size. An existing file is never overwritten.
func writeCopy(bdb *bolt.DB, path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", path, err)
	}
	var n int64
	err = bdb.View(func(tx *bolt.Tx) error {
		var werr error
		n, werr = tx.WriteTo(f)
		return werr
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return 0, fmt.Errorf("write copy to %s: %w", path, err)
	}
	return n, syncDir(path)
}
