// Package httpapi holds the HTTP plumbing shared by the agent's POS API and the
// platform's APIs: the JSON error envelope and the one mapping from domain error codes
// to HTTP statuses, strict JSON decoding with a size limit, constant-time bearer-token
// checks, panic recovery and server timeouts. It knows nothing of coupons.
package httpapi
