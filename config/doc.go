// Package config reads and validates the TOML configuration files of the two daemons,
// agent.toml and platform.toml, exactly as ../shared/CONTRACT.md names their keys.
//
// It is strict: an unknown key, a value of the wrong type, a malformed duration or cron
// spec, or a missing required token or id is an *Error naming the key and its line.
// Every other key has a default. Environment variables (TILLKEEP_<KEY>, the dotted key
// upper-cased with dots turned into underscores) override the file, so that secrets can
// stay out of it.
//
// It must not do any I/O beyond reading the one file it is given and stat-ing it for the
// permission warning, must not read the environment except through the lookup function
// it is handed, and must never put a secret into an error message.
package config
