// Package platform is the central tillkeep platform: offers, coupons, issuance and
// revocation, online redemption for tills, the ledger of every redemption, ingest and
// reconciliation of offline journal uploads, conflict cases, and the ops and till HTTP
// APIs over them.
//
// It owns the business logic (Service) and the HTTP layer (Server). It does not own
// storage engines: it defines the Storage interface it needs (storage.go) and is handed
// an implementation (platform/boltstore today, PostgreSQL later). It judges coupons only
// through the root package's rule engine, never with rules of its own, so that a till
// and the platform cannot disagree about what a rule says. Code generation and the pure
// issuance checks live in platform/codegen and platform/issuance.
package platform
