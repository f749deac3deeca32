package main

import (
	"os/exec"
	"syscall"
)

// stopWithParent has the kernel send the server SIGTERM if the supervisor
// dies, even by SIGKILL: an orphaned server would keep the port, and the
// next supervisor's server could not start.
func stopWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
