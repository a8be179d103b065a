package main

import "github.com/spf13/cobra"

// newServiceCmd is filled in by the service work.
func newServiceCmd() *cobra.Command {
	return &cobra.Command{Use: "service", Short: "(not yet built)"}
}
