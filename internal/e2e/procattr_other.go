//go:build !linux

package e2e

import "syscall"

// childProcAttr: outside Linux there is no parent-death signal; Close and the signal
// handlers of the demo are what stop the daemons.
func childProcAttr() *syscall.SysProcAttr { return nil }
