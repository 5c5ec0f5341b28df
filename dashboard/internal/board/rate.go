package board

import "time"

// RateWindow is how far back Rate looks.
const RateWindow = 3 * time.Second

// Rate measures events per second from the running total, over the last
// RateWindow. Totals are cumulative, so frames the page skipped or events
// it never saw still count.
type Rate struct {
	samples []sample
}

type sample struct {
	at    time.Time
	total int64
}

// Reset forgets every sample, as after a snapshot, whose total may include
// events from long ago.
func (r *Rate) Reset() { r.samples = r.samples[:0] }

// Observe records the total at a moment.
func (r *Rate) Observe(at time.Time, total int64) {
	r.samples = append(r.samples, sample{at, total})
	// Keep one sample older than the window as the baseline.
	drop := 0
	for drop+1 < len(r.samples) && at.Sub(r.samples[drop+1].at) >= RateWindow {
		drop++
	}
	if drop > 0 {
		n := copy(r.samples, r.samples[drop:])
		r.samples = r.samples[:n]
	}
}

// PerSecond returns the rate as of now: the growth of the total since the
// oldest sample in the window, over the time since then. It falls to zero
// once no sample is newer than the window.
func (r *Rate) PerSecond(now time.Time) float64 {
	if len(r.samples) < 2 {
		return 0
	}
	last := r.samples[len(r.samples)-1]
	if now.Sub(last.at) >= RateWindow {
		return 0
	}
	first := r.samples[0]
	for _, s := range r.samples {
		if now.Sub(s.at) <= RateWindow {
			break
		}
		first = s
	}
	dt := now.Sub(first.at).Seconds()
	if dt <= 0 || last.total <= first.total {
		return 0
	}
	return float64(last.total-first.total) / dt
}
