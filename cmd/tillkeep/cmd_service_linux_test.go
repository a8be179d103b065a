//go:build linux

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/kardianos/service"
)

// svcTestLock serialises the tests of this repository that install a
// tillkeep-agent service or package on the machine (here and in packaging/): they
// would fight over the same service name.
func svcTestLock(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "tillkeep-service-tests.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	})
}

// svcRequireManager skips unless the test may install services here: root on
// Linux, with systemd as PID 1 or SysV init scripts run through service(8).
func svcRequireManager(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the service lifecycle test runs on Linux CI only")
	}
	if os.Geteuid() != 0 {
		t.Skip("installing a system service needs root; run `make test` as root (CI does)")
	}
	sys := service.ChosenSystem()
	if sys == nil {
		t.Skip("kardianos/service detects no init system on this machine")
	}
	switch sys.String() {
	case "linux-systemd":
		if _, err := os.Stat("/run/systemd/system"); err != nil {
			t.Skip("systemctl is installed but systemd is not running as PID 1")
		}
	case "unix-systemv":
		if _, err := exec.LookPath("service"); err != nil {
			t.Skip("SysV init without service(8): kardianos cannot control services here")
		}
	default:
		t.Skipf("init system %s is not one this test knows how to clean up after", sys.String())
	}
	return sys.String()
}

func TestServiceLifecycle(t *testing.T) {
	platform := svcRequireManager(t)
	svcTestLock(t)
	bin := svcBinary(t)

	if st := svcRunCLI(t, bin, "service", "status", "--role", "agent"); st.code != 0 || strings.TrimSpace(st.stdout) != "not-installed" {
		t.Skipf("a tillkeep-agent service already exists on this machine (status %q, exit %d); not touching it", st.stdout, st.code)
	}
	logFile := "/var/log/tillkeep-agent.log"
	_, logErr := os.Stat(logFile)
	hadLog := logErr == nil

	dir := t.TempDir()
	cfg, baseURL := svcWriteAgentConfig(t, dir)
	showLog := func() {
		if platform == "unix-systemv" {
			if b, err := os.ReadFile(logFile); err == nil {
				t.Logf("%s:\n%s", logFile, b)
			}
		} else if out, err := exec.Command("journalctl", "-u", "tillkeep-agent", "-n", "50", "--no-pager").CombinedOutput(); err == nil {
			t.Logf("journal:\n%s", out)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			showLog()
		}
		// Whatever happened, leave no service behind.
		if res := svcRunCLI(t, bin, "service", "uninstall", "--role", "agent", "--config", cfg); res.code != 0 {
			t.Errorf("cleanup: service uninstall: exit %d: %s", res.code, res.stderr)
		}
		if !hadLog {
			_ = os.Remove(logFile)
		}
	})

	status := func() string {
		t.Helper()
		res := svcRunCLI(t, bin, "service", "status", "--role", "agent", "--config", cfg)
		if res.code != 0 {
			t.Fatalf("service status: exit %d: %s", res.code, res.stderr)
		}
		return strings.TrimSpace(res.stdout)
	}
	do := func(action string) {
		t.Helper()
		res := svcRunCLI(t, bin, "service", action, "--role", "agent", "--config", cfg)
		if res.code != 0 {
			t.Fatalf("service %s: exit %d\nstdout: %s\nstderr: %s", action, res.code, res.stdout, res.stderr)
		}
	}

	// --user root: the temporary config and data live under root-only directories.
	res := svcRunCLI(t, bin, "service", "install", "--role", "agent", "--config", cfg, "--user", "root")
	if res.code != 0 {
		t.Fatalf("service install: exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	def := map[string]string{"linux-systemd": "/etc/systemd/system/tillkeep-agent.service", "unix-systemv": "/etc/init.d/tillkeep-agent"}[platform]
	text, err := os.ReadFile(def)
	if err != nil {
		t.Fatalf("install wrote no %s: %v", def, err)
	}
	if want := bin + " agent run --config " + cfg; !strings.Contains(strings.ReplaceAll(string(text), "'", ""), want) {
		t.Errorf("%s does not run %q:\n%s", def, want, text)
	}

	switch st := status(); st {
	case "stopped":
		if code, err := svcHealthz(baseURL); err == nil {
			t.Fatalf("status says stopped but /healthz answered %d", code)
		}
	case "running": // an init system that starts what is installed
		svcWaitHealthy(t, baseURL)
	default:
		t.Fatalf("status after install = %q, want stopped or running", st)
	}

	do("start")
	if st := status(); st != "running" {
		t.Fatalf("status after start = %q, want running", st)
	}
	svcWaitHealthy(t, baseURL)

	do("stop")
	if st := status(); st != "stopped" {
		t.Fatalf("status after stop = %q, want stopped", st)
	}
	svcAssertPortClosed(t, baseURL)

	do("restart")
	if st := status(); st != "running" {
		t.Fatalf("status after restart = %q, want running", st)
	}
	svcWaitHealthy(t, baseURL)

	do("uninstall")
	if st := status(); st != "not-installed" {
		t.Fatalf("status after uninstall = %q, want not-installed", st)
	}
	svcAssertPortClosed(t, baseURL)
	if _, err := os.Stat(def); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after uninstall (err %v)", def, err)
	}
	if links, _ := filepath.Glob("/etc/rc[0-6S].d/[SK][0-9][0-9]tillkeep-agent"); len(links) > 0 {
		t.Errorf("rc links left behind: %v", links)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Errorf("uninstall must keep data_dir: %v", err)
	}
}
