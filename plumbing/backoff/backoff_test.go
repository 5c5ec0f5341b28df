package backoff_test

import (
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/backoff"
)

func TestSchedule(t *testing.T) {
	s := time.Second
	tests := []struct {
		name string
		rand float64
		want []time.Duration
	}{
		{"middle", 0.5, []time.Duration{s, 2 * s, 4 * s, 5 * s, 5 * s}},
		{"low", 0, []time.Duration{s / 2, s, 2 * s, 2500 * time.Millisecond, 2500 * time.Millisecond}},
		{"high", 0.999999, []time.Duration{1500 * time.Millisecond, 3 * s, 5 * s, 5 * s, 5 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := backoff.Backoff{Min: s, Max: 5 * s, Jitter: 0.5, Rand: func() float64 { return tt.rand }}
			for i, want := range tt.want {
				got := b.Next()
				if d := got - want; d < -time.Millisecond || d > time.Millisecond {
					t.Errorf("delay %d = %v, want %v", i, got, want)
				}
			}
			if b.Attempts() != len(tt.want) {
				t.Errorf("attempts = %d", b.Attempts())
			}
			b.Reset()
			if got := b.Next(); got > 1500*time.Millisecond {
				t.Errorf("after reset delay = %v, want the first again", got)
			}
		})
	}
}

func TestNoJitterAndDefaults(t *testing.T) {
	b := backoff.Backoff{Min: 10 * time.Millisecond, Max: 35 * time.Millisecond}
	for i, want := range []time.Duration{10, 20, 35, 35} {
		if got := b.Next(); got != want*time.Millisecond {
			t.Errorf("delay %d = %v, want %v", i, got, want*time.Millisecond)
		}
	}
	var zero backoff.Backoff
	if got := zero.Next(); got != 100*time.Millisecond {
		t.Errorf("zero Backoff's first delay = %v, want 100ms", got)
	}
}

func TestRealJitterSpreads(t *testing.T) {
	b := backoff.Backoff{Min: time.Second, Max: 5 * time.Second, Jitter: 0.5}
	seen := map[time.Duration]bool{}
	for range 20 {
		b.Reset()
		seen[b.Next()] = true
	}
	if len(seen) < 2 {
		t.Errorf("20 first delays were all equal: %v", seen)
	}
}
