package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"
	_ "time/tzdata" // store time zones must resolve on hosts without zone files

	"github.com/spf13/cobra"

	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/installer"
	"github.com/tillkeep/tillkeep/internal/logging"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/boltstore"
	"github.com/tillkeep/tillkeep/platform/pgstore"
)

// exitBadPlatformConfig is the exit status when platform.toml cannot be used, the same
// as `config check` gives for an invalid file.
const exitBadPlatformConfig = 2

// newPlatformCmd is the `platform` group.
func newPlatformCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "platform",
		Short: "Run the central platform",
		Long: `The platform is the central server: offers, coupons, issuance and revocation,
online redemption for tills, the ledger of every redemption, reconciliation of the
journals tills upload after an outage, and the conflict cases ops resolve.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newPlatformServeCmd(), newPlatformMigrateCmd())
	return cmd
}

func newPlatformServeCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run the central platform in the foreground",
		Long: `Run the platform in the foreground: open its storage and serve the ops API, the
till API, /healthz and /metrics on listen until SIGTERM or SIGINT, then stop
gracefully within 5 s and exit 0.

With storage.driver = "bolt" (the default) the data lives in <data_dir>/platform.db,
and only one platform may use a data_dir. With storage.driver = "postgres" any number
of platforms may share the database storage.dsn names; pending schema migrations are
applied on start (see "platform migrate").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, warnings, err := config.LoadPlatformWithWarnings(configPath)
			if err != nil {
				return withExit(exitBadPlatformConfig, err)
			}
			if _, err := logging.New(cfg.Log, io.Discard); err != nil {
				return withExit(exitBadPlatformConfig, fmt.Errorf("set up logging: %w", err))
			}
			// The same command runs interactively and under the service manager;
			// RunDaemon picks the console or the system log and handles Stop.
			return installer.RunDaemon(cmd.Context(), installer.Daemon{
				Role:    installer.RolePlatform,
				Console: cmd.ErrOrStderr(),
				Logger:  func(w io.Writer) (*slog.Logger, error) { return logging.New(cfg.Log, w) },
				Serve: func(ctx context.Context, log *slog.Logger) error {
					for _, w := range warnings {
						log.Warn("config warning", "file", configPath, "warning", w)
					}
					return runPlatform(ctx, cfg, log)
				},
			})
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "path of platform.toml (required)")
	_ = cmd.MarkFlagRequired("config")
	_ = cmd.MarkFlagFilename("config", "toml")
	return cmd
}

// openPlatformStorage opens the storage that storage.driver names.
func openPlatformStorage(ctx context.Context, cfg config.Platform, log *slog.Logger) (platform.Storage, error) {
	switch cfg.Storage.Driver {
	case config.DriverBolt, "":
		return boltstore.OpenDir(cfg.DataDir, boltstore.Options{Logger: log})
	case config.DriverPostgres:
		// Open fails within the connect timeout, naming host, port, database and user
		// (never the password), when the database cannot be reached.
		return pgstore.Open(ctx, cfg.Storage.DSN, pgstore.Options{Logger: log})
	}
	return nil, withExit(exitBadPlatformConfig, fmt.Errorf("storage.driver %q is not known", cfg.Storage.Driver))
}

// runPlatform serves until ctx ends and returns nil after a graceful stop.
func runPlatform(ctx context.Context, cfg config.Platform, log *slog.Logger) (err error) {
	st, err := openPlatformStorage(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	srv, err := platform.NewServer(st, platform.ServerConfig{
		Listen:        cfg.Listen,
		AdminToken:    cfg.AdminToken,
		EnrollToken:   cfg.EnrollToken,
		AutoRevoke:    cfg.Reconcile.AutoRevoke,
		MaxClockSkew:  cfg.Reconcile.MaxClockSkew.Duration,
		FeedRetention: cfg.Feed.Retention.Duration,
		Logger:        log,
	})
	if err != nil {
		return withExit(exitBadPlatformConfig, err)
	}
	log.Info("platform starting", "listen", cfg.Listen, "storage", cfg.Storage.Driver, "data_dir", cfg.DataDir,
		"auto_revoke", cfg.Reconcile.AutoRevoke, "max_clock_skew", cfg.Reconcile.MaxClockSkew.Duration)
	return srv.Serve(ctx)
}

// migrateTimeout bounds `platform migrate`, the wait for another instance's migration
// lock included.
const migrateTimeout = 10 * time.Minute

func newPlatformMigrateCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "migrate --config FILE",
		Short: "Apply the PostgreSQL schema migrations and exit",
		Long: `Apply the pending schema migrations of the PostgreSQL database that storage.dsn
names, then exit. The migrations are embedded in this binary and recorded in the
table schema_migrations; an advisory lock keeps platforms that start at the same time
from racing. "platform serve" does the same on every start, so running this first is
optional: it lets a deployment migrate once, with its own credentials and timing,
before rolling out the new version. A database with a newer schema than this binary
knows is refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := config.LoadPlatformWithWarnings(configPath)
			if err != nil {
				return withExit(exitBadPlatformConfig, err)
			}
			if cfg.Storage.Driver != config.DriverPostgres {
				return withExit(exitBadPlatformConfig, fmt.Errorf(`platform migrate applies PostgreSQL migrations, but storage.driver is %q; a bolt file is upgraded when the platform opens it`, cfg.Storage.Driver))
			}
			log, err := logging.New(cfg.Log, cmd.ErrOrStderr())
			if err != nil {
				return withExit(exitBadPlatformConfig, fmt.Errorf("set up logging: %w", err))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), migrateTimeout)
			defer cancel()
			done, err := pgstore.Migrate(ctx, cfg.Storage.DSN, pgstore.Options{Logger: log})
			out := cmd.OutOrStdout()
			for _, m := range done {
				fmt.Fprintf(out, "applied %s\n", m.Name)
			}
			if err != nil {
				return err
			}
			if len(done) == 0 {
				fmt.Fprintf(out, "schema is up to date (version %d)\n", pgstore.SchemaVersion())
			} else {
				fmt.Fprintf(out, "schema is at version %d\n", pgstore.SchemaVersion())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "path of platform.toml (required)")
	_ = cmd.MarkFlagRequired("config")
	_ = cmd.MarkFlagFilename("config", "toml")
	return cmd
}
