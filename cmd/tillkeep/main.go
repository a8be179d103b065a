// Command tillkeep is the one binary of tillkeep: the till agent, the central platform,
// service management, config checks, and the POS and ops command-line tools. Each
// command group lives in its own file (cmd_*.go); this file only wires them together.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is stamped by the Makefile: -ldflags "-X main.version=...".
var version = "dev"

// exitError carries a process exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withExit makes err end the process with status code.
func withExit(code int, err error) error { return &exitError{code: code, err: err} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		fmt.Fprintln(os.Stderr, "tillkeep:", err)
		os.Exit(code)
	}
}

// run executes the command line args; it is main without the process exit, for tests.
func run(ctx context.Context, args []string) error {
	root := newRootCmd()
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "tillkeep",
		Short: "Offline-safe coupon redemption for store tills",
		Long: `tillkeep keeps store tills redeeming coupons when the internet is down, and
afterwards makes sure nothing was lost and no double use goes unnoticed.

The agent runs on every till; the platform is the central server.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newVersionCmd(),
		newAgentCmd(),
		newPlatformCmd(),
		newConfigCmd(),
		newServiceCmd(),
		newPosCmd(),
		newOpsCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "tillkeep", version)
		},
	}
}
