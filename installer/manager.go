package installer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kardianos/service"
)

// State is what `service status` prints.
type State string

// The three states of ../shared/CONTRACT.md.
const (
	StateRunning      State = "running"
	StateStopped      State = "stopped"
	StateNotInstalled State = "not-installed"
)

var (
	// ErrNotInstalled is returned by Start, Stop and Restart on a service that is not
	// installed.
	ErrNotInstalled = errors.New("service is not installed")
	// ErrAlreadyInstalled is returned by Install when the service exists already.
	ErrAlreadyInstalled = errors.New("service is already installed")
	// ErrNoServiceManager is returned when kardianos finds no supported init system.
	ErrNoServiceManager = errors.New("no supported service manager found on this machine")
)

// ConfigError is Install's refusal of a config file that fails `config check`.
type ConfigError struct {
	Path string
	Err  error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("config %s fails `config check`, nothing was installed:\n%v", e.Path, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// AutoUser selects the service user: DefaultUser on Linux when that account exists
// (the packages create it), root otherwise.
const AutoUser = "auto"

// How long Start and Stop wait for the service manager to report the new state.
const (
	startWait = 10 * time.Second
	stopWait  = 20 * time.Second
)

// Manager controls the service of one role.
type Manager struct {
	role Role
	// platform is kardianos' name of the init system: linux-systemd, unix-systemv,
	// darwin-launchd, windows-service, ...
	platform string
	svc      service.Service
}

// controlOnly is the service.Interface of a Manager: a Manager installs and controls
// the service but never runs the daemon (RunDaemon does).
type controlOnly struct{}

func (controlOnly) Start(service.Service) error {
	return errors.New("installer: Manager cannot run a daemon")
}
func (controlOnly) Stop(service.Service) error { return nil }

// Open returns the Manager of role's service, installed or not.
func Open(role Role) (*Manager, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return nil, err
	}
	return newManager(role, &service.Config{Name: role.ServiceName(), DisplayName: role.DisplayName()})
}

func newManager(role Role, cfg *service.Config) (*Manager, error) {
	if service.ChosenSystem() == nil {
		return nil, ErrNoServiceManager
	}
	svc, err := service.New(controlOnly{}, cfg)
	if err != nil {
		return nil, fmt.Errorf("set up service %s: %w", cfg.Name, err)
	}
	return &Manager{role: role, platform: service.ChosenSystem().String(), svc: svc}, nil
}

// Platform names the init system in use, as kardianos does (linux-systemd,
// unix-systemv, darwin-launchd, windows-service, ...).
func (m *Manager) Platform() string { return m.platform }

// Name is the service's name.
func (m *Manager) Name() string { return m.role.ServiceName() }

// DefinitionPath is the file that defines the service on this init system: the one in
// place if the service is installed, else the one Install writes. It is "" where there
// is no such file (Windows keeps services in the registry).
func (m *Manager) DefinitionPath() string {
	paths := definitionPaths(m.platform, m.role.ServiceName())
	for _, p := range paths {
		if fileExists(p) {
			return p
		}
	}
	if len(paths) == 0 {
		return ""
	}
	return paths[0]
}

// LogHint says where the service's logs go.
func (m *Manager) LogHint() string { return logHint(m.platform, m.role.ServiceName()) }

// definitionPaths lists where a definition of the service may be, the one Install
// writes first. On systemd the Linux packages ship the unit in /usr/lib.
func definitionPaths(platform, name string) []string {
	switch platform {
	case "linux-systemd":
		return []string{
			"/etc/systemd/system/" + name + ".service",
			"/usr/lib/systemd/system/" + name + ".service",
			"/lib/systemd/system/" + name + ".service",
		}
	case "unix-systemv":
		return []string{"/etc/init.d/" + name}
	case "darwin-launchd":
		return []string{"/Library/LaunchDaemons/" + name + ".plist"}
	}
	return nil
}

// packaged reports whether the service's definition came with a Linux package.
func packaged(definition string) bool {
	return strings.HasPrefix(definition, "/usr/lib/") || strings.HasPrefix(definition, "/lib/")
}

// Status reads the service's state from the service manager.
func (m *Manager) Status() (State, error) {
	def := m.DefinitionPath()
	if def != "" && !fileExists(def) {
		return StateNotInstalled, nil
	}
	st, err := m.svc.Status()
	switch {
	case err == nil && st == service.StatusRunning:
		return StateRunning, nil
	case err == nil && st == service.StatusStopped:
		return StateStopped, nil
	case errors.Is(err, service.ErrNotInstalled):
		if def != "" {
			// The definition file is there but the manager does not list the
			// service as running: systemd says "inactive" before a daemon-reload.
			return StateStopped, nil
		}
		return StateNotInstalled, nil
	}
	// kardianos reports a SysV "Stopped" (LSB exit status 3) and a systemd "failed"
	// unit as errors; with the definition in place, both mean the daemon is not running.
	var exitErr *exec.ExitError
	if def != "" && (errors.As(err, &exitErr) || (err != nil && strings.Contains(err.Error(), "failed state"))) {
		return StateStopped, nil
	}
	if err == nil {
		err = fmt.Errorf("unknown status %d", st)
	}
	return "", fmt.Errorf("read status of %s from %s: %w", m.Name(), m.platform, err)
}

// Start starts the installed service and waits until the service manager reports it
// running. Starting a running service does nothing.
func (m *Manager) Start() error {
	st, err := m.Status()
	if err != nil {
		return err
	}
	switch st {
	case StateNotInstalled:
		return fmt.Errorf("start %s: %w", m.Name(), ErrNotInstalled)
	case StateRunning:
		return nil
	}
	if err := m.svc.Start(); err != nil {
		return fmt.Errorf("start %s: %w (logs: %s)", m.Name(), err, m.LogHint())
	}
	return m.waitFor(StateRunning, startWait)
}

// Stop stops the service and waits until it is stopped. Stopping a stopped service
// does nothing.
func (m *Manager) Stop() error {
	st, err := m.Status()
	if err != nil {
		return err
	}
	switch st {
	case StateNotInstalled:
		return fmt.Errorf("stop %s: %w", m.Name(), ErrNotInstalled)
	case StateStopped:
		return nil
	}
	if err := m.svc.Stop(); err != nil {
		return fmt.Errorf("stop %s: %w", m.Name(), err)
	}
	return m.waitFor(StateStopped, stopWait)
}

// Restart stops the service if it runs, then starts it.
func (m *Manager) Restart() error {
	if err := m.Stop(); err != nil {
		return err
	}
	return m.Start()
}

// Uninstall stops the service and removes its definition. Uninstalling a service that
// is not installed does nothing and reports false. The data directory, the config file
// and the service user stay: they hold the till's pending redemptions.
func (m *Manager) Uninstall() (removed bool, err error) {
	st, err := m.Status()
	if err != nil {
		return false, err
	}
	if st == StateNotInstalled {
		return false, nil
	}
	if def := m.DefinitionPath(); packaged(def) {
		return false, fmt.Errorf("uninstall %s: it was installed by the %s package (%s): remove the package instead (apt remove %s, or dnf remove %s)",
			m.Name(), m.Name(), def, m.Name(), m.Name())
	}
	if st == StateRunning {
		if err := m.Stop(); err != nil {
			return false, fmt.Errorf("uninstall %s: %w", m.Name(), err)
		}
	}
	if err := m.svc.Uninstall(); err != nil {
		return false, fmt.Errorf("uninstall %s: %w%s", m.Name(), err, privilegeHint(err))
	}
	if m.platform == "unix-systemv" {
		removeRCLinks(m.Name())
	}
	return true, nil
}

// removeRCLinks removes the /etc/rc?.d links kardianos made at install time and does
// not remove on uninstall: dangling, they would make init complain at every boot.
func removeRCLinks(name string) {
	links, _ := filepath.Glob("/etc/rc[0-6S].d/[SK][0-9][0-9]" + name)
	for _, l := range links {
		if fi, err := os.Lstat(l); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			_ = os.Remove(l)
		}
	}
}

func (m *Manager) waitFor(want State, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := m.Status()
		if err == nil && st == want {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("%s did not become %s within %s: %w (logs: %s)", m.Name(), want, limit, err, m.LogHint())
			}
			return fmt.Errorf("%s is %s, not %s, after %s (logs: %s)", m.Name(), st, want, limit, m.LogHint())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// InstallOptions tune Install.
type InstallOptions struct {
	// Executable is the tillkeep binary the service runs; "" means this process's.
	Executable string
	// User is the Linux account the service runs as: AutoUser (or "") picks
	// DefaultUser when it exists and root otherwise; "root" forces root.
	User string
}

// Installed describes what Install did.
type Installed struct {
	Platform   string
	Definition string // the file written, "" on Windows
	Spec       Spec
	// Warnings are what `config check` warns about in the config (a placeholder
	// token, a file others can read...): legal, so installed, but worth reading.
	Warnings []string
}

// Install checks configPath as `config check` does, prepares the data directory for
// the service user, and registers the service to start at boot. It refuses a failing
// config (*ConfigError) and an existing service (ErrAlreadyInstalled), and installs
// nothing then.
func Install(role Role, configPath string, opts InstallOptions) (*Installed, error) {
	spec, acct, warnings, err := resolveSpec(role, configPath, opts)
	if err != nil {
		return nil, err
	}
	cfg, err := spec.serviceConfig(service.ChosenSystem())
	if err != nil {
		return nil, err
	}
	m, err := newManager(role, cfg)
	if err != nil {
		return nil, err
	}
	st, err := m.Status()
	if err != nil {
		return nil, err
	}
	if st != StateNotInstalled {
		if def := m.DefinitionPath(); packaged(def) {
			return nil, fmt.Errorf("install %s: %w: the %s package installed it (%s); manage it with systemctl, or remove the package first",
				m.Name(), ErrAlreadyInstalled, m.Name(), def)
		}
		return nil, fmt.Errorf("install %s: %w (definition: %s); run `tillkeep service uninstall --role %s` first",
			m.Name(), ErrAlreadyInstalled, m.DefinitionPath(), role)
	}
	if acct != nil {
		// The env file is read by the service manager as root, so it may (and
		// should) be root's alone; only the config must be readable by the user.
		if err := acct.checkReadable(spec.ConfigPath); err != nil {
			return nil, fmt.Errorf("install %s: %w", m.Name(), err)
		}
	}
	if err := prepareDataDir(spec.DataDir, acct); err != nil {
		return nil, fmt.Errorf("install %s: %w", m.Name(), err)
	}
	if err := m.svc.Install(); err != nil {
		return nil, fmt.Errorf("install %s on %s: %w%s", m.Name(), m.platform, err, privilegeHint(err))
	}
	return &Installed{Platform: m.platform, Definition: m.DefinitionPath(), Spec: spec, Warnings: warnings}, nil
}

func resolveSpec(role Role, configPath string, opts InstallOptions) (Spec, *account, []string, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return Spec{}, nil, nil, err
	}
	if configPath == "" {
		return Spec{}, nil, nil, fmt.Errorf("--config is required to install a service")
	}
	absConfig, err := filepath.Abs(configPath)
	if err != nil {
		return Spec{}, nil, nil, fmt.Errorf("resolve config path %s: %w", configPath, err)
	}
	dataDir, warnings, err := CheckConfig(role, absConfig, serviceEnv(role, absConfig))
	if err != nil {
		return Spec{}, nil, nil, &ConfigError{Path: configPath, Err: err}
	}
	if !filepath.IsAbs(dataDir) {
		return Spec{}, nil, nil, &ConfigError{Path: configPath, Err: fmt.Errorf(
			"key data_dir: %q is relative; a service starts in / so data_dir must be an absolute path", dataDir)}
	}
	exe := opts.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return Spec{}, nil, nil, fmt.Errorf("find the tillkeep binary: %w", err)
		}
	}
	if exe, err = filepath.Abs(exe); err != nil {
		return Spec{}, nil, nil, fmt.Errorf("resolve binary path: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	spec := Spec{Role: role, Executable: exe, ConfigPath: absConfig, DataDir: filepath.Clean(dataDir)}

	var acct *account
	switch opts.User {
	case "", AutoUser:
		if runtime.GOOS == "linux" && userExists(DefaultUser) {
			spec.User = DefaultUser
		}
	case "root":
	default:
		if runtime.GOOS != "linux" {
			return Spec{}, nil, nil, fmt.Errorf("--user %s: only Linux services run as another user; leave --user out", opts.User)
		}
		spec.User = opts.User
	}
	if spec.User != "" {
		if acct, err = lookupAccount(spec.User); err != nil {
			return Spec{}, nil, nil, err
		}
	}
	if err := spec.Validate(); err != nil {
		return Spec{}, nil, nil, err
	}
	return spec, acct, warnings, nil
}

// serviceConfig is the kardianos definition of the spec on system. The systemd unit
// and the SysV script are rendered in full here (they hold no template actions, so
// kardianos writes them verbatim); launchd and Windows use kardianos' own definitions
// with their restart options.
func (s Spec) serviceConfig(system service.System) (*service.Config, error) {
	cfg := &service.Config{
		Name:        s.Role.ServiceName(),
		DisplayName: s.Role.DisplayName(),
		Description: s.Role.Description(),
		Executable:  s.Executable,
		Arguments:   s.Role.RunArgs(s.ConfigPath),
		Option:      service.KeyValue{},
	}
	platform := ""
	if system != nil {
		platform = system.String()
	}
	switch {
	case platform == "linux-systemd":
		unit, err := s.SystemdUnit()
		if err != nil {
			return nil, err
		}
		cfg.Option["SystemdScript"] = unit
	case platform == "unix-systemv":
		script, err := s.SysVScript()
		if err != nil {
			return nil, err
		}
		cfg.Option["SysvScript"] = script
	case runtime.GOOS == "darwin":
		// KeepAlive restarts the daemon whenever it exits; RunAtLoad starts it at boot.
		cfg.Option["KeepAlive"] = true
		cfg.Option["RunAtLoad"] = true
		cfg.WorkingDirectory = s.DataDir
	case runtime.GOOS == "windows":
		// Without OnFailure a crashed service stays down: restart after 5 s, every
		// time (the failure count resets after a day).
		cfg.Option["OnFailure"] = "restart"
		cfg.Option["OnFailureDelayDuration"] = "5s"
		cfg.Option["OnFailureResetPeriod"] = 86400
		cfg.Option["StartType"] = "automatic"
		cfg.Dependencies = []string{"Tcpip"}
	default:
		// Upstart, OpenRC and friends: kardianos' definitions, run as the service user.
		cfg.UserName = s.User
		cfg.WorkingDirectory = s.DataDir
	}
	return cfg, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func privilegeHint(err error) string {
	if errors.Is(err, fs.ErrPermission) || strings.Contains(strings.ToLower(err.Error()), "access is denied") {
		return " (run as root, or as Administrator on Windows)"
	}
	return ""
}
