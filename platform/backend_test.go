package platform_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/boltstore"
	"github.com/tillkeep/tillkeep/platform/pgstore/pgtest"
)

// envTestBackend chooses the storage the platform's tests run on: "bolt" (the
// default) or "postgres" (a fresh database per test on the local server, see pgtest).
const envTestBackend = "TILLKEEP_TEST_BACKEND"

// backend opens the storage of a test environment. path is what names one
// environment's storage across a restart: a bolt file, or a PostgreSQL DSN.
type backend struct {
	name    string
	newPath func(tb testing.TB) string
	open    func(tb testing.TB, path string) platform.Storage
	close   func(tb testing.TB, st platform.Storage)
}

var testBackend = chooseBackend(os.Getenv(envTestBackend))

func chooseBackend(name string) backend {
	switch name {
	case "", "bolt":
		return backend{
			name:    "bolt",
			newPath: func(tb testing.TB) string { return filepath.Join(tb.TempDir(), boltstore.FileName) },
			open:    func(tb testing.TB, path string) platform.Storage { return boltstore.MustOpenPath(tb, path) },
			close:   func(tb testing.TB, st platform.Storage) { boltstore.MustClose(tb, st.(*boltstore.Store)) },
		}
	case "postgres":
		return backend{
			name:    "postgres",
			newPath: pgtest.NewDatabase,
			open:    func(tb testing.TB, dsn string) platform.Storage { return pgtest.OpenDSN(tb, dsn) },
			close: func(tb testing.TB, st platform.Storage) {
				if err := st.Close(); err != nil {
					tb.Errorf("close PostgreSQL store: %v", err)
				}
			},
		}
	}
	panic(fmt.Sprintf("%s=%q: want bolt or postgres", envTestBackend, name))
}

// TestPlatformOnPostgres runs this package's tests again, in a child process of the
// same test binary, on PostgreSQL: the API, ops flows, concurrency and feed tests hold
// for both backends in one `go test` run.
func TestPlatformOnPostgres(t *testing.T) {
	if testBackend.name == "postgres" {
		t.Skip("this process is the PostgreSQL run")
	}
	if testing.Short() {
		t.Skip("-short: the PostgreSQL run of the platform tests is left out")
	}
	pgtest.Require(t)
	// Every test, whatever -run chose this one: to run a few tests on PostgreSQL only,
	// set TILLKEEP_TEST_BACKEND=postgres instead.
	args := []string{"-test.run=^Test", "-test.skip=^TestPlatformOnPostgres$", "-test.count=1", "-test.timeout=10m"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), envTestBackend+"=postgres")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the platform tests failed on PostgreSQL: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("the platform tests on PostgreSQL:\n%s", out)
	}
}
