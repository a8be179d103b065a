package main

import (
	"errors"
	"fmt"
	"os"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/spf13/cobra"

	"github.com/tillkeep/tillkeep/config"
)

// exitConfigInvalid is the exit status of `config check` for a file that is not valid,
// as the contract fixes it.
const exitConfigInvalid = 2

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check and show configuration files",
		Long: `Check and show the TOML configuration of the agent (agent.toml) or the platform
(platform.toml). Environment variables TILLKEEP_<KEY> override the file: the dotted
key upper-cased with dots turned into underscores, e.g. TILLKEEP_POS_TOKEN or
TILLKEEP_OFFLINE_MAX_DISCOUNT.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newConfigCheckCmd(), newConfigShowCmd())
	return cmd
}

// configFlags are the flags both config subcommands take.
type configFlags struct {
	role string
	path string
}

func (f *configFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.role, "role", "", "which file this is: agent or platform (required)")
	cmd.Flags().StringVar(&f.path, "config", "", "path of the TOML config file (required)")
	_ = cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(
		[]string{config.RoleAgent, config.RolePlatform}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.MarkFlagFilename("config", "toml")
}

// validate reports a usage mistake with the same exit status as an invalid file: for a
// deployment script, both mean "this service cannot start with what you gave it".
func (f *configFlags) validate() error {
	if f.role != config.RoleAgent && f.role != config.RolePlatform {
		return withExit(exitConfigInvalid, fmt.Errorf("--role must be %q or %q, got %q", config.RoleAgent, config.RolePlatform, f.role))
	}
	if f.path == "" {
		return withExit(exitConfigInvalid, errors.New("--config FILE is required"))
	}
	return nil
}

func newConfigCheckCmd() *cobra.Command {
	var flags configFlags
	cmd := &cobra.Command{
		Use:   "check --role agent|platform --config FILE",
		Short: "Validate a config file: exit 0, or exit 2 naming the key and line",
		Long: `Validate a config file exactly as the daemon would read it at start, environment
overrides included. On success it prints "FILE: ok" (and any warnings on stderr) and
exits 0. Otherwise it prints every mistake as FILE:LINE: key KEY: MESSAGE and exits 2.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := flags.validate(); err != nil {
				return err
			}
			warnings, err := checkConfigFile(flags.role, flags.path)
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if err != nil {
				return withExit(exitConfigInvalid, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", flags.path)
			return nil
		},
	}
	flags.register(cmd)
	return cmd
}

func newConfigShowCmd() *cobra.Command {
	var flags configFlags
	cmd := &cobra.Command{
		Use:   "show --role agent|platform --config FILE",
		Short: "Print the effective config (defaults and environment applied, secrets redacted)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := flags.validate(); err != nil {
				return err
			}
			var effective any
			var warnings []string
			var err error
			loader := config.Loader{LookupEnv: os.LookupEnv}
			if flags.role == config.RoleAgent {
				var cfg config.Agent
				cfg, warnings, err = loader.LoadAgent(flags.path)
				effective = cfg.Redacted()
			} else {
				var cfg config.Platform
				cfg, warnings, err = loader.LoadPlatform(flags.path)
				effective = cfg.Redacted()
			}
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if err != nil {
				return withExit(exitConfigInvalid, err)
			}
			out, err := toml.Marshal(effective)
			if err != nil {
				return fmt.Errorf("write effective config: %w", err)
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	flags.register(cmd)
	return cmd
}

// checkConfigFile validates the config file of role at path exactly as the daemon
// will read it at start (process environment included), and returns its warnings.
func checkConfigFile(role, path string) (warnings []string, err error) {
	loader := config.Loader{LookupEnv: os.LookupEnv}
	switch role {
	case config.RoleAgent:
		_, warnings, err = loader.LoadAgent(path)
	case config.RolePlatform:
		_, warnings, err = loader.LoadPlatform(path)
	default:
		err = fmt.Errorf("unknown role %q: want %q or %q", role, config.RoleAgent, config.RolePlatform)
	}
	return warnings, err
}
