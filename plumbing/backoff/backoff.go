// Package backoff spaces out repeated attempts: a delay that starts at Min
// and doubles up to Max, each one spread at random so that many clients cut
// off together do not come back together. The producer's retries, the
// dashboard's reconnections and the relay's stream reader use it.
//
// It depends on the standard library only, so that the dashboard's
// WebAssembly can use it.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff says how long to wait before each attempt. A Backoff is used by
// one goroutine at a time.
type Backoff struct {
	// Min is the first delay; default 100ms.
	Min time.Duration
	// Max caps every delay; default Min.
	Max time.Duration
	// Jitter is the share of a delay drawn at random, from 0 to 1: a delay d
	// becomes a value in [d×(1-Jitter), d×(1+Jitter)], still capped at Max.
	// Default 0, no spread.
	Jitter float64
	// Rand returns a number in [0, 1); default math/rand/v2.Float64. Tests
	// set it to make delays predictable.
	Rand func() float64

	attempt int
}

// Next returns the delay before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
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
	if j := min(max(b.Jitter, 0), 1); j > 0 {
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

// Reset starts the schedule again, after an attempt succeeded.
func (b *Backoff) Reset() { b.attempt = 0 }
