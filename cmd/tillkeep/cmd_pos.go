package main

import "github.com/spf13/cobra"

// newPosCmd is filled in by the pos work.
func newPosCmd() *cobra.Command {
	return &cobra.Command{Use: "pos", Short: "(not yet built)"}
}
