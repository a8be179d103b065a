// Package storagetest is the conformance suite of platform.Storage. Every backend runs
// it (boltstore in its tests, PostgreSQL in its own), so that the service can rely on
// the same behaviour from each: not-found and already-exists errors, indexes kept in
// step with their records, paging, the change log's order, atomic transactions, and
// counters that lose nothing under concurrent updates.
//
// It only calls the Storage interface; it must not know any backend.
package storagetest
