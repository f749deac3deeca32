package main

import (
	"os/exec"
	"syscall"
)

// stopWithParent has the kernel send the shop SIGTERM if loadgen dies
// without stopping it (SIGKILL, a crash), so that no shop outlives its run.
func stopWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
