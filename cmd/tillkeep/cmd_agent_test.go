package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/store"
)

const agentTestToken = "pos-token-for-agent-tests-0123456789"

// agentCLI runs the tillkeep command line in-process and returns what it printed and
// the exit status main would give.
func agentCLI(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	code = 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		fmt.Fprintln(&errOut, "tillkeep:", err)
	}
	return out.String(), errOut.String(), code
}

// agentTestSetup is one till's files: agent.toml, its data dir and its address.
type agentTestSetup struct {
	dir, configPath, dataDir, baseURL string
}

// newAgentTestSetup writes agent.toml for a till on a free loopback port; extraTOML is
// appended (tables other than [log]).
func newAgentTestSetup(t testing.TB, logLevel, extraTOML string) agentTestSetup {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := agentTestSetup{
		dir:        dir,
		configPath: filepath.Join(dir, "agent.toml"),
		dataDir:    filepath.Join(dir, "data"),
		baseURL:    "http://" + addr,
	}
	text := fmt.Sprintf(`listen    = %q
data_dir  = %q
pos_token = %q
store_id  = "S001"
till_id   = "T01"

[log]
level = %q
%s`, addr, s.dataDir, agentTestToken, logLevel, extraTOML)
	if err := os.WriteFile(s.configPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// agentTestSnapshot is a catalog of store S001: coupons C0001..Cn of a 10.00 USD offer
// with a 50.00 minimum bill, synced asOf.
func agentTestSnapshot(n int, asOf time.Time) tillkeep.CatalogSnapshot {
	snap := tillkeep.CatalogSnapshot{
		StoreID: "S001",
		Seq:     7,
		Store:   tillkeep.Store{ID: "S001", Name: "Main street", Timezone: "America/New_York", Currency: "USD"},
		AsOf:    asOf,
		Offers: []tillkeep.Offer{{
			ID:         "TEN",
			Name:       "10 off 50",
			Discount:   tillkeep.Discount{Type: tillkeep.DiscountFixed, Amount: 1000, Currency: "USD"},
			ValidFrom:  asOf.AddDate(0, -1, 0),
			ValidUntil: asOf.AddDate(1, 0, 0),
			Expiry:     tillkeep.Expiry{Mode: tillkeep.ExpiryWithOffer},
			Rules:      tillkeep.Rules{MaxRedemptionsPerCoupon: 1, MinBill: 5000},
			Offline:    tillkeep.OfflinePolicy{Allowed: true},
		}},
	}
	for i := 1; i <= n; i++ {
		snap.Coupons = append(snap.Coupons, tillkeep.Coupon{Code: fmt.Sprintf("C%04d", i), OfferID: "TEN", Status: tillkeep.CouponActive})
	}
	return snap
}

func writeSnapshot(t testing.TB, dir string, snap tillkeep.CatalogSnapshot) string {
	t.Helper()
	path := filepath.Join(dir, "snapshot.json")
	j, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, j, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func waitAgentHealthy(t testing.TB, baseURL string, deadline time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	stop := time.Now().Add(deadline)
	for time.Now().Before(stop) {
		resp, err := client.Get(baseURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s/healthz did not answer 200 within %v", baseURL, deadline)
}

func decodeJournal(t testing.TB, out string) []tillkeep.JournalEntry {
	t.Helper()
	var entries []tillkeep.JournalEntry
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var e tillkeep.JournalEntry
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("journal line %q: %v", sc.Text(), err)
		}
		entries = append(entries, e)
	}
	return entries
}

// The whole till life cycle through the CLI, in-process: seed the catalog, run the
// agent, redeem / refuse / validate / reverse with the pos commands, stop, read the
// journal.
func TestAgentCLILifecycle(t *testing.T) {
	s := newAgentTestSetup(t, "debug", "")
	snapPath := writeSnapshot(t, s.dir, agentTestSnapshot(3, time.Now().Add(-time.Hour)))
	out, errOut, code := agentCLI(context.Background(), "agent", "catalog", "import", "--config", s.configPath, "--file", snapPath)
	if code != 0 || !strings.Contains(out, "3 coupons") {
		t.Fatalf("catalog import: exit %d\n%s%s", code, out, errOut)
	}
	if fi, err := os.Stat(filepath.Join(s.dataDir, store.FileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ledger file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		stderr string
		code   int
	}
	ran := make(chan result, 1)
	go func() {
		_, errOut, code := agentCLI(ctx, "agent", "run", "--config", s.configPath)
		ran <- result{errOut, code}
	}()
	waitAgentHealthy(t, s.baseURL, 10*time.Second)

	pos := func(args ...string) (map[string]any, int, string) {
		t.Helper()
		out, errOut, code := agentCLI(context.Background(), append([]string{"pos", "--config", s.configPath}, args...)...)
		var answer map[string]any
		if out != "" {
			if err := json.Unmarshal([]byte(out), &answer); err != nil {
				t.Fatalf("pos %v printed non-JSON %q: %v", args, out, err)
			}
		}
		return answer, code, errOut
	}
	st, code, errOut := pos("status")
	if code != 0 || st["mode"] != "offline" || st["store_id"] != "S001" {
		t.Fatalf("pos status: exit %d %v %s", code, st, errOut)
	}
	red, code, errOut := pos("redeem", "--code", "C0001", "--transaction", "T-1", "--bill", "12000", "--currency", "USD")
	if code != 0 || red["redemption_id"] == nil || red["mode"] != "offline" {
		t.Fatalf("pos redeem: exit %d %v %s", code, red, errOut)
	}
	again, code, _ := pos("redeem", "--code", "C0001", "--transaction", "T-1", "--bill", "12000", "--currency", "USD")
	if code != 0 || again["redemption_id"] != red["redemption_id"] {
		t.Fatalf("pos redeem retry: exit %d %v, want the first redemption %v", code, again, red["redemption_id"])
	}
	refused, code, errOut := pos("redeem", "--code", "C0002", "--transaction", "T-2", "--bill", "100", "--currency", "USD")
	if code != exitPosRefused || !strings.Contains(errOut, "rule_violation") {
		t.Fatalf("pos redeem below min_bill: exit %d %v %s, want exit 3", code, refused, errOut)
	}
	if e := refused["error"].(map[string]any); e["rule"] != "min_bill" {
		t.Errorf("refusal body %v", refused)
	}
	if _, code, _ := pos("redeem", "--code", "C0003", "--transaction", "T-1", "--bill", "12000", "--currency", "USD"); code != exitPosFailed {
		t.Errorf("pos redeem reusing a transaction id: exit %d, want 1 (409)", code)
	}
	if v, code, _ := pos("validate", "--code", "C0001", "--bill", "12000", "--currency", "USD"); code != exitPosRefused || v["reason"] != "already_redeemed" {
		t.Errorf("pos validate a used coupon: exit %d %v, want exit 3 already_redeemed", code, v)
	}
	if v, code, _ := pos("validate", "--code", "C0002", "--bill", "12000", "--currency", "USD", "--customer", "cust-1"); code != 0 || v["valid"] != true {
		t.Errorf("pos validate: exit %d %v", code, v)
	}
	id := red["redemption_id"].(string)
	if rev, code, _ := pos("reverse", id); code != 0 || rev["status"] != "reversed" {
		t.Errorf("pos reverse: exit %d %v", code, rev)
	}
	if _, code, _ := pos("reverse", "0190aaaa-0000-7000-8000-000000000000"); code != exitPosFailed {
		t.Errorf("pos reverse unknown: exit %d, want 1", code)
	}

	// The support commands refuse politely while the agent holds the ledger.
	_, errOut, code = agentCLI(context.Background(), "agent", "journal", "--config", s.configPath)
	if code == 0 || !strings.Contains(errOut, "stop it first") {
		t.Errorf("journal while the agent runs: exit %d %s", code, errOut)
	}

	stopAt := time.Now()
	cancel()
	select {
	case r := <-ran:
		if r.code != 0 {
			t.Fatalf("agent run exited %d after cancel:\n%s", r.code, r.stderr)
		}
		if took := time.Since(stopAt); took > 5*time.Second {
			t.Errorf("agent run took %v to stop", took)
		}
		if strings.Contains(r.stderr, agentTestToken) {
			t.Errorf("the agent logged its POS token")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent run did not stop within 10 s of cancel")
	}

	out, errOut, code = agentCLI(context.Background(), "agent", "journal", "--config", s.configPath)
	if code != 0 {
		t.Fatalf("agent journal: exit %d %s", code, errOut)
	}
	entries := decodeJournal(t, out)
	if len(entries) != 2 || entries[0].RedemptionID != id || entries[0].Kind != tillkeep.EntryRedemption ||
		entries[1].Kind != tillkeep.EntryReversal || entries[1].RedemptionID != id {
		t.Fatalf("journal %+v", entries)
	}
	out, _, _ = agentCLI(context.Background(), "agent", "journal", "--config", s.configPath, "--after", "1")
	if got := decodeJournal(t, out); len(got) != 1 || got[0].Seq != 2 {
		t.Fatalf("journal --after 1: %+v", got)
	}
}

func TestAgentCatalogImportRefusals(t *testing.T) {
	s := newAgentTestSetup(t, "debug", "")
	other := agentTestSnapshot(1, time.Now())
	other.StoreID, other.Store.ID = "S999", "S999"
	_, errOut, code := agentCLI(context.Background(), "agent", "catalog", "import", "--config", s.configPath,
		"--file", writeSnapshot(t, t.TempDir(), other))
	if code != 1 || !strings.Contains(errOut, "S999") || !strings.Contains(errOut, "refusing") {
		t.Errorf("import another store's snapshot: exit %d %s", code, errOut)
	}
	anonymous := agentTestSnapshot(1, time.Now())
	anonymous.StoreID, anonymous.Store.ID = "", ""
	_, errOut, code = agentCLI(context.Background(), "agent", "catalog", "import", "--config", s.configPath,
		"--file", writeSnapshot(t, t.TempDir(), anonymous))
	if code != 1 || !strings.Contains(errOut, "names no store") {
		t.Errorf("import a snapshot without a store: exit %d %s", code, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"store_id":"S001","offerz":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = agentCLI(context.Background(), "agent", "catalog", "import", "--config", s.configPath, "--file", bad)
	if code != 1 || !strings.Contains(errOut, "offerz") {
		t.Errorf("import a misspelt snapshot: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, store.FileName)); err == nil {
		t.Errorf("a refused import created a ledger")
	}
	_, errOut, code = agentCLI(context.Background(), "agent", "journal", "--config", s.configPath)
	if code != 1 || !strings.Contains(errOut, "no ledger") {
		t.Errorf("journal without a ledger: exit %d %s", code, errOut)
	}
}

func TestAgentRunRefusesSecondAgent(t *testing.T) {
	s := newAgentTestSetup(t, "debug", "")
	held, err := store.Open(filepath.Join(s.dataDir, store.FileName), store.Options{StoreID: "S001", TillID: "T01"})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, errOut, code := agentCLI(context.Background(), "agent", "run", "--config", s.configPath)
	if code != 1 || !strings.Contains(errOut, "another tillkeep agent is using") {
		t.Fatalf("second agent on one data_dir: exit %d %s", code, errOut)
	}
}

func TestAgentRunBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(path, []byte("listen = \"127.0.0.1:7070\"\nbogus = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := agentCLI(context.Background(), "agent", "run", "--config", path)
	if code != exitBadAgentConfig || !strings.Contains(errOut, "bogus") {
		t.Fatalf("agent run with a bad config: exit %d %s", code, errOut)
	}
	if _, _, code := agentCLI(context.Background(), "agent", "run"); code == 0 {
		t.Fatal("agent run without --config succeeded")
	}
}
