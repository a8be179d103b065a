package installer

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// Spec is everything a service definition is made of. All paths are absolute: a
// service manager starts the binary from / with an empty environment, so a relative
// path would point somewhere else than where the operator meant.
type Spec struct {
	Role       Role
	Executable string // the tillkeep binary
	ConfigPath string // the role's TOML file
	DataDir    string // the role's data_dir, writable by the service
	// User is the account the service runs as on Linux; "" runs it as root. On macOS
	// and Windows it is ignored and the service runs as root / LocalSystem.
	User string
}

// Validate checks that the spec can be written into a unit, an init script and a
// kardianos template without changing meaning.
func (s Spec) Validate() error {
	if _, err := ParseRole(string(s.Role)); err != nil {
		return err
	}
	for _, p := range []struct{ what, path string }{
		{"executable", s.Executable},
		{"config file", s.ConfigPath},
		{"data_dir", s.DataDir},
	} {
		if p.path == "" {
			return fmt.Errorf("%s path is empty", p.what)
		}
		if !filepath.IsAbs(p.path) {
			return fmt.Errorf("%s path %q is not absolute", p.what, p.path)
		}
		if err := checkPathChars(p.path); err != nil {
			return fmt.Errorf("%s path %q: %w", p.what, p.path, err)
		}
	}
	if s.User != "" && !userNamePattern.MatchString(s.User) {
		return fmt.Errorf("user name %q is not a valid system user name", s.User)
	}
	return nil
}

var userNamePattern = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// checkPathChars refuses what no service definition can carry safely: control
// characters, and "{{" / "}}", which kardianos' template engine would read as actions.
func checkPathChars(p string) error {
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("contains a control character")
		}
	}
	if strings.Contains(p, "{{") || strings.Contains(p, "}}") {
		return fmt.Errorf(`contains "{{" or "}}"`)
	}
	return nil
}

// SystemdUnit renders the unit file `service install` writes on systemd, and that the
// Linux packages ship. kardianos' built-in unit waits 120 s before a restart; a till
// that cannot redeem for two minutes after a crash is not acceptable, so this one
// restarts after 2 s and never gives up (StartLimitIntervalSec=0): whatever made it
// fail (a full disk, a missing network) may go away, and the till must come back then.
//
// The hardening options are the ones bbolt tolerates: it needs mmap, flock and fsync
// on the data directory, which stays writable; everything else of the system is
// read-only to the daemon.
func (s Spec) SystemdUnit() (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	line("# %s: `tillkeep service install` writes this unit to /etc/systemd/system;", s.Role.ServiceName())
	line("# the tillkeep-%s package ships it in /usr/lib/systemd/system.", s.Role)
	line("[Unit]")
	line("Description=%s", systemdEscapeSpecifiers(s.Role.DisplayName()))
	line("Documentation=file:/usr/share/doc/tillkeep-%s/install.md", s.Role)
	line("Wants=network-online.target")
	line("After=network-online.target")
	line("StartLimitIntervalSec=0")
	line("")
	line("[Service]")
	line("Type=simple")
	exec := []string{systemdExecQuote(s.Executable)}
	for _, a := range s.Role.RunArgs(s.ConfigPath) {
		exec = append(exec, systemdExecQuote(a))
	}
	line("ExecStart=%s", strings.Join(exec, " "))
	// The leading "-" makes the file optional: it holds TILLKEEP_* secrets if the
	// operator chose to keep them out of the TOML file.
	line("EnvironmentFile=-%s", systemdPathQuote(s.Role.EnvFile(s.ConfigPath)))
	if s.User != "" {
		line("User=%s", s.User)
	}
	line("UMask=0077")
	line("Restart=always")
	line("RestartSec=2s")
	// The daemons drain within 5 s of SIGTERM; the slack avoids a SIGKILL mid-fsync.
	line("TimeoutStopSec=15s")
	line("NoNewPrivileges=yes")
	line("ProtectSystem=full")
	// /tmp and /home are only hidden when nothing the daemon needs lives there.
	if !s.anyUnder("/tmp", "/var/tmp") {
		line("PrivateTmp=yes")
	}
	if !s.anyUnder("/home", "/root", "/run/user") {
		line("ProtectHome=read-only")
	}
	if rel, ok := stateDirectory(s.DataDir); ok {
		// systemd creates it, owned by User=, before each start: a data directory
		// deleted by hand comes back with the right owner and mode.
		line("StateDirectory=%s", systemdPathQuote(rel))
		line("StateDirectoryMode=0700")
	} else {
		line("ReadWritePaths=%s", systemdPathQuote(s.DataDir))
	}
	line("")
	line("[Install]")
	line("WantedBy=multi-user.target")
	return b.String(), nil
}

func (s Spec) anyUnder(dirs ...string) bool {
	for _, p := range []string{s.Executable, s.ConfigPath, s.DataDir} {
		for _, d := range dirs {
			if isUnder(p, d) {
				return true
			}
		}
	}
	return false
}

func isUnder(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// stateDirectory returns dataDir relative to /var/lib when systemd can manage it as a
// StateDirectory=.
func stateDirectory(dataDir string) (string, bool) {
	rel, err := filepath.Rel("/var/lib", filepath.Clean(dataDir))
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

var systemdPlainArg = regexp.MustCompile(`^[A-Za-z0-9_./:@+,=-]+$`)

// systemdExecQuote quotes one word of an ExecStart= line: "%" would be a specifier and
// "$" a variable, so both are doubled; anything but plain characters is double-quoted.
func systemdExecQuote(s string) string {
	s = strings.ReplaceAll(s, "$", "$$")
	return systemdPathQuote(s)
}

// systemdPathQuote quotes a path-valued setting (no "$" expansion there).
func systemdPathQuote(s string) string {
	s = systemdEscapeSpecifiers(s)
	if systemdPlainArg.MatchString(strings.ReplaceAll(strings.ReplaceAll(s, "%", ""), "$", "")) {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

func systemdEscapeSpecifiers(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// shellQuote quotes s for /bin/sh: inside single quotes nothing is special.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// SysVScript renders the init script `service install` writes where systemd is not
// PID 1 (containers, old distributions). kardianos' built-in script runs the daemon as
// root and parses arguments with nested double quotes; this one runs it as Spec.User
// through setpriv, detaches it into its own session, and follows LSB: `status` prints
// "Running" or "Stopped" (what kardianos parses) and exits 0 or 3.
//
// SysV init has no restart-on-crash; where that matters, systemd is the answer.
func (s Spec) SysVScript() (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	name := s.Role.ServiceName()
	var cmd strings.Builder
	cmd.WriteString(shellQuote(s.Executable))
	for _, a := range s.Role.RunArgs(s.ConfigPath) {
		cmd.WriteString(" ")
		cmd.WriteString(shellQuote(a))
	}
	user := ""
	if s.User != "" {
		user = shellQuote(s.User)
	}
	r := strings.NewReplacer(
		"@NAME@", name,
		"@DISPLAY@", s.Role.DisplayName(),
		"@DESCRIPTION@", s.Role.Description(),
		"@CMD@", cmd.String(),
		"@USER@", user,
		"@ENVFILE@", shellQuote(s.Role.EnvFile(s.ConfigPath)),
	)
	return r.Replace(sysvScript), nil
}

const sysvScript = `#!/bin/sh
# Written by 'tillkeep service install'; 'tillkeep service uninstall' removes it.
# chkconfig: 2345 90 10
# description: @DESCRIPTION@
### BEGIN INIT INFO
# Provides:          @NAME@
# Required-Start:    $network $remote_fs $syslog
# Required-Stop:     $network $remote_fs $syslog
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: @DISPLAY@
# Description:       @DESCRIPTION@
### END INIT INFO

name=@NAME@
user=@USER@
pid_file=/var/run/$name.pid
log_file=/var/log/$name.log
env_file=@ENVFILE@

# kill -0 fails for a process of another user (status run without root): /proc tells.
is_running() {
    [ -f "$pid_file" ] || return 1
    pid=$(cat "$pid_file" 2>/dev/null)
    [ -n "$pid" ] && { kill -0 "$pid" 2>/dev/null || [ -d "/proc/$pid" ]; }
}

nap() {
    sleep 0.2 2>/dev/null || sleep 1
}

start() {
    if is_running; then
        echo "Already running"
        return 0
    fi
    umask 077
    touch "$log_file"
    if [ -n "$user" ]; then
        chown "$user" "$log_file"
        as_user="setpriv --reuid=$user --regid=$(id -g "$user") --init-groups --"
    else
        as_user=""
    fi
    (
        if [ -r "$env_file" ]; then
            set -a
            . "$env_file"
            set +a
        fi
        exec setsid $as_user @CMD@ </dev/null >>"$log_file" 2>&1
    ) &
    echo $! >"$pid_file"
    chmod 0644 "$pid_file"
    # A daemon that cannot start (bad config, port in use) exits at once: report it
    # here rather than leave a stale pid file behind.
    for i in 1 2 3 4 5; do
        nap
    done
    if ! is_running; then
        rm -f "$pid_file"
        echo "Unable to start $name, see $log_file" >&2
        tail -n 5 "$log_file" >&2
        return 1
    fi
    echo "Started $name"
}

stop() {
    if ! is_running; then
        rm -f "$pid_file"
        echo "Not running"
        return 0
    fi
    kill -TERM "$pid"
    # The daemon drains within 5 s; after 15 s it is killed.
    i=0
    while is_running && [ $i -lt 75 ]; do
        nap
        i=$((i + 1))
    done
    if is_running; then
        echo "$name did not stop within 15 s; killing it" >&2
        kill -KILL "$pid"
        nap
    fi
    rm -f "$pid_file"
    echo "Stopped $name"
}

case "$1" in
    start)
        start
        ;;
    stop)
        stop
        ;;
    restart|force-reload)
        stop && start
        ;;
    status)
        if is_running; then
            echo "Running"
            exit 0
        fi
        echo "Stopped"
        exit 3
        ;;
    *)
        echo "Usage: $0 {start|stop|restart|force-reload|status}" >&2
        exit 2
        ;;
esac
`
