package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep/platform/pgstore/pgtest"
)

func postgresConfig(dsn string) string {
	return "[storage]\ndriver = \"postgres\"\ndsn = \"" + dsn + "\"\n"
}

// TestPlatformServeOnPostgres runs `platform serve` on a database of its own: it
// migrates on start, serves, stops on SIGTERM and finds its data again after a restart;
// the data_dir gets no bolt file.
func TestPlatformServeOnPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	path, base, dataDir := platformTestConfig(t, postgresConfig(dsn))
	for round := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		_, done := runPlatformCLI(ctx, path)
		waitHealthy(t, base, done)
		method, body := "PUT", `{"name":"Main St","timezone":"UTC","currency":"USD"}`
		if round == 1 {
			method, body = "GET", ""
		}
		req, _ := http.NewRequest(method, base+"/v1/stores/S001", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer admin-token-for-platform-tests-0123")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("round %d: %s store: status %d", round, method, res.StatusCode)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("platform serve returned %v after a stop; want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("platform serve did not stop within 5 s")
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "platform.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a bolt file was made with the postgres driver: %v", err)
	}
}

func TestPlatformServePostgresUnreachable(t *testing.T) {
	path, _, _ := platformTestConfig(t, postgresConfig("postgres://tk:pw-secret@127.0.0.1:1/tillkeep?connect_timeout=2"))
	stderr, done := runPlatformCLI(context.Background(), path)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), `database "tillkeep"`) {
			t.Fatalf("serve with an unreachable database: %v", err)
		}
		if strings.Contains(err.Error(), "pw-secret") || strings.Contains(stderr.String(), "pw-secret") {
			t.Fatalf("the password leaked: %v\n%s", err, stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("platform serve with an unreachable database did not exit")
	}
}

func runMigrateCLI(t *testing.T, configPath string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"platform", "migrate", "--config", configPath})
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

func TestPlatformMigrate(t *testing.T) {
	boltPath, _, _ := platformTestConfig(t, "")
	_, err := runMigrateCLI(t, boltPath)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitBadPlatformConfig || !strings.Contains(err.Error(), "bolt") {
		t.Fatalf("migrate with the bolt driver: %v", err)
	}

	path, _, _ := platformTestConfig(t, postgresConfig(pgtest.NewDatabase(t)))
	out, err := runMigrateCLI(t, path)
	if err != nil || !strings.Contains(out, "applied 0001_init.sql") {
		t.Fatalf("first migrate: %v\n%s", err, out)
	}
	out, err = runMigrateCLI(t, path)
	if err != nil || !strings.Contains(out, "schema is up to date") {
		t.Fatalf("second migrate: %v\n%s", err, out)
	}
}
