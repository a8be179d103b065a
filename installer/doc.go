// Package installer registers tillkeep's two daemons (the till agent and the central
// platform) as system services through github.com/kardianos/service, and runs them
// under the service manager.
//
// It owns the service definitions: the names, descriptions and dependencies, the
// restart policies (a custom systemd unit because the built-in one waits 120 s before a
// restart, launchd KeepAlive, Windows recovery actions), the SysV init script used where
// systemd is not PID 1, the preparation of the data directory for the service user, and
// the adapter that sends a daemon's slog records to the platform's log system
// (journald/syslog, the Windows event log) when it runs as a service.
//
// It must not know what the daemons do: it reads a config file only to refuse one that
// fails validation and to learn the data directory, and it runs a daemon only through
// the Serve function it is handed. It never exits the process on its own, except on
// Windows when a daemon dies under the service manager, so that the recovery actions
// restart it.
package installer
