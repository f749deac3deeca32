package checkout

import (
	"testing"
	"time"
)

// TestSteadyBeats: an instance counts how long its own heartbeats have got
// through without a gap, and starts again from zero after a failed beat or
// one later than the margin allows (its process paused, say).
func TestSteadyBeats(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	b := steadyBeats{interval: time.Second}
	steps := []struct {
		ok   bool
		at   time.Duration
		want time.Duration
	}{
		{true, 0, 0},
		{true, time.Second, time.Second},
		{true, 2 * time.Second, 2 * time.Second},
		{false, 3 * time.Second, 0}, // the database out of reach
		{true, 4 * time.Second, 0},
		{true, 6 * time.Second, 2 * time.Second},  // late, but within the margin of 3
		{true, 10 * time.Second, 0},               // 4 s without a beat: paused
		{true, 11 * time.Second, 1 * time.Second}, // steady again
	}
	for i, s := range steps {
		if got := b.note(s.ok, at(s.at)); got != s.want {
			t.Errorf("beat %d (ok %v at %v): steady for %v, want %v", i, s.ok, s.at, got, s.want)
		}
	}
}
