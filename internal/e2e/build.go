package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModulePath is the module whose binary the harness builds.
const ModulePath = "github.com/tillkeep/tillkeep"

// ModuleRoot finds the directory of tillkeep's go.mod, walking up from the working
// directory (a test runs in its package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	for {
		if isTillkeepModule(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the module root: no go.mod of " + ModulePath + " above the working directory")
		}
		dir = parent
	}
}

func isTillkeepModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(name), `"`) == ModulePath
		}
	}
	return false
}

// Build compiles ./cmd/tillkeep of the module at root into out, statically and without
// the race detector whatever the caller runs under: the end-to-end tests exercise the
// product as shipped, and a race-instrumented daemon would be several times slower on
// a shared machine. The go command is taken from $GO, else from PATH.
func Build(ctx context.Context, root, out string) error {
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-o", out, "./cmd/tillkeep")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/tillkeep in %s: %w\n%s", root, err, output)
	}
	return nil
}
