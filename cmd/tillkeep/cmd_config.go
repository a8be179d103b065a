package main

import "github.com/spf13/cobra"

// newConfigCmd is filled in by the config work.
func newConfigCmd() *cobra.Command {
	return &cobra.Command{Use: "config", Short: "(not yet built)"}
}
