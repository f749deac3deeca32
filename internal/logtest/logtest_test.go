package logtest_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/widgetstore/widgetstore/internal/logtest"
)

// TestBufferWhileWritten: writers at once lose no line, and Lines picks
// those with every substring.
func TestBufferWhileWritten(t *testing.T) {
	var b logtest.Buffer
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				fmt.Fprintf(&b, "writer=%d line=%d\n", w, i)
				_ = b.String() // read while the others write: the race detector's case
			}
		})
	}
	wg.Wait()
	if n := len(b.Lines("writer=")); n != 400 {
		t.Errorf("%d lines, want 400", n)
	}
	if got, want := b.Lines("writer=2 ", "line=7"), []string{"writer=2 line=7", "writer=2 line=70", "writer=2 line=71", "writer=2 line=72",
		"writer=2 line=73", "writer=2 line=74", "writer=2 line=75", "writer=2 line=76", "writer=2 line=77", "writer=2 line=78", "writer=2 line=79"}; !slices.Equal(got, want) {
		t.Errorf("Lines(writer=2, line=7) = %q, want %q", got, want)
	}
}
