package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// configRunCaptured runs the command line like main does and returns what it printed. It
// swaps os.Stdout and os.Stderr, so the tests that use it must not be parallel.
func configRunCaptured(t *testing.T, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outW, errW
	outC, errC := configDrainPipe(outR), configDrainPipe(errR)
	runErr := run(context.Background(), args)
	os.Stdout, os.Stderr = oldOut, oldErr
	outW.Close()
	errW.Close()
	stdout, stderr = <-outC, <-errC
	if runErr != nil {
		// main prints the error on stderr and exits with its code; do the same.
		stderr += "tillkeep: " + runErr.Error() + "\n"
		exitCode = 1
		var ee *exitError
		if errors.As(runErr, &ee) {
			exitCode = ee.code
		}
	}
	return stdout, stderr, exitCode
}

func configDrainPipe(r *os.File) <-chan string {
	c := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		r.Close()
		c <- string(b)
	}()
	return c
}

func configWriteFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	configGoodAgent = `pos_token = "pos-token-for-tests-0123456789"
store_id  = "S001"
till_id   = "T01"
`
	configGoodPlatform = `admin_token  = "admin-token-for-tests-0123456789"
enroll_token = "enroll-token-for-tests-0123456789"
`
)

func TestConfigCheckGoodFiles(t *testing.T) {
	for role, text := range map[string]string{"agent": configGoodAgent, "platform": configGoodPlatform} {
		path := configWriteFile(t, role+".toml", text)
		stdout, stderr, code := configRunCaptured(t, "config", "check", "--role", role, "--config", path)
		if code != 0 || stdout != path+": ok\n" || stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 0 and %q", role, code, stdout, stderr, path+": ok\n")
		}
	}
}

func TestConfigCheckBrokenFiles(t *testing.T) {
	cases := []struct {
		name, role, text, want string
	}{
		{"unknown nested key", "agent", configGoodAgent + "[offline]\nmax_catalog_agee = \"72h\"\n", ":5: key offline.max_catalog_agee: unknown key"},
		{"bad duration", "agent", configGoodAgent + "[platform]\ntimeout = \"800 ms\"\n", ":5: key platform.timeout: invalid duration"},
		{"bad cron spec", "agent", configGoodAgent + "[sync]\nschedule = \"every 15s\"\n", ":5: key sync.schedule: invalid cron spec"},
		{"wrong type", "platform", configGoodPlatform + "[reconcile]\nauto_revoke = \"yes\"\n", ":4: key reconcile.auto_revoke: expected true or false"},
		{"bad driver", "platform", configGoodPlatform + "[storage]\ndriver = \"mysql\"\n", ":4: key storage.driver: must be \"bolt\" or \"postgres\""},
		{"missing required", "agent", "store_id = \"S001\"\ntill_id = \"T01\"\n", ": key pos_token: is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := configWriteFile(t, tc.role+".toml", tc.text)
			stdout, stderr, code := configRunCaptured(t, "config", "check", "--role", tc.role, "--config", path)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if !strings.Contains(stderr, path+tc.want) {
				t.Errorf("stderr %q does not contain %q", stderr, path+tc.want)
			}
		})
	}
}

func TestConfigCheckWarnings(t *testing.T) {
	path := configWriteFile(t, "agent.toml", configGoodAgent)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := configRunCaptured(t, "config", "check", "--role", "agent", "--config", path)
	want := "warning: " + path + " is readable by other users and holds secrets: chmod o-r " + path + " (or chmod 600)\n"
	if code != 0 || stdout != path+": ok\n" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 0, ok and %q", code, stdout, stderr, want)
	}
}

func TestConfigCheckUsageErrors(t *testing.T) {
	path := configWriteFile(t, "agent.toml", configGoodAgent)
	cases := map[string][]string{
		"no role":      {"config", "check", "--config", path},
		"bad role":     {"config", "check", "--role", "till", "--config", path},
		"no file":      {"config", "check", "--role", "agent"},
		"missing file": {"config", "check", "--role", "agent", "--config", filepath.Join(t.TempDir(), "nope.toml")},
		"wrong role":   {"config", "check", "--role", "platform", "--config", path},
	}
	for name, args := range cases {
		if _, stderr, code := configRunCaptured(t, args...); code != 2 || stderr == "" {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 with a message", name, code, stderr)
		}
	}
}

func TestConfigCheckShippedExamples(t *testing.T) {
	for _, role := range []string{"agent", "platform"} {
		path := filepath.Join("..", "..", "configs", role+".toml")
		stdout, stderr, code := configRunCaptured(t, "config", "check", "--role", role, "--config", path)
		if code != 0 || stdout != path+": ok\n" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", path, code, stdout, stderr)
		}
	}
}

func TestConfigShowRedacts(t *testing.T) {
	path := configWriteFile(t, "platform.toml", configGoodPlatform+"[storage]\ndriver = \"postgres\"\ndsn = \"postgres://tk:pw-secret@db/tk\"\n")
	stdout, stderr, code := configRunCaptured(t, "config", "show", "--role", "platform", "--config", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, secret := range []string{"admin-token-for-tests", "enroll-token-for-tests", "pw-secret"} {
		if strings.Contains(stdout, secret) {
			t.Errorf("config show printed a secret %q:\n%s", secret, stdout)
		}
	}
	for _, want := range []string{"admin_token = 'REDACTED'", "max_clock_skew = '5m0s'", "auto_revoke = true", "listen = '127.0.0.1:8080'"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("config show output lacks %q:\n%s", want, stdout)
		}
	}
}
