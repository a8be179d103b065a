package main

import "github.com/spf13/cobra"

// newOpsCmd is filled in by the ops work.
func newOpsCmd() *cobra.Command {
	return &cobra.Command{Use: "ops", Short: "(not yet built)"}
}
