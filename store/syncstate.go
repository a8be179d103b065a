package store

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/tillkeep/tillkeep"
)

// Cursor returns the named sync cursor, "" when it was never set.
func (db *DB) Cursor(ctx context.Context, name string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var value string
	err := db.view("read sync cursor", func(tx *bolt.Tx) error {
		value = string(tx.Bucket(bucketMeta).Bucket(bucketCursor).Get([]byte(name)))
		return nil
	})
	return value, err
}

// SetCursor stores the named sync cursor durably. An empty value deletes it.
func (db *DB) SetCursor(ctx context.Context, name, value string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if name == "" {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "A sync cursor needs a name.")
	}
	return db.update("store sync cursor", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta).Bucket(bucketCursor)
		if value == "" {
			return b.Delete([]byte(name))
		}
		return b.Put([]byte(name), []byte(value))
	})
}

// MergeHLC merges a platform stamp into the till's clock, durably, and returns the new
// stamp: later local events order after everything the platform had seen.
func (db *DB) MergeHLC(ctx context.Context, remote tillkeep.HLC, nowMS int64) (tillkeep.HLC, error) {
	if err := ctx.Err(); err != nil {
		return tillkeep.HLC{}, err
	}
	var merged tillkeep.HLC
	err := db.update("merge clock", func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		merged = tillkeep.MergeHLC(getHLC(meta), remote, nowMS)
		return putHLC(meta, merged)
	})
	return merged, err
}
