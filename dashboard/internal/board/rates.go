package board

import (
	"fmt"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

// Rates is the page's copy of the relay's rate buckets: events per second
// per priority over the last task.RateWindow seconds of the stream's
// clock. A snapshot replaces it; an update replaces the buckets it
// carries. The window ends at the relay's current second, which the page
// follows from the frames' send time and its own elapsed time, so that a
// browser whose clock is off draws the same chart.
type Rates struct {
	buckets map[int64][task.NumPriorities]int64
	// knownFrom is the first second the relay has events for; 0: all.
	knownFrom int64
	// sent and received place the relay's clock: it said sent when the
	// page's clock said received.
	sent, received time.Time
	// newest is the newest second a bucket was given for.
	newest int64
	// Version changes whenever a bucket does, for views that cache.
	Version uint64
}

// checkRates reports what is wrong with a frame's rates: more buckets than
// the window, negative counts, a start before the epoch.
func checkRates(r *task.Rates) error {
	if r == nil {
		return nil
	}
	if len(r.Counts) > task.RateWindow || r.Start < 0 || r.KnownFrom < 0 {
		return fmt.Errorf("%w: rates of %d buckets from %d", ErrBadFrame, len(r.Counts), r.Start)
	}
	for i, b := range r.Counts {
		for _, n := range b {
			if n < 0 {
				return fmt.Errorf("%w: rates: negative count in bucket %d", ErrBadFrame, i)
			}
		}
	}
	return nil
}

// observe takes the rates of frame f, received at now.
func (r *Rates) observe(f task.Frame, now time.Time) {
	if !f.Sent.IsZero() {
		r.sent, r.received = f.Sent, now
	}
	if f.Type == task.FrameSnapshot || r.buckets == nil {
		r.buckets = make(map[int64][task.NumPriorities]int64, task.RateWindow)
		r.newest, r.knownFrom = 0, 0
		r.Version++
	}
	if f.Rates == nil {
		return
	}
	r.knownFrom = f.Rates.KnownFrom
	for i, b := range f.Rates.Counts {
		sec := f.Rates.Start + int64(i)
		r.buckets[sec] = b
		r.newest = max(r.newest, sec)
	}
	r.Version++
	// Drop what left the window.
	for sec := range r.buckets {
		if sec <= r.newest-task.RateWindow {
			delete(r.buckets, sec)
		}
	}
}

// End returns the second the window ends at as of now: the relay's current
// second, or the newest bucket's when no frame said the relay's time.
func (r *Rates) End(now time.Time) int64 {
	if r.sent.IsZero() {
		return r.newest
	}
	return max(r.sent.Add(max(now.Sub(r.received), 0)).Unix(), r.newest)
}

// Window returns the buckets of the task.RateWindow seconds up to end, and
// from which of them the relay knows anything (earlier ones are unknown,
// not zero).
func (r *Rates) Window(end int64) (w [task.RateWindow][task.NumPriorities]int64, known int) {
	start := end - task.RateWindow + 1
	for i := range w {
		w[i] = r.buckets[start+int64(i)]
	}
	if r.knownFrom > start {
		known = int(min(r.knownFrom-start, task.RateWindow))
	}
	return w, known
}
