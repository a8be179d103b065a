// Package boltstore is the embedded storage of the platform: one bbolt file,
// <data_dir>/platform.db, implementing platform.Storage.
//
// It owns the file layout (one bucket per record kind, secondary indexes as buckets
// kept in the same transaction as their records), the schema version and its upgrade
// path, the database epoch, and group commit: concurrent Updates share one bbolt
// transaction and its two fsyncs, which is how many tills redeeming at once go beyond
// one-commit-at-a-time speed. It holds no business rules: what is written and why is
// decided by package platform.
package boltstore
