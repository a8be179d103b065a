package config

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written as a Go duration string ("800ms", "72h").
type Duration struct{ time.Duration }

// UnmarshalText reads a Go duration string. A number without a unit is refused: "72"
// could mean hours or seconds, and guessing wrong would change a risk limit silently.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid duration %q: write a Go duration such as \"800ms\", \"15s\" or \"72h\"", text)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a Go duration string, so that a config written
// back out (config show) reads in again unchanged.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

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
	Feed        PlatformFeed      `toml:"feed"`
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

// PlatformFeed is the [feed] table of platform.toml: the catalog feed tills pull.
type PlatformFeed struct {
	// Retention is how long catalog change-log entries are kept. A till whose cursor is
	// older (it did not sync for that long) uploads its journal and fetches a snapshot.
	Retention Duration `toml:"retention"`
}

// Log is the [log] table of both files (an extension of the contract).
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}
