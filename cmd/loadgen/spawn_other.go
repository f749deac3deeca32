//go:build !linux

package main

import "os/exec"

// stopWithParent does nothing here: only Linux can tie a child's life to
// its parent's. (Nor has this system the /proc the CPU counters read.)
func stopWithParent(*exec.Cmd) {}
