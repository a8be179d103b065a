package installer

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func nobody(t *testing.T) *account {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("handing files to another user needs root")
	}
	a, err := lookupAccount("nobody")
	if err != nil {
		t.Skipf("no user nobody to hand files to: %v", err)
	}
	return a
}

func owner(t *testing.T, path string) (uid int, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid), fi.Mode().Perm()
}

func TestPrepareDataDirHandsItToTheServiceUser(t *testing.T) {
	a := nobody(t)
	root := t.TempDir()
	// root-only: the service user cannot enter it.
	if err := os.Chmod(filepath.Dir(root), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o700); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(root, "tillkeep", "agent")
	err := prepareDataDir(dataDir, a)
	if err == nil || !strings.Contains(err.Error(), "cannot enter directory "+root) {
		t.Fatalf("prepareDataDir under a root-only directory = %v, want a refusal naming %s", err, root)
	}
	if _, err := os.Stat(filepath.Join(root, "tillkeep")); err == nil {
		t.Fatal("a refused prepareDataDir created directories")
	}

	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := prepareDataDir(dataDir, a); err != nil {
		t.Fatal(err)
	}
	// A ledger left by `agent run` as root is handed over by the next install.
	if err := os.WriteFile(filepath.Join(dataDir, "ledger.db"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := prepareDataDir(dataDir, a); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(root, "tillkeep"), dataDir, filepath.Join(dataDir, "ledger.db")} {
		uid, mode := owner(t, p)
		if uid != a.uid {
			t.Errorf("%s is owned by uid %d, want %d", p, uid, a.uid)
		}
		if p != filepath.Join(dataDir, "ledger.db") && mode != 0o700 {
			t.Errorf("%s has mode %o, want 0700", p, mode)
		}
	}
	if uid, _ := owner(t, root); uid != 0 {
		t.Errorf("prepareDataDir changed the owner of the existing %s", root)
	}
}

func TestCheckReadableByTheServiceUser(t *testing.T) {
	a := nobody(t)
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(cfg, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.checkReadable(cfg); err == nil || !strings.Contains(err.Error(), "chmod 0640") {
		t.Fatalf("a root-only config passed for nobody: %v", err)
	}
	if err := os.Chown(cfg, 0, a.gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := a.checkReadable(cfg); err != nil {
		t.Fatalf("root:%d 0640 refused for nobody: %v", a.gid, err)
	}
}
