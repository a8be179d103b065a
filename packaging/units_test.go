package packaging

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/tillkeep/tillkeep/installer"
)

var update = flag.Bool("update", false, "rewrite packaging/systemd/*.service from the installer")

// packagedSpec is the service of a package install: the binary in /usr/bin, the config
// in /etc/tillkeep, the data in /var/lib/tillkeep, run as the tillkeep user.
func packagedSpec(role installer.Role) installer.Spec {
	return installer.Spec{
		Role:       role,
		Executable: "/usr/bin/tillkeep",
		ConfigPath: "/etc/tillkeep/" + string(role) + ".toml",
		DataDir:    "/var/lib/tillkeep/" + string(role),
		User:       installer.DefaultUser,
	}
}

// The packages ship the very unit `tillkeep service install` would write for the
// package's paths, so both ways of installing behave the same. Regenerate with
// `go test ./packaging -run TestPackagedUnits -update`.
func TestPackagedUnitsMatchInstaller(t *testing.T) {
	for _, role := range []installer.Role{installer.RoleAgent, installer.RolePlatform} {
		want, err := packagedSpec(role).SystemdUnit()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("systemd", role.ServiceName()+".service")
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s differs from what the installer writes; run go test ./packaging -run TestPackagedUnits -update\n--- file\n%s\n--- installer\n%s", path, got, want)
		}
	}
}
