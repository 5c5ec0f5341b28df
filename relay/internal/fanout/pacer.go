package fanout

import "time"

// pacer decides when the hub sends frames and how fast. Writing to every
// client takes time, growing with their number, and the clients, or the machine, need time to read what is
// written. So a fan-out is spread over twice the time the writing took
// last time, or over an interval when that is longer: the parts go out at
// an even pace rather than in a burst that readers then queue behind,
// writing takes at most half of the hub's time, and the CPU is left to the
// rest (reading the stream, serving joins, other processes).
//
// When many clients are a whole frame behind as the next is made, or the
// hub's own tick comes late (the CPU did not get to it), the interval
// widens, up to max; it narrows again as they drain. Wider intervals mean
// fewer, larger frames: the same events and counts reach everyone with less
// work.
type pacer struct {
	min, max time.Duration
	interval time.Duration // now
	work     time.Duration // what fan-outs take, pauses aside, averaged
	due      time.Time     // when the next tick should come
}

func newPacer(min, max time.Duration) pacer {
	return pacer{min: min, max: max, interval: min}
}

// late reports whether a tick at now comes two intervals after it was due.
func (p *pacer) late(now time.Time) bool {
	return !p.due.IsZero() && now.Sub(p.due) > 2*p.interval
}

// spread is how long the next fan-out is spread over.
func (p *pacer) spread() time.Duration { return max(p.interval, 2*p.work) }

// done takes in a fan-out that took took, of which paused was pauses, and
// returns how long to wait before the next tick.
func (p *pacer) done(took, paused time.Duration) time.Duration {
	// Averaged, so that one slow fan-out (the CPU was busy elsewhere) does
	// not double the next one's spread.
	p.work += (took - paused - p.work) / 4
	return max(p.interval-took, 0)
}

// adapt widens the interval when over 10% of the clients were a whole
// frame behind, and narrows it when at most 1% were.
func (p *pacer) adapt(backlog, clients int) {
	if clients == 0 {
		return
	}
	switch {
	case backlog*10 > clients:
		p.interval = min(p.interval*2, p.max)
	case backlog*100 <= clients:
		p.interval = max(p.interval*3/4, p.min)
	}
}

// next notes that the next tick comes after d.
func (p *pacer) next(d time.Duration) { p.due = time.Now().Add(d) }
