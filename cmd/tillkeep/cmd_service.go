package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tillkeep/tillkeep/installer"
)

// serviceFlags are the flags every `service` subcommand takes (../shared/CONTRACT.md).
type serviceFlags struct {
	role   string
	config string
}

func (f *serviceFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.role, "role", "", "which daemon: agent or platform (required)")
	cmd.Flags().StringVar(&f.config, "config", "", "the role's TOML config file")
}

func (f *serviceFlags) parseRole() (installer.Role, error) {
	role, err := installer.ParseRole(f.role)
	if err != nil {
		return "", withExit(2, err)
	}
	return role, nil
}

// newServiceCmd is `tillkeep service install|uninstall|start|stop|restart|status`.
func newServiceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Install and control tillkeep as a system service (systemd, SysV, launchd, Windows)",
		Long: `Manage the system service of the agent (tillkeep-agent) or the platform
(tillkeep-platform). install registers the service to start at boot, running
"tillkeep agent run --config FILE" (or "platform serve") with the absolute paths of
this binary and of FILE; it refuses a config that fails "config check". status prints
running, stopped or not-installed.`,
	}
	cmd.AddCommand(
		newServiceInstallCmd(),
		newServiceControlCmd("uninstall", "Stop the service and remove it (data and config stay)", func(out io.Writer, m *installer.Manager) error {
			removed, err := m.Uninstall()
			if err != nil {
				return err
			}
			if !removed {
				fmt.Fprintf(out, "%s was not installed\n", m.Name())
				return nil
			}
			fmt.Fprintf(out, "uninstalled %s; its data_dir and config file are kept\n", m.Name())
			return nil
		}),
		newServiceControlCmd("start", "Start the installed service", func(out io.Writer, m *installer.Manager) error {
			if err := m.Start(); err != nil {
				return err
			}
			fmt.Fprintf(out, "%s is running\n", m.Name())
			return nil
		}),
		newServiceControlCmd("stop", "Stop the service (it drains within 5 s)", func(out io.Writer, m *installer.Manager) error {
			if err := m.Stop(); err != nil {
				return err
			}
			fmt.Fprintf(out, "%s is stopped\n", m.Name())
			return nil
		}),
		newServiceControlCmd("restart", "Stop the service if it runs, then start it", func(out io.Writer, m *installer.Manager) error {
			if err := m.Restart(); err != nil {
				return err
			}
			fmt.Fprintf(out, "%s is running\n", m.Name())
			return nil
		}),
		newServiceControlCmd("status", "Print running, stopped or not-installed", func(out io.Writer, m *installer.Manager) error {
			st, err := m.Status()
			if err != nil {
				return err
			}
			fmt.Fprintln(out, st)
			return nil
		}),
	)
	return cmd
}

func newServiceInstallCmd() *cobra.Command {
	var f serviceFlags
	var user string
	cmd := &cobra.Command{
		Use:   "install --role agent|platform --config FILE",
		Short: "Register the service to start at boot (refuses a config that fails config check)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			role, err := f.parseRole()
			if err != nil {
				return err
			}
			if f.config == "" {
				return withExit(2, errors.New("--config is required"))
			}
			done, err := installer.Install(role, f.config, installer.InstallOptions{User: user})
			var cfgErr *installer.ConfigError
			if errors.As(err, &cfgErr) {
				return withExit(2, err)
			}
			if err != nil {
				return err
			}
			for _, w := range done.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			out := cmd.OutOrStdout()
			spec := done.Spec
			fmt.Fprintf(out, "installed %s (%s)\n", role.ServiceName(), done.Platform)
			if done.Definition != "" {
				fmt.Fprintf(out, "  definition: %s\n", done.Definition)
			}
			fmt.Fprintf(out, "  runs:       %s %s\n", spec.Executable, strings.Join(role.RunArgs(spec.ConfigPath), " "))
			runAs := spec.User
			if runAs == "" {
				runAs = "root (LocalSystem on Windows)"
			}
			fmt.Fprintf(out, "  as user:    %s\n", runAs)
			fmt.Fprintf(out, "  data_dir:   %s\n", spec.DataDir)
			fmt.Fprintf(out, "start it with: tillkeep service start --role %s\n", role)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&user, "user", installer.AutoUser,
		`Linux account the service runs as: "auto" (tillkeep if that user exists, else root), "root", or a user name`)
	return cmd
}

func newServiceControlCmd(name, short string, do func(io.Writer, *installer.Manager) error) *cobra.Command {
	var f serviceFlags
	cmd := &cobra.Command{
		Use:   name + " --role agent|platform [--config FILE]",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			role, err := f.parseRole()
			if err != nil {
				return err
			}
			// The service is found by its name; --config is accepted for symmetry with
			// install (the contract passes it to every subcommand) and not needed.
			m, err := installer.Open(role)
			if err != nil {
				return err
			}
			return do(cmd.OutOrStdout(), m)
		},
	}
	f.register(cmd)
	return cmd
}
