package main

import "github.com/spf13/cobra"

// newAgentCmd is filled in by the agent work.
func newAgentCmd() *cobra.Command {
	return &cobra.Command{Use: "agent", Short: "(not yet built)"}
}
