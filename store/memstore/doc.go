// Package memstore is an in-memory implementation of store.Ledger: the same semantics
// as the bbolt ledger (idempotency, sequence, local use, catalog replacement and
// deltas, acknowledgement and pruning), checked by the same conformance suite, without
// a file. It exists so that the agent's and sync's unit tests run fast; it is real
// code, not a mock, but it keeps nothing across a restart, so no daemon may use it to
// acknowledge a redemption.
//
// One mutex guards everything, and Decide callbacks run under it, as they run inside
// the bbolt ledger's write transaction.
package memstore
