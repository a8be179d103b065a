// Package config reads and validates the TOML configuration files of the two daemons,
// agent.toml and platform.toml, exactly as ../shared/CONTRACT.md names their keys. It is
// strict: an unknown key, a malformed duration or cron spec, or a missing required id is
// an error naming the key and its line. Environment variables (TILLKEEP_…) override keys
// so that secrets can stay out of files. It does no other I/O than reading the file.
package config

import "time"

// Duration is a time.Duration written as a Go duration string ("800ms", "72h").
type Duration struct{ time.Duration }

// Agent is agent.toml.
type Agent struct {
	Listen   string        `toml:"listen"`
	DataDir  string        `toml:"data_dir"`
	PosToken string        `toml:"pos_token"`
	StoreID  string        `toml:"store_id"`
	TillID   string        `toml:"till_id"`
	Platform AgentPlatform `toml:"platform"`
	Sync     AgentSync     `toml:"sync"`
	Offline  AgentOffline  `toml:"offline"`
	Log      Log           `toml:"log"`
}

// AgentPlatform is the [platform] table of agent.toml.
type AgentPlatform struct {
	URL         string   `toml:"url"`
	EnrollToken string   `toml:"enroll_token"`
	Timeout     Duration `toml:"timeout"`
}

// AgentSync is the [sync] table of agent.toml.
type AgentSync struct {
	Schedule string `toml:"schedule"`
}

// AgentOffline is the [offline] table of agent.toml.
type AgentOffline struct {
	Enabled        bool     `toml:"enabled"`
	MaxDiscount    int64    `toml:"max_discount"`
	MaxRedemptions int      `toml:"max_redemptions"`
	MaxCatalogAge  Duration `toml:"max_catalog_age"`
}

// Platform is platform.toml.
type Platform struct {
	Listen      string            `toml:"listen"`
	DataDir     string            `toml:"data_dir"`
	AdminToken  string            `toml:"admin_token"`
	EnrollToken string            `toml:"enroll_token"`
	Storage     PlatformStorage   `toml:"storage"`
	Reconcile   PlatformReconcile `toml:"reconcile"`
	Log         Log               `toml:"log"`
}

// PlatformStorage is the [storage] table of platform.toml.
type PlatformStorage struct {
	Driver string `toml:"driver"` // "bolt" or "postgres"
	DSN    string `toml:"dsn"`
}

// PlatformReconcile is the [reconcile] table of platform.toml.
type PlatformReconcile struct {
	AutoRevoke bool `toml:"auto_revoke"`
	// MaxClockSkew is how far a till's clock may be off the platform's before an upload
	// is flagged.
	MaxClockSkew Duration `toml:"max_clock_skew"`
}

// Log is the [log] table of both files (an extension of the contract).
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}
