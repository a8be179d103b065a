package installer

import (
	"fmt"
	"path/filepath"
	"runtime"
)

// Role is which of the two daemons a service runs.
type Role string

// The two roles. Their strings are what `--role` accepts (../shared/CONTRACT.md).
const (
	RoleAgent    Role = "agent"
	RolePlatform Role = "platform"
)

// ParseRole reads a --role value.
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleAgent, RolePlatform:
		return Role(s), nil
	case "":
		return "", fmt.Errorf("--role is required: agent or platform")
	}
	return "", fmt.Errorf("unknown role %q: want agent or platform", s)
}

// ServiceName is the name the service manager knows the service by: tillkeep-agent or
// tillkeep-platform. Packages, docs and monitoring rely on it; never change it.
func (r Role) ServiceName() string { return "tillkeep-" + string(r) }

// DisplayName is the short human name shown by the service manager.
func (r Role) DisplayName() string {
	if r == RolePlatform {
		return "tillkeep platform"
	}
	return "tillkeep agent"
}

// Description is the one-line description shown by the service manager.
func (r Role) Description() string {
	if r == RolePlatform {
		return "tillkeep central platform: offers, coupons, online redemption, ingest and reconciliation of till journals"
	}
	return "tillkeep till agent: redeems coupons for the POS, online or offline within limits, and syncs with the platform"
}

// RunArgs are the arguments the service manager starts the binary with: the foreground
// command of the role, with the absolute path of the config file.
func (r Role) RunArgs(configPath string) []string {
	if r == RolePlatform {
		return []string{"platform", "serve", "--config", configPath}
	}
	return []string{"agent", "run", "--config", configPath}
}

// EnvFile is an optional file of TILLKEEP_* variables the service reads on Linux, so
// that secrets can stay out of the TOML file (for example
// /etc/tillkeep/agent.env holding TILLKEEP_POS_TOKEN=...). It sits next to the config.
func (r Role) EnvFile(configPath string) string {
	return filepath.Join(filepath.Dir(configPath), string(r)+".env")
}

// DefaultUser is the dedicated system account the Linux packages create.
const DefaultUser = "tillkeep"

// logHint says where to look when a service does not come up.
func logHint(platform, name string) string {
	switch platform {
	case "linux-systemd":
		return "journalctl -u " + name
	case "unix-systemv":
		return "/var/log/" + name + ".log"
	case "darwin-launchd":
		return "log show --predicate 'process == \"tillkeep\"' --last 10m"
	}
	if runtime.GOOS == "windows" {
		return "the Windows event log (Application, source " + name + ")"
	}
	return "the system log"
}
