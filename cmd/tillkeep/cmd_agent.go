package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
	_ "time/tzdata" // store time zones must resolve on tills without zone files (Windows)

	"github.com/spf13/cobra"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/agent"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/installer"
	"github.com/tillkeep/tillkeep/internal/logging"
	"github.com/tillkeep/tillkeep/store"
	tksync "github.com/tillkeep/tillkeep/sync"
)

// exitBadAgentConfig is the exit status when agent.toml cannot be used, the same as
// `config check` gives for an invalid file.
const exitBadAgentConfig = 2

// Lock timeouts of the ledger file. The daemon waits a little for a predecessor that
// is still shutting down; the support commands fail fast while the agent runs.
const (
	agentLedgerLockTimeout   = 3 * time.Second
	supportLedgerLockTimeout = 500 * time.Millisecond
)

// newAgentCmd is the `agent` group. Each subcommand has its own constructor, so that
// more (enroll, backup, check, compact) are added with one line here.
func newAgentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the till agent and inspect its data",
		Long: `The till agent runs on every till. The POS calls it on the till's loopback
interface to validate, redeem and reverse coupons; it redeems through the platform
when it can and from its own cached catalog, within the offline limits, when it
cannot. Every redemption it acknowledges is fsynced to its journal first.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(
		newAgentRunCmd(),
		newAgentEnrollCmd(),
		newAgentCatalogCmd(),
		newAgentJournalCmd(),
		newAgentBackupCmd(),
		newAgentCheckCmd(),
		newAgentCompactCmd(),
	)
	return cmd
}

// agentConfigFlag registers the --config flag every agent subcommand takes.
func agentConfigFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "config", "", "path of agent.toml (required)")
	_ = cmd.MarkFlagRequired("config")
	_ = cmd.MarkFlagFilename("config", "toml")
}

// loadAgentConfig reads agent.toml; a file the agent cannot use exits with status 2.
func loadAgentConfig(path string) (config.Agent, []string, error) {
	cfg, warnings, err := config.LoadAgentWithWarnings(path)
	if err != nil {
		return config.Agent{}, nil, withExit(exitBadAgentConfig, err)
	}
	return cfg, warnings, nil
}

// agentLedgerPath is where the agent keeps its ledger inside data_dir.
func agentLedgerPath(cfg config.Agent) string {
	return filepath.Join(cfg.DataDir, store.FileName)
}

// openAgentLedger opens the till's ledger, checking that it belongs to this store and
// till. When another process holds it, the error says so (store.ErrLocked).
func openAgentLedger(cfg config.Agent, log *slog.Logger, lockTimeout time.Duration) (*store.DB, error) {
	db, err := store.Open(agentLedgerPath(cfg), store.Options{
		Timeout: lockTimeout,
		Logger:  log,
		StoreID: cfg.StoreID,
		TillID:  cfg.TillID,
	})
	if err != nil {
		return nil, fmt.Errorf("open the till's ledger: %w", err)
	}
	return db, nil
}

// openExistingLedger is openAgentLedger for the support commands: they never create a
// ledger, and they explain a lock as "the agent is running".
func openExistingLedger(cfg config.Agent, log *slog.Logger) (*store.DB, error) {
	path := agentLedgerPath(cfg)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no ledger at %s: has the agent ever run with this data_dir?", path)
	}
	db, err := openAgentLedger(cfg, log, supportLedgerLockTimeout)
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w\nthe agent keeps its ledger locked while it runs: stop it first (tillkeep service stop --role agent)", err)
	}
	return db, err
}

func newAgentRunCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the till agent in the foreground",
		Long: `Run the till agent in the foreground: open the ledger in data_dir and serve the POS
API on listen until SIGTERM or SIGINT, then stop gracefully within 5 s and exit 0.

The agent serves even when the platform is unreachable or not configured: it then
decides offline, within the [offline] limits. Only one agent may use a data_dir.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, warnings, err := loadAgentConfig(configPath)
			if err != nil {
				return err
			}
			if _, err := logging.New(cfg.Log, io.Discard); err != nil {
				return withExit(exitBadAgentConfig, fmt.Errorf("set up logging: %w", err))
			}
			// The same command runs interactively and under the service manager;
			// RunDaemon picks the console or the system log and handles Stop.
			return installer.RunDaemon(cmd.Context(), installer.Daemon{
				Role:    installer.RoleAgent,
				Console: cmd.ErrOrStderr(),
				Logger:  func(w io.Writer) (*slog.Logger, error) { return logging.New(cfg.Log, w) },
				Serve: func(ctx context.Context, log *slog.Logger) error {
					for _, w := range warnings {
						log.Warn("config warning", "file", configPath, "warning", w)
					}
					return runAgent(ctx, cfg, log)
				},
			})
		},
	}
	agentConfigFlag(cmd, &configPath)
	return cmd
}

// runAgent runs the agent until ctx ends. It returns nil after a graceful stop.
// With platform.url set, the syncer runs beside the POS API: it enrolls the till if
// needed, attaches the online path, and pushes and pulls on the schedule. The POS API
// serves from the first moment, whether or not the platform can be reached.
func runAgent(ctx context.Context, cfg config.Agent, log *slog.Logger) (err error) {
	db, err := openAgentLedger(cfg, log, agentLedgerLockTimeout)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	clock, err := tillClock(log)
	if err != nil {
		return err
	}
	if cfg.Platform.URL == "" {
		log.Info("no platform.url: redemptions are decided offline from the imported catalog",
			"max_discount", cfg.Offline.MaxDiscount, "max_redemptions", cfg.Offline.MaxRedemptions,
			"max_catalog_age", cfg.Offline.MaxCatalogAge.Duration, "offline_enabled", cfg.Offline.Enabled)
		return agent.New(cfg, db, log, agent.WithClock(clock)).Serve(ctx)
	}
	syncer, err := tksync.New(cfg, db, log, tksync.WithClock(clock))
	if err != nil {
		return fmt.Errorf("set up sync with %s: %w", cfg.Platform.URL, err)
	}
	srv := agent.New(cfg, db, log,
		agent.WithClock(clock),
		agent.WithOnline(syncer.Online()),
		agent.WithPlatformClock(syncer.PlatformNow),
		agent.WithSyncStatus(func() any { return syncer.Status() }),
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	syncDone := make(chan error, 1)
	go func() { syncDone <- syncer.Serve(ctx) }()
	serveErr := srv.Serve(ctx)
	cancel()
	if err := <-syncDone; err != nil && serveErr == nil {
		serveErr = fmt.Errorf("sync: %w", err)
	}
	return serveErr
}

// clockOffsetEnv skews the agent's wall clock by a Go duration ("72h", "-72h"). It
// exists for the clock-fault tests and for support staff reproducing a till whose clock
// is wrong: Go reads the real-time clock without libc, so faketime cannot do it.
const clockOffsetEnv = "TILLKEEP_TEST_CLOCK_OFFSET"

// tillClock is the agent's wall clock: the system's, unless clockOffsetEnv skews it.
func tillClock(log *slog.Logger) (func() time.Time, error) {
	v := os.Getenv(clockOffsetEnv)
	if v == "" {
		return time.Now, nil
	}
	off, err := time.ParseDuration(v)
	if err != nil {
		return nil, withExit(exitBadAgentConfig, fmt.Errorf("%s=%q is not a Go duration: %w", clockOffsetEnv, v, err))
	}
	log.Warn("the agent's clock is skewed on purpose", "env", clockOffsetEnv, "offset", off)
	return func() time.Time { return time.Now().Add(off) }, nil
}

func newAgentEnrollCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "enroll --config FILE",
		Short: "Enroll the till with the platform ahead of time",
		Long: `Present platform.enroll_token with store_id and till_id to the platform once, and
save the till's own credentials (credentials.json, mode 0600) in data_dir. The agent
does the same on its first start; this command lets store IT enroll a till before
it goes live and see the answer. A till already enrolled prints its enrollment.

The platform refuses an unknown store, a till id already enrolled under other
credentials, and a wrong enrollment token, each with a clear message.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadAgentConfig(configPath)
			if err != nil {
				return err
			}
			log, err := logging.New(cfg.Log, cmd.ErrOrStderr())
			if err != nil {
				return withExit(exitBadAgentConfig, fmt.Errorf("set up logging: %w", err))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			creds, err := tksync.Enroll(ctx, cfg, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "till %s/%s enrolled with %s (epoch %s) at %s\n",
				creds.StoreID, creds.TillID, creds.PlatformURL, creds.Epoch, creds.EnrolledAt.Format(time.RFC3339))
			return nil
		},
	}
	agentConfigFlag(cmd, &configPath)
	return cmd
}

func newAgentCatalogCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "Manage the till's cached coupon catalog",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newAgentCatalogImportCmd())
	return cmd
}

func newAgentCatalogImportCmd() *cobra.Command {
	var configPath, file string
	cmd := &cobra.Command{
		Use:   "import --config FILE --file SNAPSHOT.json",
		Short: "Load a catalog snapshot into the till's ledger (agent stopped)",
		Long: `Load a catalog snapshot (the JSON form of a platform catalog snapshot: store_id,
seq, store, offers, coupons, as_of, reflects_till_seq) into the till's ledger,
replacing the cached catalog. The journal and the till's own unsynced use are kept.
It seeds a till that cannot reach the platform, and tests.

A snapshot for another store is refused. Without as_of, the import time is used: the
offline limit max_catalog_age then counts from now. The ledger must not be in use, so
stop the agent first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadAgentConfig(configPath)
			if err != nil {
				return err
			}
			snap, err := readSnapshot(file)
			if err != nil {
				return err
			}
			if err := checkSnapshotStore(snap, cfg.StoreID); err != nil {
				return err
			}
			if snap.AsOf.IsZero() {
				snap.AsOf = time.Now().UTC()
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s has no as_of; treating it as current (%s)\n", file, snap.AsOf.Format(time.RFC3339))
			}
			db, err := openAgentLedger(cfg, nil, supportLedgerLockTimeout)
			if errors.Is(err, store.ErrLocked) {
				return fmt.Errorf("%w\nstop the agent before importing a catalog", err)
			}
			if err != nil {
				return err
			}
			defer db.Close()
			if err := db.ReplaceCatalog(cmd.Context(), snap); err != nil {
				return fmt.Errorf("import catalog %s: %w", file, err)
			}
			if err := db.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported the catalog of store %s at feed seq %d: %d offers, %d coupons, as of %s\n",
				cfg.StoreID, snap.Seq, len(snap.Offers), len(snap.Coupons), snap.AsOf.Format(time.RFC3339))
			return nil
		},
	}
	agentConfigFlag(cmd, &configPath)
	cmd.Flags().StringVar(&file, "file", "", "catalog snapshot JSON file (required)")
	_ = cmd.MarkFlagRequired("file")
	_ = cmd.MarkFlagFilename("file", "json")
	return cmd
}

// readSnapshot decodes a snapshot file strictly: a misspelt field would silently drop
// rules from the till's cache.
func readSnapshot(path string) (tillkeep.CatalogSnapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return tillkeep.CatalogSnapshot{}, fmt.Errorf("read catalog snapshot: %w", err)
	}
	defer f.Close()
	var snap tillkeep.CatalogSnapshot
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&snap); err != nil {
		return tillkeep.CatalogSnapshot{}, fmt.Errorf("decode catalog snapshot %s: %w", path, err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return tillkeep.CatalogSnapshot{}, fmt.Errorf("decode catalog snapshot %s: more than one JSON value", path)
	}
	return snap, nil
}

// checkSnapshotStore refuses a snapshot that does not name this till's store: its
// offers would be judged under another store's rules and time zone.
func checkSnapshotStore(snap tillkeep.CatalogSnapshot, storeID string) error {
	for _, named := range []struct{ field, id string }{{"store_id", snap.StoreID}, {"store.id", snap.Store.ID}} {
		if named.id != "" && named.id != storeID {
			return fmt.Errorf("the snapshot is for store %s (%s), but this till belongs to store %s: refusing to import it",
				named.id, named.field, storeID)
		}
	}
	if snap.StoreID == "" && snap.Store.ID == "" {
		return fmt.Errorf("the snapshot names no store (store_id is empty): refusing to import it into store %s's till", storeID)
	}
	return nil
}

func newAgentJournalCmd() *cobra.Command {
	var (
		configPath string
		after      uint64
	)
	cmd := &cobra.Command{
		Use:   "journal --config FILE [--after SEQ]",
		Short: "Print the till's journal as JSON lines (agent stopped)",
		Long: `Print the journal of the till (its redemptions and reversals, uploaded or not) as
one JSON object per line, in sequence order, for support and tests.

The agent keeps its ledger file locked while it runs, so this works only while the
agent is stopped; use GET /v1/status on a running agent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadAgentConfig(configPath)
			if err != nil {
				return err
			}
			db, err := openExistingLedger(cfg, nil)
			if err != nil {
				return err
			}
			defer db.Close()
			return printJournal(cmd.Context(), db, after, cmd.OutOrStdout())
		},
	}
	agentConfigFlag(cmd, &configPath)
	cmd.Flags().Uint64Var(&after, "after", 0, "print only entries with a sequence above SEQ")
	return cmd
}

func printJournal(ctx context.Context, db store.Ledger, after uint64, w io.Writer) error {
	enc := json.NewEncoder(w)
	for {
		page, err := db.Journal(ctx, after, 1000)
		if err != nil {
			return fmt.Errorf("read the journal after seq %d: %w", after, err)
		}
		if len(page) == 0 {
			return nil
		}
		for i := range page {
			if err := enc.Encode(&page[i]); err != nil {
				return fmt.Errorf("print journal entry %d: %w", page[i].Seq, err)
			}
		}
		after = page[len(page)-1].Seq
	}
}
