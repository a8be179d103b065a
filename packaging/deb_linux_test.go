package packaging

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serviceTestLock serialises the tests of this repository that install a tillkeep-agent
// service or package on the machine (here and in cmd/tillkeep): they would fight over
// the same service name and files.
func serviceTestLock(t *testing.T) {
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

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

type owned struct {
	mode        fs.FileMode
	user, group string
}

func ownership(t *testing.T, path string) owned {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	o := owned{mode: fi.Mode().Perm(), user: strconv.Itoa(int(st.Uid)), group: strconv.Itoa(int(st.Gid))}
	if u, err := user.LookupId(o.user); err == nil {
		o.user = u.Username
	}
	if g, err := user.LookupGroupId(o.group); err == nil {
		o.group = g.Name
	}
	return o
}

func expectOwned(t *testing.T, path string, want owned) {
	t.Helper()
	if got := ownership(t, path); got != want {
		t.Errorf("%s: mode %o %s:%s, want mode %o %s:%s", path, got.mode, got.user, got.group, want.mode, want.user, want.group)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// TestDebInstallUpgradePurge builds the agent .deb with scripts/package.sh (as `make
// package` does, for this machine's architecture only), installs it with dpkg, checks
// files, user and permissions, upgrades it over an edited config and a ledger, removes
// and purges it, and checks what each step keeps.
func TestDebInstallUpgradePurge(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the .deb test runs on Linux CI only")
	}
	if os.Geteuid() != 0 {
		t.Skip("installing a .deb with dpkg needs root; run `make test` as root (CI does)")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg is not installed: not a Debian-like machine")
	}
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("packages are built for amd64 and arm64, not %s", runtime.GOARCH)
	}
	serviceTestLock(t)
	for _, pkg := range []string{"tillkeep-agent", "tillkeep-platform"} {
		out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", pkg).Output()
		if strings.Contains(string(out), "installed") {
			t.Skipf("%s is installed on this machine (%s); not touching it", pkg, out)
		}
	}
	if exists("/usr/bin/tillkeep") || exists("/etc/tillkeep") || exists("/var/lib/tillkeep") {
		t.Skip("/usr/bin/tillkeep, /etc/tillkeep or /var/lib/tillkeep exists already; not touching this machine's tillkeep")
	}
	_, lookupErr := user.Lookup("tillkeep")
	userExisted := lookupErr == nil
	backupsBefore, _ := filepath.Glob("/var/backups/tillkeep-agent-*")

	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "../scripts/package.sh")
	build.Env = append(os.Environ(), "OUT="+out, "ROLES=agent", "ARCHES="+runtime.GOARCH, "FORMATS=deb", "EXTRAS=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/package.sh: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "tillkeep-agent_*_linux_"+runtime.GOARCH+".deb"))
	if len(debs) != 1 {
		t.Fatalf("package.sh made %v, want one agent .deb", debs)
	}
	deb := debs[0]

	t.Cleanup(func() {
		_ = exec.Command("dpkg", "--purge", "tillkeep-agent").Run()
		if !userExisted {
			_ = exec.Command("userdel", "tillkeep").Run()
			_ = exec.Command("groupdel", "tillkeep").Run()
		}
		after, _ := filepath.Glob("/var/backups/tillkeep-agent-*")
		for _, p := range after {
			if !contains(backupsBefore, p) {
				_ = os.RemoveAll(p)
			}
		}
	})

	// --- install ---
	t.Logf("dpkg -i:\n%s", run(t, "dpkg", "-i", deb))
	expectOwned(t, "/usr/bin/tillkeep", owned{0o755, "root", "root"})
	if v := run(t, "/usr/bin/tillkeep", "version"); !strings.HasPrefix(v, "tillkeep ") {
		t.Errorf("tillkeep version printed %q", v)
	}
	expectOwned(t, "/etc/tillkeep", owned{0o750, "root", "tillkeep"})
	expectOwned(t, "/etc/tillkeep/agent.toml", owned{0o640, "root", "tillkeep"})
	expectOwned(t, "/var/lib/tillkeep", owned{0o700, "tillkeep", "tillkeep"})
	expectOwned(t, "/var/lib/tillkeep/agent", owned{0o700, "tillkeep", "tillkeep"})
	expectOwned(t, "/usr/lib/systemd/system/tillkeep-agent.service", owned{0o644, "root", "root"})
	sameFile(t, "/usr/lib/systemd/system/tillkeep-agent.service", "systemd/tillkeep-agent.service")
	sameFile(t, "/etc/tillkeep/agent.toml", "../configs/agent.toml")
	if conf := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "tillkeep-agent"); !strings.Contains(conf, "/etc/tillkeep/agent.toml") {
		t.Errorf("agent.toml is not a conffile: %q", conf)
	}

	u, err := user.Lookup("tillkeep")
	if err != nil {
		t.Fatalf("the package did not create the user tillkeep: %v", err)
	}
	if uid, _ := strconv.Atoi(u.Uid); uid <= 0 || uid >= 1000 {
		t.Errorf("tillkeep has uid %d, want a system uid (1-999)", uid)
	}
	if u.HomeDir != "/var/lib/tillkeep" {
		t.Errorf("tillkeep's home is %s, want /var/lib/tillkeep", u.HomeDir)
	}
	passwd := run(t, "getent", "passwd", "tillkeep")
	if shell := strings.TrimSpace(passwd[strings.LastIndexByte(passwd, ':')+1:]); !strings.HasSuffix(shell, "nologin") && shell != "/bin/false" {
		t.Errorf("tillkeep's shell is %q, want nologin", shell)
	}
	// The example config must pass the check the service runs at start (placeholders
	// only draw warnings).
	check := exec.Command("/usr/bin/tillkeep", "config", "check", "--role", "agent", "--config", "/etc/tillkeep/agent.toml")
	if b, err := check.CombinedOutput(); err != nil {
		t.Errorf("config check of the packaged config: %v\n%s", err, b)
	}

	// --- upgrade over an edited config and a ledger ---
	edited := append(readFile(t, "/etc/tillkeep/agent.toml"), []byte("# edited by store IT\n")...)
	if err := os.WriteFile("/etc/tillkeep/agent.toml", edited, 0o640); err != nil {
		t.Fatal(err)
	}
	ledger := "/var/lib/tillkeep/agent/ledger.db"
	if err := os.WriteFile(ledger, []byte("pending redemptions"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("dpkg -i (upgrade):\n%s", run(t, "dpkg", "-i", "--force-confold", deb))
	if got := readFile(t, "/etc/tillkeep/agent.toml"); !bytes.Equal(got, edited) {
		t.Errorf("the upgrade replaced the edited config")
	}
	if got := readFile(t, ledger); string(got) != "pending redemptions" {
		t.Errorf("the upgrade changed the ledger: %q", got)
	}

	// --- remove: binary and unit go, config, data and user stay ---
	t.Logf("dpkg -r:\n%s", run(t, "dpkg", "-r", "tillkeep-agent"))
	for _, gone := range []string{"/usr/bin/tillkeep", "/usr/lib/systemd/system/tillkeep-agent.service"} {
		if exists(gone) {
			t.Errorf("%s survived dpkg -r", gone)
		}
	}
	for _, kept := range []string{"/etc/tillkeep/agent.toml", ledger} {
		if !exists(kept) {
			t.Errorf("%s was removed by dpkg -r; only a purge may remove it", kept)
		}
	}

	// --- purge: config and data go, after a copy of the data is saved ---
	purge := run(t, "dpkg", "--purge", "tillkeep-agent")
	t.Logf("dpkg --purge:\n%s", purge)
	for _, gone := range []string{"/etc/tillkeep", "/var/lib/tillkeep"} {
		if exists(gone) {
			t.Errorf("%s survived the purge", gone)
		}
	}
	var saved []string
	after, _ := filepath.Glob("/var/backups/tillkeep-agent-*")
	for _, p := range after {
		if !contains(backupsBefore, p) {
			saved = append(saved, p)
		}
	}
	if len(saved) != 1 {
		t.Fatalf("the purge saved %v, want one copy of the data in /var/backups", saved)
	}
	if got := readFile(t, filepath.Join(saved[0], "ledger.db")); string(got) != "pending redemptions" {
		t.Errorf("the saved ledger holds %q", got)
	}
	expectOwned(t, saved[0], owned{0o700, "tillkeep", "tillkeep"})
	if !strings.Contains(purge, saved[0]) {
		t.Errorf("the purge did not say where it saved the data:\n%s", purge)
	}
	if _, err := user.Lookup("tillkeep"); err != nil {
		t.Errorf("the purge removed the user tillkeep (it owns the saved copy): %v", err)
	}
	if st, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "tillkeep-agent").Output(); strings.Contains(string(st), "installed") {
		t.Errorf("dpkg still lists tillkeep-agent: %s", st)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sameFile(t *testing.T, installed, source string) {
	t.Helper()
	a, b := readFile(t, installed), readFile(t, source)
	if !bytes.Equal(a, b) {
		t.Errorf("%s differs from %s", installed, source)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
