package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Restart delays of the supervisor: quick after a crash, slower when the
// server keeps dying at start (a database that is down, say).
const (
	restartDelay    = 200 * time.Millisecond
	maxRestartDelay = 10 * time.Second
	healthyRun      = 10 * time.Second // a run this long resets the delay
)

// supervise runs this same program as a child without the supervisor, and
// starts it again whenever it dies (the crash button, a panic, SIGKILL)
// until ctx is done, which it passes on as SIGTERM. A clean exit of the
// child ends the supervisor too. The child is given its stop budget
// (stopBudget of its -drain) and supervisorSlack to stop before it is
// killed. With jsonOnly (-log-format json), what the child writes that is
// not JSON, such as a panic's trace, is wrapped in JSON records
// (jsonLines).
func supervise(ctx context.Context, args []string, drain time.Duration, stdout, stderr io.Writer, logger *slog.Logger, jsonOnly bool) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	delay := restartDelay
	for {
		cmd := exec.Command(exe, append(args, "-supervise=false")...)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		flush := func() {}
		if jsonOnly {
			childOut, childErr := &jsonLines{w: stdout, level: slog.LevelInfo}, &jsonLines{w: stderr, level: slog.LevelError}
			cmd.Stdout, cmd.Stderr = childOut, childErr
			flush = func() { childOut.Flush(); childErr.Flush() }
		}
		stopWithParent(cmd)
		started := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() {
			err := cmd.Wait() // after the child's output is copied
			flush()
			done <- err
		}()

		select {
		case <-ctx.Done():
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(stopBudget(drain) + supervisorSlack):
				cmd.Process.Kill()
				<-done
			}
			return nil
		case err := <-done:
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				return err // it ran and exited cleanly, or could not be waited for
			}
			if time.Since(started) >= healthyRun {
				delay = restartDelay
			}
			logger.Warn("server died; restarting", "exit", exit.String(), "after", delay)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			delay = min(2*delay, maxRestartDelay)
		}
	}
}
