package boltstore

import (
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// SetSchemaVersionForTest overwrites the stored schema version.
func SetSchemaVersionForTest(s *Store, v int) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(metaSchemaVersion), []byte(strconv.Itoa(v)))
	})
}
