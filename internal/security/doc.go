// Package security holds cross-cutting authorization and hostile-input tests that run
// against the REAL agent and platform servers, each on its own loopback listener with
// the production timeouts of httpapi.NewServer: every route refuses a missing or wrong
// token, every principal is confined to its own API (POS, ops, till), a till acts only
// as itself and sees only its store, bodies and headers are bounded, slow clients are
// cut, panics never escape, and no secret reaches a log line or an error body.
//
// It is a test-only package: this file is its only non-test source and it exports
// nothing. It must not grow product code, helpers for other packages, or copies of the
// packages it tests; a bug it finds is fixed where it lives.
package security
