package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// JournalLine is one entry of a till's journal as `tillkeep agent journal` prints it:
// the fields a crash test compares with what the POS was told.
type JournalLine struct {
	Seq           uint64 `json:"seq"`
	EntryID       string `json:"entry_id"`
	Kind          string `json:"kind"` // "redemption" or "reversal"
	RedemptionID  string `json:"redemption_id"`
	StoreID       string `json:"store_id"`
	TillID        string `json:"till_id"`
	TransactionID string `json:"transaction_id"`
	Code          string `json:"code"`
	Mode          string `json:"mode"`
}

// Journal runs `tillkeep agent journal --config` on this till and returns the entries
// with a sequence above after. The agent must be stopped: it keeps its ledger locked.
func (a *Agent) Journal(ctx context.Context, after uint64) ([]JournalLine, error) {
	if a.Running() {
		return nil, fmt.Errorf("read the journal of till %s: stop the agent first, it keeps its ledger locked", a.Name())
	}
	res, err := RunCLI(ctx, a.Bin, "agent", "journal", "--config", a.ConfigPath, "--after", strconv.FormatUint(after, 10))
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("tillkeep agent journal of till %s: exit %d: %s", a.Name(), res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	var lines []JournalLine
	sc := bufio.NewScanner(strings.NewReader(res.Stdout))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l JournalLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("journal of till %s: line %q: %w", a.Name(), sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("journal of till %s: %w", a.Name(), err)
	}
	return lines, nil
}

// CheckLedger runs `tillkeep agent check --config` on this till: bbolt's page check
// and the ledger's own invariants. The agent must be stopped.
func (a *Agent) CheckLedger(ctx context.Context) error {
	if a.Running() {
		return fmt.Errorf("check the ledger of till %s: stop the agent first, it keeps its ledger locked", a.Name())
	}
	res, err := RunCLI(ctx, a.Bin, "agent", "check", "--config", a.ConfigPath)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("tillkeep agent check of till %s: exit %d:\n%s%s", a.Name(), res.ExitCode, res.Stdout, res.Stderr)
	}
	return nil
}

// CheckBoltFile opens a bbolt file read-only, so that the check leaves it exactly as the
// crash did, and runs bbolt's consistency check over every page. No process may hold
// the file open for writing.
func CheckBoltFile(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open %s read-only: %w", path, err)
	}
	var errs []error
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			if len(errs) < 20 {
				errs = append(errs, err)
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("check %s: %w", path, errors.Join(errs...))
	}
	return nil
}
