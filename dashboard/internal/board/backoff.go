package board

import (
	"math/rand/v2"
	"time"
)

// Backoff says how long to wait before each reconnection attempt: Min, then
// doubling up to Max, each delay spread by Jitter so that many dashboards
// cut off together do not come back together.
type Backoff struct {
	// Min is the first delay; default 1s.
	Min time.Duration
	// Max caps every delay; default 5s.
	Max time.Duration
	// Jitter is the share of a delay drawn at random, from 0 to 1: a delay d
	// becomes a value in [d×(1-Jitter), d×(1+Jitter)], still capped at Max.
	// Default 0.5.
	Jitter float64
	// Rand returns a number in [0, 1); default math/rand/v2.Float64. Tests
	// set it to make delays predictable.
	Rand func() float64

	attempt int
}

// DefaultBackoff returns the reconnection schedule of the dashboard: about
// 1 s doubling to 5 s, with jitter.
func DefaultBackoff() Backoff {
	return Backoff{Min: time.Second, Max: 5 * time.Second, Jitter: 0.5}
}

// Next returns the delay before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 0; i < b.attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	b.attempt++
	j := min(max(b.Jitter, 0), 1)
	if j > 0 {
		r := b.Rand
		if r == nil {
			r = rand.Float64
		}
		d = time.Duration(float64(d) * (1 - j + 2*j*r()))
	}
	return min(d, hi)
}

// Attempts returns how many delays Next has handed out since Reset.
func (b *Backoff) Attempts() int { return b.attempt }

// Reset starts the schedule again, after a connection succeeded.
func (b *Backoff) Reset() { b.attempt = 0 }
