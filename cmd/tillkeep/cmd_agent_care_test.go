package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/agent"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/store"
	"github.com/tillkeep/tillkeep/store/storetest"
)

const careToken = "pos-token-for-care-tests-0123456789"

// The care commands check ledger files in a child process: this binary run as
// `agent check --db FILE` (see ledgerCheckChildEnv). In tests this binary is the test
// binary, so it plays that child here.
func init() {
	if os.Getenv(ledgerCheckChildEnv) != "1" || len(os.Args) < 3 || os.Args[1] != "agent" || os.Args[2] != "check" {
		return
	}
	cmd := newAgentCheckCmd()
	cmd.SetArgs(os.Args[3:])
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	if err == nil {
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "tillkeep:", err)
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	os.Exit(code)
}

// careTill is a till's config and a ledger with pending redemptions, agent stopped.
type careTill struct {
	dir, config, ledger string
	pending             []tillkeep.JournalEntry // the journal after the acknowledged seq
	acked               uint64
}

// newCareTill writes agent.toml (listening on listen) and a ledger of storetest's
// store and till holding its catalog, three redemptions, one reversal and an
// acknowledgement of the first entry: three entries still to upload.
func newCareTill(t *testing.T, listen string) careTill {
	t.Helper()
	dir := t.TempDir()
	c := careTill{dir: dir, config: filepath.Join(dir, "agent.toml"), ledger: filepath.Join(dir, "data", store.FileName)}
	text := fmt.Sprintf("listen = %q\ndata_dir = %q\npos_token = %q\nstore_id = %q\ntill_id = %q\n",
		listen, filepath.Join(dir, "data"), careToken, storetest.StoreID, storetest.TillID)
	if err := os.WriteFile(c.config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(c.ledger, store.Options{StoreID: storetest.StoreID, TillID: storetest.TillID})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c.pending, c.acked = fillLedger(t, db)
	return c
}

// fillLedger gives a ledger a catalog and a journal with entries still to upload.
func fillLedger(t *testing.T, db *store.DB) (pending []tillkeep.JournalEntry, acked uint64) {
	t.Helper()
	ctx := context.Background()
	if err := db.ReplaceCatalog(ctx, storetest.Snapshot()); err != nil {
		t.Fatal(err)
	}
	var multi tillkeep.Outcome
	for i, r := range []struct{ code, customer string }{{"S1", ""}, {"M1", ""}, {"P1", storetest.CustomerAnna}} {
		out, _, err := db.Record(ctx, storetest.RecordRequest(fmt.Sprintf("tx-%d", i), r.code, r.customer, tillkeep.ModeOffline))
		if err != nil {
			t.Fatalf("record %s: %v", r.code, err)
		}
		if r.code == "M1" {
			multi = out
		}
	}
	if _, err := db.Reverse(ctx, tillkeep.ReverseRequest{RedemptionID: multi.RedemptionID, Decide: storetest.Reverse(tillkeep.ModeOffline)}); err != nil {
		t.Fatalf("reverse: %v", err)
	}
	if err := db.Acknowledge(ctx, 1); err != nil {
		t.Fatal(err)
	}
	pending, err := db.Pending(ctx, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 3 {
		t.Fatalf("set-up left %d pending entries, want 3", len(pending))
	}
	return pending, 1
}

// ledgerJournal reads what a ledger file holds to upload: its acknowledged seq and the
// entries after it.
func ledgerJournal(t *testing.T, path string) (uint64, []tillkeep.JournalEntry) {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	ctx := context.Background()
	acked, err := db.AckedSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := db.Pending(ctx, acked, 100)
	if err != nil {
		t.Fatal(err)
	}
	return acked, pending
}

func samePending(t *testing.T, what string, got, want []tillkeep.JournalEntry) {
	t.Helper()
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Errorf("%s: pending journal differs\ngot  %s\nwant %s", what, gj, wj)
	}
}

// runCare runs one care command in-process and returns its output and exit status.
func runCare(t *testing.T, cmd *cobra.Command, args ...string) (stdout string, code int, err error) {
	t.Helper()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err = cmd.ExecuteContext(context.Background())
	code = 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return out.String(), code, err
}

func TestAgentCheck(t *testing.T) {
	till := newCareTill(t, "127.0.0.1:7070")
	out, code, err := runCare(t, newAgentCheckCmd(), "--config", till.config)
	if code != 0 || out != till.ledger+": ok\n" {
		t.Fatalf("check --config: exit %d, %q, %v", code, out, err)
	}
	if out, code, err := runCare(t, newAgentCheckCmd(), "--db", till.ledger); code != 0 || !strings.HasSuffix(out, ": ok\n") {
		t.Fatalf("check --db: exit %d, %q, %v", code, out, err)
	}

	// A damaged copy: garbage over the pages after the two meta pages.
	damaged := filepath.Join(t.TempDir(), "damaged.db")
	b, err := os.ReadFile(till.ledger)
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	for i := 2 * page; i < len(b) && i < 6*page; i++ {
		b[i] = byte(i * 7)
	}
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, code, err = runCare(t, newAgentCheckCmd(), "--db", damaged)
	if code != 1 || err == nil {
		t.Fatalf("check of a damaged file: exit %d, %v; want exit 1 with details", code, err)
	}
	t.Logf("damaged file: %v", err)

	// A file that is not there is not created.
	missing := filepath.Join(t.TempDir(), "missing.db")
	if _, code, _ := runCare(t, newAgentCheckCmd(), "--db", missing); code == 0 {
		t.Error("check of a missing file succeeded")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("check created %s", missing)
	}

	// While an agent holds the ledger, check says how to check a running till.
	db, err := store.Open(till.ledger, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, code, err = runCare(t, newAgentCheckCmd(), "--config", till.config)
	if code == 0 || err == nil || !strings.Contains(err.Error(), "agent backup") {
		t.Fatalf("check of a locked ledger: exit %d, %v", code, err)
	}
}

func TestAgentBackupOfStoppedAgent(t *testing.T) {
	till := newCareTill(t, "127.0.0.1:7070")
	out := filepath.Join(t.TempDir(), "till.backup")
	stdout, code, err := runCare(t, newAgentBackupCmd(), "--config", till.config, "--out", out)
	if code != 0 {
		t.Fatalf("backup: exit %d, %v", code, err)
	}
	if !strings.Contains(stdout, "directly") {
		t.Errorf("backup of a stopped agent said %q", stdout)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup has mode %o, want 0600", fi.Mode().Perm())
	}
	acked, pending := ledgerJournal(t, out)
	if acked != till.acked {
		t.Errorf("backup acked seq %d, want %d", acked, till.acked)
	}
	samePending(t, "backup", pending, till.pending)

	if _, code, err := runCare(t, newAgentBackupCmd(), "--config", till.config, "--out", out); code == 0 || !strings.Contains(err.Error(), "--force") {
		t.Errorf("backup over an existing file: exit %d, %v", code, err)
	}
	if _, code, err := runCare(t, newAgentBackupCmd(), "--config", till.config, "--out", out, "--force"); code != 0 {
		t.Errorf("backup --force: exit %d, %v", code, err)
	}
	if leftovers, _ := filepath.Glob(out + ".*"); len(leftovers) > 0 {
		t.Errorf("backup left %v behind", leftovers)
	}
}

// agentHandler is the real agent's HTTP API over db, configured by the till's config
// with pos_token replaced by token.
func agentHandler(t *testing.T, till careTill, db *store.DB, token string) http.Handler {
	t.Helper()
	cfg, err := config.LoadAgent(till.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg.PosToken = token
	return agent.New(cfg, db, slog.New(slog.DiscardHandler)).Handler()
}

// serveOn serves h on a fresh loopback port and returns the listen address.
func serveOn(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func TestAgentBackupThroughRunningAgent(t *testing.T) {
	// The till's ledger is held open and served by the agent's own handler, as by a
	// running agent; the backup must go through its endpoint.
	till := newCareTill(t, "127.0.0.1:1")
	db, err := store.Open(till.ledger, store.Options{StoreID: storetest.StoreID, TillID: storetest.TillID})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	listen := serveOn(t, agentHandler(t, till, db, careToken))
	withListen := func(listen string) string {
		text, err := os.ReadFile(till.config)
		if err != nil {
			t.Fatal(err)
		}
		text = bytes.Replace(text, []byte(`listen = "127.0.0.1:1"`), []byte(fmt.Sprintf("listen = %q", listen)), 1)
		path := filepath.Join(t.TempDir(), "agent.toml")
		if err := os.WriteFile(path, text, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	out := filepath.Join(t.TempDir(), "live.backup")
	stdout, code, err := runCare(t, newAgentBackupCmd(), "--config", withListen(listen), "--out", out)
	if code != 0 {
		t.Fatalf("backup through the agent: exit %d, %v", code, err)
	}
	if !strings.Contains(stdout, "through the running agent") {
		t.Errorf("backup said %q", stdout)
	}
	// The agent keeps redeeming; the copy is the state at the moment it was taken.
	if _, _, err := db.Record(context.Background(), storetest.RecordRequest("tx-after", "S2", "", tillkeep.ModeOffline)); err != nil {
		t.Fatal(err)
	}
	acked, pending := ledgerJournal(t, out)
	if acked != till.acked {
		t.Errorf("backup acked seq %d, want %d", acked, till.acked)
	}
	samePending(t, "live backup", pending, till.pending)

	// Refusals leave nothing behind.
	for name, tc := range map[string]struct {
		handler http.Handler
		want    string
	}{
		"old agent":   {http.NotFoundHandler(), "does not serve"},
		"wrong token": {agentHandler(t, till, db, "another-token-0123456789"), "refused the pos_token"},
		"cut midway": {http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var buf bytes.Buffer
			if _, err := db.Backup(&buf); err != nil {
				t.Error(err)
			}
			w.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
			_, _ = w.Write(buf.Bytes()[:buf.Len()/2])
			panic(http.ErrAbortHandler)
		}), "receive the copy"},
		"garbage": {http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, strings.Repeat("not a ledger ", 10000))
		}), "fails its check"},
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "refused.backup")
			_, code, err := runCare(t, newAgentBackupCmd(), "--config", withListen(serveOn(t, tc.handler)), "--out", out)
			if code == 0 || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("exit %d, %v; want an error saying %q", code, err, tc.want)
			}
			if left, _ := filepath.Glob(out + "*"); len(left) > 0 {
				t.Errorf("a refused backup left %v", left)
			}
		})
	}
}

func TestAgentCompact(t *testing.T) {
	till := newCareTill(t, "127.0.0.1:7070")
	// Catalog churn leaves free pages that bbolt never gives back.
	db, err := store.Open(till.ledger, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	big := storetest.Snapshot()
	for i := range 20000 {
		big.Coupons = append(big.Coupons, tillkeep.Coupon{Code: fmt.Sprintf("G%06d", i), OfferID: storetest.OfferMulti,
			Status: tillkeep.CouponActive, CreatedAt: storetest.Base})
	}
	for seq := uint64(2); seq <= 4; seq++ {
		big.Seq = seq
		if err := db.ReplaceCatalog(ctx, big); err != nil {
			t.Fatal(err)
		}
	}
	small := storetest.Snapshot()
	small.Seq = 5
	if err := db.ReplaceCatalog(ctx, small); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(till.ledger)
	if err != nil {
		t.Fatal(err)
	}

	stdout, code, err := runCare(t, newAgentCompactCmd(), "--config", till.config)
	if code != 0 {
		t.Fatalf("compact: exit %d, %v", code, err)
	}
	t.Log(strings.TrimSpace(stdout))
	fi, err := os.Stat(till.ledger)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() >= int64(len(before)) {
		t.Errorf("compact did not shrink the ledger: %d -> %d bytes", len(before), fi.Size())
	}
	// The .bak is the uncompacted file (opening a ledger commits, so not byte for
	// byte the file of before) with the same journal.
	bak, err := os.Stat(till.ledger + ".bak")
	if err != nil {
		t.Fatalf("compact kept no .bak: %v", err)
	}
	if bak.Size() != int64(len(before)) {
		t.Errorf("the .bak has %d bytes, the ledger had %d before compaction", bak.Size(), len(before))
	}
	if acked, pending := ledgerJournal(t, till.ledger+".bak"); acked != till.acked {
		t.Errorf(".bak acked seq %d, want %d", acked, till.acked)
	} else {
		samePending(t, ".bak", pending, till.pending)
	}
	acked, pending := ledgerJournal(t, till.ledger)
	if acked != till.acked {
		t.Errorf("compacted ledger acked seq %d, want %d", acked, till.acked)
	}
	samePending(t, "compacted ledger", pending, till.pending)
	if _, code, err := runCare(t, newAgentCheckCmd(), "--config", till.config); code != 0 {
		t.Errorf("check after compact: %v", err)
	}
	if left, _ := filepath.Glob(till.ledger + ".compacting"); len(left) > 0 {
		t.Errorf("compact left %v", left)
	}

	// Twice: the previous .bak is replaced.
	if _, code, err := runCare(t, newAgentCompactCmd(), "--config", till.config); code != 0 {
		t.Fatalf("second compact: exit %d, %v", code, err)
	}

	// Never under a running agent.
	db, err = store.Open(till.ledger, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, code, err := runCare(t, newAgentCompactCmd(), "--config", till.config); code == 0 || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("compact of a locked ledger: exit %d, %v", code, err)
	}
}

// --- old-version ledger fixtures -------------------------------------------------------

var updateFixtures = flag.Bool("update-fixtures", false,
	"add store/testdata/fixtures/ledger-v<SchemaVersion>.db if it is missing (existing fixtures are never rewritten)")

const fixtureDir = "../../store/testdata/fixtures"

// fixtureJournal is the sidecar of a fixture: what its journal must still hold.
type fixtureJournal struct {
	SchemaVersion uint64                  `json:"schema_version"`
	StoreID       string                  `json:"store_id"`
	TillID        string                  `json:"till_id"`
	AckedSeq      uint64                  `json:"acked_seq"`
	Pending       []tillkeep.JournalEntry `json:"pending"`
}

func fixtureName(version uint64) string { return fmt.Sprintf("ledger-v%d", version) }

// TestLedgerFixtures opens every committed ledger of an earlier (or the current)
// schema version with this binary's store, as an upgraded till would: the file opens,
// its pending journal is intact and passes `agent check`, and a file of an older schema
// is backed up, byte for byte, before it is upgraded. When SchemaVersion is raised, the
// fixture of the previous version exercises the upgrade; add one of the new version with
// -update-fixtures.
func TestLedgerFixtures(t *testing.T) {
	if *updateFixtures {
		writeCurrentFixture(t)
	}
	sidecars, _ := filepath.Glob(filepath.Join(fixtureDir, "ledger-v*.json"))
	if len(sidecars) == 0 {
		t.Fatalf("no ledger fixtures in %s; create one with: go test ./cmd/tillkeep -run TestLedgerFixtures -update-fixtures", fixtureDir)
	}
	haveCurrent := false
	for _, sidecar := range sidecars {
		var want fixtureJournal
		b, err := os.ReadFile(sidecar)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("%s: %v", sidecar, err)
		}
		haveCurrent = haveCurrent || want.SchemaVersion == store.SchemaVersion
		t.Run(fixtureName(want.SchemaVersion), func(t *testing.T) {
			original, err := os.ReadFile(strings.TrimSuffix(sidecar, ".json") + ".db")
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, store.FileName)
			if err := os.WriteFile(path, original, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := store.Open(path, store.Options{StoreID: want.StoreID, TillID: want.TillID})
			if err != nil {
				t.Fatalf("this tillkeep cannot open a schema v%d ledger: %v", want.SchemaVersion, err)
			}
			ctx := context.Background()
			acked, err := db.AckedSeq(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pending, err := db.Pending(ctx, acked, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if acked != want.AckedSeq {
				t.Errorf("acked seq %d, want %d", acked, want.AckedSeq)
			}
			if !reflect.DeepEqual(normalize(t, pending), normalize(t, want.Pending)) {
				samePending(t, "after opening", pending, want.Pending)
			}

			backups, _ := filepath.Glob(path + ".bak-v*")
			if want.SchemaVersion < store.SchemaVersion {
				if len(backups) != 1 {
					t.Fatalf("upgrading from v%d left backups %v, want exactly one", want.SchemaVersion, backups)
				}
				saved, err := os.ReadFile(backups[0])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(saved, original) {
					t.Errorf("the backup taken before the upgrade is not the v%d file as it was", want.SchemaVersion)
				}
			} else if len(backups) != 0 {
				t.Errorf("opening a current-version ledger made backups %v", backups)
			}
			if out, code, err := runCare(t, newAgentCheckCmd(), "--db", path); code != 0 {
				t.Errorf("agent check of the opened fixture: exit %d, %v %s", code, err, out)
			}
		})
	}
	if !haveCurrent {
		t.Errorf("no fixture of the current schema v%d; add it with: go test ./cmd/tillkeep -run TestLedgerFixtures -update-fixtures", store.SchemaVersion)
	}
}

// normalize round-trips entries through JSON, as the sidecar stores them (times lose
// their monotonic part, nil and empty compare equal).
func normalize(t *testing.T, entries []tillkeep.JournalEntry) []tillkeep.JournalEntry {
	t.Helper()
	b, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	var out []tillkeep.JournalEntry
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// writeCurrentFixture adds the fixture of the current schema version if it is missing.
// Fixtures of earlier versions are history: never regenerate them.
func writeCurrentFixture(t *testing.T) {
	t.Helper()
	base := filepath.Join(fixtureDir, fixtureName(store.SchemaVersion))
	if _, err := os.Stat(base + ".db"); err == nil {
		t.Logf("%s.db exists; fixtures are never rewritten", base)
		return
	}
	if err := os.MkdirAll(fixtureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), store.FileName)
	db, err := store.Open(path, store.Options{StoreID: storetest.StoreID, TillID: storetest.TillID})
	if err != nil {
		t.Fatal(err)
	}
	pending, acked := fillLedger(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Compacted: the smallest file that holds it all.
	compacted := path + ".compact"
	db, err = store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(compacted); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(compacted)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".db", b, 0o644); err != nil {
		t.Fatal(err)
	}
	sidecar, err := json.MarshalIndent(fixtureJournal{
		SchemaVersion: store.SchemaVersion, StoreID: storetest.StoreID, TillID: storetest.TillID,
		AckedSeq: acked, Pending: pending,
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".json", append(sidecar, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s.db (%d bytes) and %s.json", base, len(b), base)
}

// TestAgentBackupCLIWithRunningAgent runs the real binary: `agent run` holds the
// ledger, `agent backup` copies it through the agent.
func TestAgentBackupCLIWithRunningAgent(t *testing.T) {
	bin := svcBinary(t)
	port := svcFreePort(t)
	till := newCareTill(t, fmt.Sprintf("127.0.0.1:%d", port))
	agentCmd := exec.Command(bin, "agent", "run", "--config", till.config)
	var agentLog bytes.Buffer
	agentCmd.Stdout, agentCmd.Stderr = &agentLog, &agentLog
	if err := agentCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agentCmd.Process.Signal(os.Interrupt)
		_ = agentCmd.Wait()
	})
	svcWaitHealthy(t, fmt.Sprintf("http://127.0.0.1:%d", port))

	out := filepath.Join(t.TempDir(), "live.backup")
	res := svcRunCLI(t, bin, "agent", "backup", "--config", till.config, "--out", out)
	if res.code != 0 {
		t.Fatalf("agent backup: exit %d\n%s\nagent log:\n%s", res.code, res.stderr, agentLog.String())
	}
	acked, pending := ledgerJournal(t, out)
	if acked != till.acked {
		t.Errorf("backup acked seq %d, want %d", acked, till.acked)
	}
	samePending(t, "backup of a running agent", pending, till.pending)
}
