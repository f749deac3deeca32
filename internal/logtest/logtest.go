// Package logtest holds what a test reads while a server or a command
// writes it: a log, a process's output.
package logtest

import (
	"slices"
	"strings"
	"sync"
)

// Buffer is an io.Writer that a test may read while others write to it.
type Buffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines are the lines written so far that contain every one of
// substrings, without their line ends.
func (b *Buffer) Lines(substrings ...string) []string {
	var out []string
	for line := range strings.Lines(b.String()) {
		if !slices.ContainsFunc(substrings, func(s string) bool { return !strings.Contains(line, s) }) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}
