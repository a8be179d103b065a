package main

import "github.com/spf13/cobra"

// newPlatformCmd is filled in by the platform work.
func newPlatformCmd() *cobra.Command {
	return &cobra.Command{Use: "platform", Short: "(not yet built)"}
}
