package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	_ "time/tzdata" // store time zones must resolve on hosts without zone files

	"github.com/spf13/cobra"

	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/installer"
	"github.com/tillkeep/tillkeep/internal/logging"
	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/boltstore"
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
	cmd.AddCommand(newPlatformServeCmd())
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
and only one platform may use a data_dir.`,
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
func openPlatformStorage(cfg config.Platform, log *slog.Logger) (platform.Storage, error) {
	switch cfg.Storage.Driver {
	case config.DriverBolt, "":
		return boltstore.OpenDir(cfg.DataDir, boltstore.Options{Logger: log})
	case config.DriverPostgres:
		return nil, withExit(exitBadPlatformConfig, fmt.Errorf(`storage.driver = "postgres" is not built into this tillkeep yet; use "bolt"`))
	}
	return nil, withExit(exitBadPlatformConfig, fmt.Errorf("storage.driver %q is not known", cfg.Storage.Driver))
}

// runPlatform serves until ctx ends and returns nil after a graceful stop.
func runPlatform(ctx context.Context, cfg config.Platform, log *slog.Logger) (err error) {
	st, err := openPlatformStorage(cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	srv, err := platform.NewServer(st, platform.ServerConfig{
		Listen:       cfg.Listen,
		AdminToken:   cfg.AdminToken,
		EnrollToken:  cfg.EnrollToken,
		AutoRevoke:   cfg.Reconcile.AutoRevoke,
		MaxClockSkew: cfg.Reconcile.MaxClockSkew.Duration,
		Logger:       log,
	})
	if err != nil {
		return withExit(exitBadPlatformConfig, err)
	}
	log.Info("platform starting", "listen", cfg.Listen, "storage", cfg.Storage.Driver, "data_dir", cfg.DataDir,
		"auto_revoke", cfg.Reconcile.AutoRevoke, "max_clock_skew", cfg.Reconcile.MaxClockSkew.Duration)
	return srv.Serve(ctx)
}
