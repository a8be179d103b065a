package main

// The agent's local database care: backup, check and compact of the till's ledger.
// The agent engineer adds the three constructors to the `agent` group.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tillkeep/tillkeep/agent"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/internal/httpapi"
	"github.com/tillkeep/tillkeep/store"
)

// agentBackupTimeout bounds a backup through a running agent; a till's ledger is tens
// of megabytes on a loopback connection.
const agentBackupTimeout = 10 * time.Minute

func newAgentBackupCmd() *cobra.Command {
	var configPath, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "backup --config FILE --out FILE",
		Short: "Write a consistent copy of the till's ledger, while the agent runs or not",
		Long: `Write a consistent copy of the till's ledger (coupon cache, journal of pending
redemptions, idempotency index) to --out, mode 0600, fsynced, and check it.

While the agent runs it holds the ledger locked (bbolt lets one process open it), so
the copy is taken through the agent: GET ` + agent.BackupPath + ` on its listen address, with its pos_token. The agent keeps
serving the POS meanwhile. When the agent is stopped, the file is opened directly.

The copy is complete or absent: it is written under a temporary name, checked with
the same checks as "agent check", and only then renamed to --out. An existing --out is
refused unless --force is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadAgentConfig(configPath)
			if err != nil {
				return err
			}
			if out == "" {
				return withExit(2, errors.New("--out is required"))
			}
			if !force {
				if _, err := os.Lstat(out); err == nil {
					return fmt.Errorf("back up to %s: the file exists; pass --force to replace it", out)
				}
			}
			how, n, err := backupLedger(cmd.Context(), cfg, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backed up %s %s to %s (%d bytes, checked: ok)\n", agentLedgerPath(cfg), how, out, n)
			return nil
		},
	}
	agentConfigFlag(cmd, &configPath)
	cmd.Flags().StringVar(&out, "out", "", "file to write the copy to (required)")
	cmd.Flags().BoolVar(&force, "force", false, "replace --out if it exists")
	return cmd
}

// backupLedger copies the till's ledger to out, directly when the agent is stopped and
// through the agent when it runs. It says which way it went.
func backupLedger(ctx context.Context, cfg config.Agent, out string) (how string, n int64, err error) {
	path := agentLedgerPath(cfg)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", 0, fmt.Errorf("no ledger at %s: has the agent ever run with this data_dir?", path)
	}
	tmp := out + ".partial"
	_ = os.Remove(tmp)
	defer os.Remove(tmp)

	db, err := openAgentLedger(cfg, nil, supportLedgerLockTimeout)
	switch {
	case err == nil:
		how = "directly (the agent is stopped)"
		n, err = db.BackupFile(tmp)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	case errors.Is(err, store.ErrLocked):
		how = "through the running agent"
		n, err = backupThroughAgent(ctx, cfg, tmp)
	}
	if err != nil {
		return "", 0, fmt.Errorf("back up %s: %w", path, err)
	}
	if err := checkLedgerIsolated(ctx, tmp); err != nil {
		return "", 0, fmt.Errorf("back up %s: the copy fails its check and was not kept: %w", path, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", 0, fmt.Errorf("back up %s: %w", path, err)
	}
	if err := syncParentDir(out); err != nil {
		return "", 0, err
	}
	return how, n, nil
}

// backupThroughAgent streams GET /v1/admin/backup of the running agent into a new file
// at dst and fsyncs it.
func backupThroughAgent(ctx context.Context, cfg config.Agent, dst string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, agentBackupTimeout)
	defer cancel()
	url := "http://" + dialableAddr(cfg.Listen) + agent.BackupPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("build backup request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+cfg.PosToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("the ledger is locked by a running agent, but GET %s failed: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, backupRefusal(url, resp)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", dst, err)
	}
	n, err := io.Copy(f, resp.Body)
	if err != nil {
		err = fmt.Errorf("receive the copy from %s after %d bytes: %w", url, n, err)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// backupRefusal explains a non-200 answer of the backup endpoint.
func backupRefusal(url string, resp *http.Response) error {
	var body httpapi.ErrorBody
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	msg := body.Error.Message
	if msg == "" {
		msg = resp.Status
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("the running agent refused the pos_token of this config (GET %s: %s)", url, msg)
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return fmt.Errorf("the running agent does not serve GET %s (an older version?): stop it (tillkeep service stop --role agent) and run the backup again", url)
	}
	return fmt.Errorf("GET %s: %s", url, msg)
}

// ledgerCheckChildEnv marks the child process checkLedgerIsolated runs. bbolt rebuilds
// its freelist when it opens a file (the store does not persist it), and on a damaged
// file it panics doing so in a goroutine of its own, which no recover can catch. So
// the care commands check a file in a child process: a crash there is a finding about
// the file, reported with exit status 1, not a crash of the command.
const ledgerCheckChildEnv = "TILLKEEP_LEDGER_CHECK_CHILD"

// errLedgerDamaged marks a ledger file that crashed the check.
var errLedgerDamaged = errors.New("the ledger file is damaged")

// checkLedgerIsolated runs the ledger's integrity checks on a file that no agent uses
// (a backup, a compacted copy, a stopped till's ledger) in a child process: this binary
// running `agent check --db path`.
func checkLedgerIsolated(ctx context.Context, path string) error {
	if os.Getenv(ledgerCheckChildEnv) == "1" {
		return checkLedgerFile(path)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("check %s: find this binary: %w", path, err)
	}
	cmd := exec.CommandContext(ctx, exe, "agent", "check", "--db", path)
	cmd.Env = append(os.Environ(), ledgerCheckChildEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if err == nil {
		return nil
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return fmt.Errorf("check %s: run %s: %w", path, exe, err)
	}
	text := strings.TrimSpace(out.String())
	if exitErr.ExitCode() == 1 {
		if strings.Contains(text, `unknown command "check"`) {
			// A build whose agent group lacks the care commands: check in-process.
			return checkLedgerFile(path)
		}
		return errors.New(strings.TrimPrefix(text, "tillkeep: "))
	}
	return fmt.Errorf("%s: %w: reading it crashed the ledger library:\n%s", path, errLedgerDamaged, firstLines(text, 6))
}

func firstLines(text string, n int) string {
	lines := strings.SplitN(text, "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}

// checkLedgerFile opens a ledger file that no agent uses and runs the ledger's
// integrity checks on it, in this process.
func checkLedgerFile(path string) error {
	db, err := store.Open(path, store.Options{Timeout: supportLedgerLockTimeout})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w\n%s is in use by a running agent: stop it first, or back it up and check the copy", err, path)
	}
	if err != nil {
		return err
	}
	err = db.Check()
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

func newAgentCheckCmd() *cobra.Command {
	var configPath, dbPath string
	cmd := &cobra.Command{
		Use:   "check (--config FILE | --db FILE)",
		Short: "Check the integrity of the till's ledger or of a backup (agent stopped)",
		Long: `Check a ledger: bbolt's page-level consistency check over every page, then the
ledger's own invariants (the journal is contiguous, every redemption is indexed, the
catalog counts match). Prints "FILE: ok" and exits 0, or prints what is wrong and
exits 1.

With --config it checks the till's ledger in data_dir; the agent must be stopped
(it keeps the file locked). With --db it checks any ledger file, such as a backup:
to check a running till, "agent backup" it and check the copy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := careLedgerPath(configPath, dbPath)
			if err != nil {
				return err
			}
			if err := checkLedgerIsolated(cmd.Context(), path); err != nil {
				if configPath != "" && strings.Contains(err.Error(), "in use by a running agent") {
					err = fmt.Errorf("%w\nto check a running till: tillkeep agent backup --config %s --out COPY && tillkeep agent check --db COPY", err, configPath)
				}
				return withExit(1, fmt.Errorf("check %s:\n%w", path, err))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "path of agent.toml: check the ledger in its data_dir")
	cmd.Flags().StringVar(&dbPath, "db", "", "check this ledger file instead (a backup, for example)")
	cmd.MarkFlagsOneRequired("config", "db")
	return cmd
}

// careLedgerPath is the ledger a care command works on: --db as given, or the one in
// the data_dir of --config. It must exist: a care command never creates a ledger.
func careLedgerPath(configPath, dbPath string) (string, error) {
	path := dbPath
	if path == "" {
		cfg, _, err := loadAgentConfig(configPath)
		if err != nil {
			return "", err
		}
		path = agentLedgerPath(cfg)
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("no ledger to work on: %w", err)
	}
	return path, nil
}

func newAgentCompactCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "compact --config FILE",
		Short: "Shrink the till's ledger file (agent stopped); keeps the old file as .bak",
		Long: `A bbolt file never gives back the space of deleted data (old catalogs, pruned
journal entries). compact writes a compacted copy of the ledger, checks it, fsyncs it
and swaps it in atomically while it still holds the ledger's lock, so no agent can
write to the old file in between. The previous file stays as ledger.db.bak (a hard
link, so it costs no copy); delete it once the agent runs fine.

The agent must be stopped: tillkeep service stop --role agent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadAgentConfig(configPath)
			if err != nil {
				return err
			}
			res, err := compactLedger(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "compacted %s: %d -> %d bytes; the previous file is kept as %s\n",
				res.path, res.before, res.after, res.backup)
			return nil
		},
	}
	agentConfigFlag(cmd, &configPath)
	return cmd
}

type compactResult struct {
	path, backup  string
	before, after int64
}

// compactLedger replaces the till's ledger with a compacted copy. At every instant the
// ledger path holds a complete file: the copy is renamed over it, and the old file
// survives as .bak through a hard link made first.
func compactLedger(ctx context.Context, cfg config.Agent) (res compactResult, err error) {
	// A damaged ledger would crash the compaction (see ledgerCheckChildEnv); refuse it.
	if path := agentLedgerPath(cfg); fileExistsCare(path) {
		if err := checkLedgerIsolated(ctx, path); err != nil {
			if strings.Contains(err.Error(), "in use by a running agent") {
				return res, fmt.Errorf("compact ledger: %w", err)
			}
			return res, fmt.Errorf("compact ledger: %w\na damaged ledger is not compacted: restore it from a backup (docs/install.md)", err)
		}
	}
	db, err := openExistingLedger(cfg, nil)
	if err != nil {
		return res, err
	}
	defer func() {
		if db != nil {
			if cerr := db.Close(); err == nil {
				err = cerr
			}
		}
	}()
	path := agentLedgerPath(cfg)
	res = compactResult{path: path, backup: path + ".bak"}
	fi, err := os.Stat(path)
	if err != nil {
		return res, fmt.Errorf("compact ledger: %w", err)
	}
	res.before = fi.Size()

	tmp := path + ".compacting"
	_ = os.Remove(tmp)
	if err := db.Compact(tmp); err != nil {
		return res, err
	}
	if err := checkLedgerIsolated(ctx, tmp); err != nil {
		_ = os.Remove(tmp)
		return res, fmt.Errorf("compact ledger: the compacted copy fails its check, the ledger is unchanged: %w", err)
	}
	if err := os.Remove(res.backup); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = os.Remove(tmp)
		return res, fmt.Errorf("compact ledger: remove the previous %s: %w", res.backup, err)
	}
	if err := os.Link(path, res.backup); err != nil {
		// No hard links on this file system: a consistent copy does the same job.
		if _, cerr := db.BackupFile(res.backup); cerr != nil {
			_ = os.Remove(tmp)
			return res, fmt.Errorf("compact ledger: keep the old file as %s: %w (link: %v)", res.backup, cerr, err)
		}
	}
	if runtime.GOOS == "windows" {
		// Windows cannot rename over an open file.
		if err := db.Close(); err != nil {
			return res, err
		}
		db = nil
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return res, fmt.Errorf("compact ledger: replace %s: %w", path, err)
	}
	if err := syncParentDir(path); err != nil {
		return res, err
	}
	if fi, err := os.Stat(path); err == nil {
		res.after = fi.Size()
	}
	return res, nil
}

func fileExistsCare(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// syncParentDir fsyncs the directory holding path, so that a rename or a new file in
// it survives a power cut. Windows has no directory fsync; NTFS journals the rename.
func syncParentDir(path string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
