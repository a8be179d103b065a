// Package storetest is the conformance suite of store.Ledger: Run checks that an
// implementation records, replays, refuses, reverses, counts local use, replaces and
// patches its catalog, acknowledges and prunes exactly as the contract of the ledger
// says, including under concurrent lanes. Every implementation (bbolt, memory) runs it.
// It also offers fixtures (Snapshot, Redeem) and MustOpenBolt for other packages'
// tests. It is test support only: no daemon may import it.
package storetest
