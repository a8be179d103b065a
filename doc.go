// Package tillkeep holds the domain of tillkeep: money, stores, customers, offers,
// coupons, redemptions and journal entries, and the rule engine that decides whether a
// coupon may be redeemed and what discount it grants.
//
// The package is pure: it performs no I/O, reads no clock and keeps no globals. The till
// agent and the central platform judge coupons with exactly this code, so that a till
// deciding offline and the platform reconciling afterwards can never disagree about what
// the rules say. Storage, HTTP and sync live in subpackages that import this one, never
// the other way round.
package tillkeep
