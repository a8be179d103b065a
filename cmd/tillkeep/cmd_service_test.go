package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep/installer"
)

// svcBinary builds the real tillkeep binary (static, as `make build` does) into a
// directory of the test. The build cache makes every build after the first a link.
func svcBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	exe := filepath.Join(dir, "tillkeep")
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	cmd := exec.Command("go", "build", "-o", exe, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

type svcResult struct {
	code           int
	stdout, stderr string
}

func svcRunCLI(t *testing.T, bin string, args ...string) svcResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := svcResult{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("run %s %v: %v", bin, args, err)
	}
	return res
}

// svcFreePort returns a loopback port nobody listens on right now.
func svcFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// svcWriteAgentConfig writes a valid agent.toml with no platform url (the agent runs
// offline) and returns its path and the agent's base URL.
func svcWriteAgentConfig(t *testing.T, dir string) (path, baseURL string) {
	t.Helper()
	port := svcFreePort(t)
	path = filepath.Join(dir, "agent.toml")
	text := fmt.Sprintf(`listen    = "127.0.0.1:%d"
data_dir  = %q
pos_token = "pos-token-for-service-tests-0123456789"
store_id  = "S001"
till_id   = "T01"
`, port, filepath.Join(dir, "data"))
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, fmt.Sprintf("http://127.0.0.1:%d", port)
}

func svcHealthz(baseURL string) (int, error) {
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get(baseURL + "/healthz")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// svcWaitHealthy polls /healthz until it answers 200.
func svcWaitHealthy(t *testing.T, baseURL string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, err := svcHealthz(baseURL)
		if err == nil && code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s/healthz: status %d, err %v", baseURL, code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// svcAssertPortClosed checks nothing answers at baseURL any more.
func svcAssertPortClosed(t *testing.T, baseURL string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := svcHealthz(baseURL)
		if err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still answers after the service stopped", baseURL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// install runs the same validation as `config check`: a broken file is refused with
// exit status 2 naming the key and its line, and nothing is installed. It needs neither
// root nor an init system, because the config is checked first.
func TestServiceInstallRefusesBrokenConfig(t *testing.T) {
	bin := svcBinary(t)
	before := svcRunCLI(t, bin, "service", "status", "--role", "agent")

	dir := t.TempDir()
	cfg, _ := svcWriteAgentConfig(t, dir)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	broken := string(text) + "\n[offline]\nmax_catalog_age = \"three days\"\n"
	if err := os.WriteFile(cfg, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	res := svcRunCLI(t, bin, "service", "install", "--role", "agent", "--config", cfg)
	if res.code != 2 {
		t.Fatalf("install of a broken config: exit %d, want 2\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stderr, "offline.max_catalog_age") || !strings.Contains(res.stderr, ":8") {
		t.Errorf("the refusal does not name the key and its line:\n%s", res.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused install created data_dir (err %v)", err)
	}
	after := svcRunCLI(t, bin, "service", "status", "--role", "agent")
	if after.stdout != before.stdout {
		t.Errorf("status changed from %q to %q by a refused install", before.stdout, after.stdout)
	}

	missing := svcRunCLI(t, bin, "service", "install", "--role", "agent", "--config", filepath.Join(dir, "nope.toml"))
	if missing.code != 2 {
		t.Errorf("install of a missing config: exit %d, want 2: %s", missing.code, missing.stderr)
	}
}

func TestServiceCommandUsage(t *testing.T) {
	bin := svcBinary(t)
	for _, args := range [][]string{
		{"service", "status"},
		{"service", "status", "--role", "till"},
		{"service", "install", "--role", "agent"},
	} {
		if res := svcRunCLI(t, bin, args...); res.code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, res.code, res.stderr)
		}
	}
	if installer.RoleAgent.ServiceName() != "tillkeep-agent" || installer.RolePlatform.ServiceName() != "tillkeep-platform" {
		t.Error("service names changed: packages, docs and monitoring rely on them")
	}
}
