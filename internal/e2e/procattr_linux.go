package e2e

import "syscall"

// childProcAttr makes the kernel kill a daemon when the process that started it dies,
// even by SIGKILL, where no cleanup code runs: a test binary killed by its timeout or a
// demo killed hard must not leave a platform and tills running. (Strictly, the signal
// follows the death of the OS thread that started the child; the Go runtime does not
// retire its threads, and the harness never locks goroutines to threads.)
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
