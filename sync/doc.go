// Package sync connects a till to the platform: enrollment, online-first redemption with
// a circuit breaker, the catalog pull (snapshot, then deltas) and the journal push. It
// owns the till's credentials file, the retry and backoff policy towards the platform,
// and the schedule. It never decides a redemption itself: the agent's engine does, and
// the platform is the authority when reachable.
//
// The package name shadows the standard library's sync inside importers; they import it
// as tksync.
package sync
