// Package agent is the till agent: the redemption engine (Redeemer) that decides, for
// one till, whether a coupon may be redeemed — through the platform when an online path
// is attached, otherwise or as a fallback from the till's own cache under the offline
// limits — and the POS API (Server) that exposes it on the till's loopback interface.
//
// It owns the order of a redemption attempt: request validation, per-transaction
// serialisation and idempotency, making the redemption id once, the online attempt and
// its fallback, the pure offline decision, and mapping failures to stable codes. Every
// answer it acknowledges has been recorded durably by the ledger first.
//
// It must not touch storage directly (the ledger in package store owns bbolt), talk to
// the platform itself (package sync provides the Online implementation), encode rules
// (the root package's Evaluate judges coupons), or keep globals: a Server owns its
// metrics registry and gets its logger and clock passed in.
package agent
