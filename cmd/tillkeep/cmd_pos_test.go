package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep/agent"
	"github.com/tillkeep/tillkeep/config"
	"github.com/tillkeep/tillkeep/store/memstore"
)

// posTestAgent serves a real agent over an in-memory ledger holding
// agentTestSnapshot(5).
func posTestAgent(t *testing.T) string {
	t.Helper()
	cfg := config.DefaultAgent()
	cfg.PosToken, cfg.StoreID, cfg.TillID = agentTestToken, "S001", "T01"
	ledger := memstore.New("S001", "T01")
	if err := ledger.ReplaceCatalog(context.Background(), agentTestSnapshot(5, time.Now().Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(agent.New(cfg, ledger, slog.New(slog.DiscardHandler)).Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestPosExitCodes(t *testing.T) {
	url := posTestAgent(t)
	ctx := context.Background()
	cases := []struct {
		name string
		env  string
		args []string
		code int
		out  string // expected in stdout
	}{
		{"status", "", []string{"pos", "--url", url, "--token", agentTestToken, "status"}, 0, `"till_id":"T01"`},
		{"token from the environment", agentTestToken, []string{"pos", "--url", url, "status"}, 0, `"store_id":"S001"`},
		{"redeem", "", []string{"pos", "--url", url + "/", "--token", agentTestToken, "redeem", "--code", "C0001", "--transaction", "T-1", "--bill", "9000", "--currency", "USD", "--customer", "cust-1"}, 0, `"mode":"offline"`},
		{"refused", "", []string{"pos", "--url", url, "--token", agentTestToken, "redeem", "--code", "C0001", "--transaction", "T-2", "--bill", "9000", "--currency", "USD"}, 3, `"already_redeemed"`},
		{"unknown coupon", "", []string{"pos", "--url", url, "--token", agentTestToken, "redeem", "--code", "NOPE", "--transaction", "T-3", "--bill", "9000", "--currency", "USD"}, 3, `"unknown_coupon"`},
		{"validate invalid", "", []string{"pos", "--url", url, "--token", agentTestToken, "validate", "--code", "C0002", "--bill", "10", "--currency", "USD"}, 3, `"reason":"rule_violation"`},
		{"validate valid", "", []string{"pos", "--url", url, "--token", agentTestToken, "validate", "--code", "C0002", "--bill", "9000", "--currency", "USD"}, 0, `"valid":true`},
		{"bad request", "", []string{"pos", "--url", url, "--token", agentTestToken, "redeem", "--code", "C0002", "--transaction", "T-4", "--bill", "9000", "--currency", "usd"}, 1, `"invalid_request"`},
		{"wrong token", "", []string{"pos", "--url", url, "--token", "nope", "status"}, 1, `"unauthorized"`},
		{"no token", "", []string{"pos", "--url", url, "status"}, 1, ""},
		{"bad url", "", []string{"pos", "--url", "ftp://x", "--token", agentTestToken, "status"}, 1, ""},
		{"agent down", "", []string{"pos", "--url", "http://127.0.0.1:1", "--token", agentTestToken, "--timeout", "2s", "status"}, 1, ""},
		{"missing flag", "", []string{"pos", "--url", url, "--token", agentTestToken, "redeem", "--code", "C0003", "--bill", "9000", "--currency", "USD"}, 1, ""},
		{"reverse unknown", "", []string{"pos", "--url", url, "--token", agentTestToken, "reverse", "no-such-redemption"}, 1, `"not_found"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(posTokenEnv, c.env)
			out, errOut, code := agentCLI(ctx, c.args...)
			if code != c.code || !strings.Contains(out, c.out) {
				t.Fatalf("exit %d, want %d; stdout %q (want %q); stderr %q", code, c.code, out, c.out, errOut)
			}
			if c.out != "" {
				var v map[string]any
				if err := json.Unmarshal([]byte(out), &v); err != nil {
					t.Fatalf("stdout is not one JSON answer: %q", out)
				}
			}
			if strings.Contains(errOut, agentTestToken) {
				t.Fatalf("the token was printed: %s", errOut)
			}
		})
	}
}

func TestDialableAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:7070": "127.0.0.1:7070",
		"0.0.0.0:7070":   "127.0.0.1:7070",
		":7070":          "127.0.0.1:7070",
		"[::]:7070":      "[::1]:7070",
		"localhost:80":   "localhost:80",
	} {
		if got := dialableAddr(in); got != want {
			t.Errorf("dialableAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
