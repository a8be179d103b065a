package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// platformTestConfig writes platform.toml for a platform on a free loopback port.
func platformTestConfig(t *testing.T, extra string) (path, baseURL, dataDir string) {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dataDir = filepath.Join(dir, "data")
	path = filepath.Join(dir, "platform.toml")
	toml := fmt.Sprintf(`listen = %q
data_dir = %q
admin_token = "admin-token-for-platform-tests-0123"
enroll_token = "enroll-token-for-platform-tests-0123"
%s
[log]
level = "warn"
`, addr, dataDir, extra)
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, "http://" + addr, dataDir
}

// runPlatformCLI runs `tillkeep platform serve` in-process until ctx ends.
func runPlatformCLI(ctx context.Context, configPath string) (stderr *bytes.Buffer, done chan error) {
	root := newRootCmd()
	stderr = &bytes.Buffer{}
	root.SetOut(&bytes.Buffer{})
	root.SetErr(stderr)
	root.SetArgs([]string{"platform", "serve", "--config", configPath})
	done = make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	return stderr, done
}

func waitHealthy(t *testing.T, baseURL string, done chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("platform exited early: %v", err)
		default:
		}
		res, err := http.Get(baseURL + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("platform did not become healthy")
}

func TestPlatformServeStopsCleanlyAndKeepsState(t *testing.T) {
	path, base, dataDir := platformTestConfig(t, "")
	for round := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		_, done := runPlatformCLI(ctx, path)
		waitHealthy(t, base, done)

		req, _ := http.NewRequest("PUT", base+"/v1/stores/S001", strings.NewReader(`{"name":"Main St","timezone":"UTC","currency":"USD"}`))
		req.Header.Set("Authorization", "Bearer admin-token-for-platform-tests-0123")
		if round == 1 {
			req, _ = http.NewRequest("GET", base+"/v1/stores/S001", nil)
			req.Header.Set("Authorization", "Bearer admin-token-for-platform-tests-0123")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("round %d: status %d (state lost across a restart?)", round, res.StatusCode)
		}

		stopped := time.Now()
		cancel() // what SIGTERM does through main's signal context
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("platform serve returned %v after a stop; want nil (exit 0)", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("platform serve did not stop within 5 s")
		}
		t.Logf("round %d stopped in %v", round, time.Since(stopped))
	}
	fi, err := os.Stat(filepath.Join(dataDir, "platform.db"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("platform.db mode %v, want 0600", fi.Mode().Perm())
	}
}
