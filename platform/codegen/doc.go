// Package codegen makes coupon codes: unique codes of a series, randomized common codes,
// and the checks that keep them hard to guess.
//
// A unique series is a counter pushed through a keyed pseudo-random permutation of the
// series' code space (a ten-round Feistel network over AES-256, with cycle-walking to stay
// inside a space that is not a power of two), then written in the series' alphabet behind
// its prefix. Because a permutation never maps two counters to the same value, codes
// never repeat within a series, and the generator holds nothing but a key and a counter:
// 30 million codes take the same memory as ten. Without the key the codes are
// unpredictable; with it they can be regenerated, so the key is a secret.
//
// Alphabets: "numeric" is 0-9; "alphanumeric" (the default) is the 31 upper-case
// characters 23456789ABCDEFGHJKMNPQRSTUVWXYZ, leaving out 0 O 1 I L, which people
// misread on receipts and screens.
//
// Code-space rule: a request is refused when, after it, more than one code in a million
// of the possible random parts would be valid (MaxGuessRate), so that a guessed code is
// almost surely worthless.
//
// The package is pure: no storage, no network, no logging. It does not know which codes
// other series hold: a collision with another series is refused by the storage's
// uniqueness, and the caller skips that code and asks for the next one.
package codegen
