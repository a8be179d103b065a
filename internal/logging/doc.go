// Package logging builds the one *slog.Logger a daemon passes down to all its parts,
// from the [log] table of its config: level, text or JSON, times in UTC, and a last
// line of defence that keeps tokens and passwords out of log lines.
//
// It must not keep a package-level logger or touch slog's default: a daemon that wants
// a logger is handed one.
package logging
