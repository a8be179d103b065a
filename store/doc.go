// Package store is the till's durable state: one bbolt file in the agent's data
// directory holding the coupon cache (store record, offers, coupons), the journal of
// this till's redemptions and reversals (the outbox sync uploads), the POS idempotency
// index (transaction_id → outcome), the counters of local use not yet reflected in the
// cache, the offline counter, the hybrid logical clock, sync cursors and a schema
// version.
//
// It owns durability and atomicity, and nothing else: it decides nothing about coupons.
// A redemption or reversal is judged by the Decide callback the agent passes in, which
// store calls inside its write transaction with the state of that moment; store only
// appends what the callback returns, indexes it and commits. A caller hears back only
// after the commit is fsynced. Concurrent callers share commits through a committer
// goroutine (group commit) that adds no delay to a lone caller. NoSync is never set.
// The committer keeps the offers of the active catalog generation decoded in memory
// (offercache.go), emptied by every other write transaction, so that a redemption
// does not decode its offer's JSON inside the shared transaction.
//
// Ledger is the interface the agent and sync use; *DB implements it on bbolt and
// store/memstore implements it in memory. store/storetest holds the conformance suite
// both pass.
//
// On disk (schema version 1): coupons are stored in a compact binary form (see
// couponcodec.go) because a store may cache a million of them; everything else is JSON.
// A catalog snapshot is staged in a new generation bucket over several short
// transactions and switched to in one, so that the till keeps redeeming while a large
// snapshot loads and a crash midway leaves the old catalog in place. BeginCatalog
// exposes that load chunk by chunk, so that sync can stage a snapshot as it streams in
// and memory holds one chunk, never the whole catalog.
//
// store must not talk to the network, read configuration files or log secrets.
package store
