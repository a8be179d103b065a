// Package e2e runs tillkeep as its users run it, for the end-to-end tests and the demo:
// the real binary, `tillkeep platform serve` and `tillkeep agent run` as separate
// processes on free loopback ports with their own data directories, a fault-injecting
// proxy (internal/faultproxy) between each till and the platform, and clients that speak
// the external contract's JSON to the ops API and the POS API.
//
// It owns the processes it starts: every Process is stopped by Close, each logs to a
// file of its own, and children are told to die with the process that started them
// (Linux), so a failing test or an interrupted demo leaves nothing running. It decodes
// answers into its own structs rather than the platform's or the agent's types, so that
// a change of the wire format is caught here as the outside world would see it.
//
// It must not be imported by the product: it is test and demo tooling, it kills
// processes, and it opens links only on 127.0.0.1.
package e2e
