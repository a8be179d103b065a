// Package pgstore is the PostgreSQL storage of the platform: platform.Storage on one
// database shared by any number of platform instances behind a load balancer.
//
// It owns the schema (versioned SQL migrations embedded in the binary, applied on
// Open under an advisory lock and recorded in schema_migrations), the connection pool
// and its limits, the transaction discipline that keeps the platform's guarantees
// across instances — row locks taken by every read inside Update, bounded and
// jittered re-runs after serialization failures, deadlocks and concurrent inserts,
// constraints that enforce deduplication and the acknowledged sequence, and a change
// log numbered under a lock so that readers never see a gap — and the database epoch.
//
// It holds no business rules: what is written and why is decided by package platform,
// and it must behave exactly as platform/boltstore does (platform/storagetest checks
// both). It must not log secrets: the DSN's password never appears in a message.
package pgstore
