package config

import "time"

// The defaults of ../shared/CONTRACT.md. Tokens and ids have none: a till that guessed
// its store or its POS token would be worse than one that refuses to start.
const (
	DefaultAgentListen           = "127.0.0.1:7070"
	DefaultAgentDataDir          = "/var/lib/tillkeep/agent"
	DefaultPlatformTimeout       = 800 * time.Millisecond
	DefaultSyncSchedule          = "@every 15s"
	DefaultMaxDiscount           = 5000
	DefaultMaxRedemptions        = 500
	DefaultMaxCatalogAge         = 72 * time.Hour
	DefaultPlatformListen        = "127.0.0.1:8080"
	DefaultPlatformDataDir       = "/var/lib/tillkeep/platform"
	DefaultStorageDriver         = DriverBolt
	DefaultMaxClockSkew          = 5 * time.Minute
	DefaultFeedRetention         = 30 * 24 * time.Hour
	DefaultLogLevel              = "info"
	DefaultLogFormat             = "text"
	DriverBolt                   = "bolt"
	DriverPostgres               = "postgres"
	minTokenLength               = 16
	maxIDLength                  = 64
	maxConfigFileBytes     int64 = 1 << 20
)

// DefaultAgent is agent.toml with every default applied and no tokens or ids. Files are
// decoded on top of it, so a key the file leaves out keeps its default, and a key the
// file sets (even to false or 0) wins.
func DefaultAgent() Agent {
	return Agent{
		Listen:  DefaultAgentListen,
		DataDir: DefaultAgentDataDir,
		Platform: AgentPlatform{
			Timeout: Duration{DefaultPlatformTimeout},
		},
		Sync: AgentSync{Schedule: DefaultSyncSchedule},
		Offline: AgentOffline{
			Enabled:        true,
			MaxDiscount:    DefaultMaxDiscount,
			MaxRedemptions: DefaultMaxRedemptions,
			MaxCatalogAge:  Duration{DefaultMaxCatalogAge},
		},
		Log: defaultLog(),
	}
}

// DefaultPlatform is platform.toml with every default applied and no tokens.
func DefaultPlatform() Platform {
	return Platform{
		Listen:  DefaultPlatformListen,
		DataDir: DefaultPlatformDataDir,
		Storage: PlatformStorage{Driver: DefaultStorageDriver},
		Reconcile: PlatformReconcile{
			AutoRevoke:   true,
			MaxClockSkew: Duration{DefaultMaxClockSkew},
		},
		Feed: PlatformFeed{Retention: Duration{DefaultFeedRetention}},
		Log:  defaultLog(),
	}
}

func defaultLog() Log { return Log{Level: DefaultLogLevel, Format: DefaultLogFormat} }
