package installer

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	got := parseEnvFile([]byte(`# secrets of the till
TILLKEEP_POS_TOKEN=9f2c0123456789abcdef
export TILLKEEP_PLATFORM_ENROLL_TOKEN="enroll 0123456789abcdef"
; another comment
TILLKEEP_LOG_LEVEL = 'debug'

not an assignment
`))
	want := map[string]string{
		"TILLKEEP_POS_TOKEN":             "9f2c0123456789abcdef",
		"TILLKEEP_PLATFORM_ENROLL_TOKEN": "enroll 0123456789abcdef",
		"TILLKEEP_LOG_LEVEL":             "debug",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseEnvFile = %v, want %v", got, want)
	}
}

func TestParseDropInEnvironment(t *testing.T) {
	got := parseDropInEnvironment([]byte(`[Service]
Environment=TILLKEEP_POS_TOKEN=9f2c0123456789abcdef
Environment="TILLKEEP_STORE_ID=S001" TILLKEEP_TILL_ID=T01
Environment="TILLKEEP_LOG_FORMAT=json format"
ExecStart=
`))
	want := map[string]string{
		"TILLKEEP_POS_TOKEN":  "9f2c0123456789abcdef",
		"TILLKEEP_STORE_ID":   "S001",
		"TILLKEEP_TILL_ID":    "T01",
		"TILLKEEP_LOG_FORMAT": "json format",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseDropInEnvironment = %v, want %v", got, want)
	}
}

// install checks the config with the environment the service will have: the role's env
// file, not the variables of the shell that runs install.
func TestCheckConfigWithTheServiceEnvironment(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("env files are read on Linux only")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(cfg, []byte("store_id = \"S001\"\ntill_id = \"T01\"\ndata_dir = \"data\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TILLKEEP_POS_TOKEN", "from-the-shell-0123456789")
	if _, _, err := CheckConfig(RoleAgent, cfg, nil); err != nil {
		t.Fatalf("config check with the shell's token: %v", err)
	}
	_, _, err := CheckConfig(RoleAgent, cfg, serviceEnv(RoleAgent, cfg))
	if err == nil || !strings.Contains(err.Error(), "pos_token") {
		t.Fatalf("the service would have no pos_token, but the check says %v", err)
	}
	if err := os.WriteFile(RoleAgent.EnvFile(cfg), []byte("TILLKEEP_POS_TOKEN=from-the-env-file-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir, _, err := CheckConfig(RoleAgent, cfg, serviceEnv(RoleAgent, cfg))
	if err != nil {
		t.Fatalf("config check with the env file's token: %v", err)
	}
	if dataDir != filepath.Join(dir, "data") {
		t.Errorf("data_dir = %q, want it resolved next to the config", dataDir)
	}
}

func TestResolveSpec(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux service users")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.toml")
	text := "pos_token = \"pos-token-0123456789abcdef\"\nstore_id = \"S001\"\ntill_id = \"T01\"\ndata_dir = \"/var/lib/tillkeep-test/agent\"\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(mustGetwd(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	spec, _, _, err := resolveSpec(RoleAgent, rel, InstallOptions{Executable: "/bin/sh", User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{Role: RoleAgent, Executable: spec.Executable, ConfigPath: cfg, DataDir: "/var/lib/tillkeep-test/agent"}
	if spec != want {
		t.Errorf("spec = %+v, want %+v", spec, want)
	}
	if !filepath.IsAbs(spec.Executable) {
		t.Errorf("executable %q is not absolute", spec.Executable)
	}
	if _, _, _, err := resolveSpec(RoleAgent, cfg, InstallOptions{User: "no-such-user-tillkeep"}); err == nil {
		t.Error("an unknown --user was accepted")
	}
	_, _, _, err = resolveSpec(RoleAgent, filepath.Join(dir, "missing.toml"), InstallOptions{})
	var cfgErr *ConfigError
	if !errors.As(err, &cfgErr) {
		t.Errorf("a missing config gave %v, want a *ConfigError", err)
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
