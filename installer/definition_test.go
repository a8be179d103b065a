package installer

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kardianos/service"
)

func agentSpec() Spec {
	return Spec{
		Role:       RoleAgent,
		Executable: "/usr/bin/tillkeep",
		ConfigPath: "/etc/tillkeep/agent.toml",
		DataDir:    "/var/lib/tillkeep/agent",
		User:       "tillkeep",
	}
}

func TestSystemdUnitRunsTheRoleWithAbsolutePaths(t *testing.T) {
	unit, err := agentSpec().SystemdUnit()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ExecStart=/usr/bin/tillkeep agent run --config /etc/tillkeep/agent.toml\n",
		"Restart=always\n",
		"RestartSec=2s\n",
		"StartLimitIntervalSec=0\n",
		"After=network-online.target\n",
		"Wants=network-online.target\n",
		"User=tillkeep\n",
		"NoNewPrivileges=yes\n",
		"ProtectSystem=full\n",
		"PrivateTmp=yes\n",
		"StateDirectory=tillkeep/agent\n",
		"StateDirectoryMode=0700\n",
		"EnvironmentFile=-/etc/tillkeep/agent.env\n",
		"WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if strings.Contains(unit, "RestartSec=120") {
		t.Errorf("unit keeps kardianos' 120 s restart delay:\n%s", unit)
	}

	p := agentSpec()
	p.Role = RolePlatform
	p.ConfigPath = "/etc/tillkeep/platform.toml"
	unit, err = p.SystemdUnit()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(unit, "ExecStart=/usr/bin/tillkeep platform serve --config /etc/tillkeep/platform.toml\n") {
		t.Errorf("platform unit does not run platform serve:\n%s", unit)
	}
}

func TestSystemdUnitKeepsWhatTheDaemonNeedsVisible(t *testing.T) {
	s := agentSpec()
	s.User = ""
	s.DataDir = "/srv/till data/agent"
	s.ConfigPath = "/tmp/cfg 100%/agent.toml"
	unit, err := s.SystemdUnit()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		// A data_dir outside /var/lib cannot be a StateDirectory.
		`ReadWritePaths="/srv/till data/agent"` + "\n",
		// Specifiers are escaped and words with spaces quoted.
		`--config "/tmp/cfg 100%%/agent.toml"` + "\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	for _, unwanted := range []string{"PrivateTmp=", "User=", "StateDirectory="} {
		if strings.Contains(unit, unwanted) {
			t.Errorf("unit has %q although the config lives in /tmp or no user was given:\n%s", unwanted, unit)
		}
	}

	s = agentSpec()
	s.DataDir = "/home/pos/tillkeep"
	unit, _ = s.SystemdUnit()
	if strings.Contains(unit, "ProtectHome=") {
		t.Errorf("unit protects /home although data_dir is there:\n%s", unit)
	}
}

func TestSystemdExecQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/tillkeep": "/usr/bin/tillkeep",
		"/opt/a b":          `"/opt/a b"`,
		"/opt/$HOME":        `/opt/$$HOME`,
		"/opt/50%":          `/opt/50%%`,
		`/opt/"q"\x`:        `"/opt/\"q\"\\x"`,
	} {
		if got := systemdExecQuote(in); got != want {
			t.Errorf("systemdExecQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestSpecRefusesWhatCannotBeWrittenSafely(t *testing.T) {
	for name, mutate := range map[string]func(*Spec){
		"relative config":  func(s *Spec) { s.ConfigPath = "agent.toml" },
		"relative binary":  func(s *Spec) { s.Executable = "tillkeep" },
		"empty data dir":   func(s *Spec) { s.DataDir = "" },
		"newline in path":  func(s *Spec) { s.ConfigPath = "/etc/a\nExecStartPre=/bin/rm" },
		"template action":  func(s *Spec) { s.DataDir = "/var/lib/{{Path}}" },
		"unknown role":     func(s *Spec) { s.Role = "till" },
		"shell in user":    func(s *Spec) { s.User = "x;rm" },
		"upper-case user ": func(s *Spec) { s.User = "Root" },
	} {
		s := agentSpec()
		mutate(&s)
		if _, err := s.SystemdUnit(); err == nil {
			t.Errorf("%s: SystemdUnit accepted %+v", name, s)
		}
		if _, err := s.SysVScript(); err == nil {
			t.Errorf("%s: SysVScript accepted %+v", name, s)
		}
	}
}

// The SysV script is handed to kardianos as a template: it must hold no action, so
// that what is written is exactly what was rendered, and it must be valid sh.
func TestSysVScriptIsPlainValidShell(t *testing.T) {
	s := agentSpec()
	s.ConfigPath = "/etc/till'keep/agent $HOME.toml"
	script, err := s.SysVScript()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(script, "{{") {
		t.Fatalf("script holds a template action:\n%s", script)
	}
	for _, want := range []string{
		`'/usr/bin/tillkeep' 'agent' 'run' '--config' '/etc/till'\''keep/agent $HOME.toml'`,
		"user='tillkeep'",
		"# Provides:          tillkeep-agent",
		`echo "Running"`,
		`echo "Stopped"`,
		"exit 3",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to syntax-check the script with")
	}
	cmd := exec.Command(sh, "-n")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v\n%s", err, out)
	}
}

func TestServiceConfigCarriesRestartPolicies(t *testing.T) {
	s := agentSpec()
	for _, tc := range []struct {
		platform string
		key      string
	}{
		{"linux-systemd", "SystemdScript"},
		{"unix-systemv", "SysvScript"},
	} {
		cfg, err := s.serviceConfig(fakeSystem(tc.platform))
		if err != nil {
			t.Fatal(err)
		}
		text, _ := cfg.Option[tc.key].(string)
		if text == "" {
			t.Fatalf("%s: option %s not set", tc.platform, tc.key)
		}
		if cfg.Name != "tillkeep-agent" || cfg.Executable != s.Executable {
			t.Errorf("%s: name %q executable %q", tc.platform, cfg.Name, cfg.Executable)
		}
		want := []string{"agent", "run", "--config", "/etc/tillkeep/agent.toml"}
		if strings.Join(cfg.Arguments, " ") != strings.Join(want, " ") {
			t.Errorf("%s: arguments %q, want %q", tc.platform, cfg.Arguments, want)
		}
	}
	switch runtime.GOOS {
	case "windows":
		cfg, _ := s.serviceConfig(fakeSystem("windows-service"))
		if cfg.Option["OnFailure"] != "restart" || cfg.Option["OnFailureDelayDuration"] != "5s" {
			t.Errorf("windows recovery options: %v", cfg.Option)
		}
	case "darwin":
		cfg, _ := s.serviceConfig(fakeSystem("darwin-launchd"))
		if cfg.Option["KeepAlive"] != true || cfg.Option["RunAtLoad"] != true {
			t.Errorf("launchd options: %v", cfg.Option)
		}
	}
}

type fakeSystem string

func (f fakeSystem) String() string                                                { return string(f) }
func (fakeSystem) Detect() bool                                                    { return true }
func (fakeSystem) Interactive() bool                                               { return true }
func (fakeSystem) New(service.Interface, *service.Config) (service.Service, error) { return nil, nil }

// The unit the installer writes must pass systemd's own checker. The binary named in
// ExecStart must exist, so the test binary stands in for tillkeep.
func TestSystemdUnitPassesSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (install the systemd package to run this check)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(cfg, []byte("# placeholder\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Spec{
		"state directory": {Role: RoleAgent, Executable: exe, ConfigPath: cfg, DataDir: "/var/lib/tillkeep/agent", User: "tillkeep"},
		"read-write path": {Role: RolePlatform, Executable: exe, ConfigPath: cfg, DataDir: filepath.Join(dir, "data dir")},
		"package":         {Role: RoleAgent, Executable: exe, ConfigPath: "/etc/tillkeep/agent.toml", DataDir: "/var/lib/tillkeep/agent", User: "tillkeep"},
	} {
		t.Run(name, func(t *testing.T) {
			unit, err := s.SystemdUnit()
			if err != nil {
				t.Fatal(err)
			}
			unitDir := t.TempDir()
			path := filepath.Join(unitDir, s.Role.ServiceName()+".service")
			if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(analyze, "verify", path)
			var stderr bytes.Buffer
			cmd.Stdout = &stderr
			cmd.Stderr = &stderr
			err = cmd.Run()
			// verify exits 0 on unknown keys and only prints them: any complaint that
			// names our unit is a failure too.
			if err != nil || strings.Contains(stderr.String(), filepath.Base(path)) {
				t.Fatalf("systemd-analyze verify %s: %v\n%s\nunit:\n%s", path, err, stderr.String(), unit)
			}
		})
	}
}
