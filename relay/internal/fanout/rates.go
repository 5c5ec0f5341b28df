package fanout

import (
	"time"

	"github.com/hookpipe/hookpipe/task"
)

// rates keeps the events per second per priority of the last
// task.RateWindow seconds of the stream's clock, for the dashboards' rate
// chart: clients cannot rebuild them from the events they get, which may be
// capped. Only the hub goroutine touches it.
type rates struct {
	buf [task.RateWindow]bucket
	// newest is the newest second an event fell in; 0 before any.
	newest int64
	// knownFrom, when set, is the first second the hub has events for.
	knownFrom int64
}

// bucket is one second's counts; a bucket whose sec is not the one asked
// for is stale, and counts as zero.
type bucket struct {
	sec int64
	n   [task.NumPriorities]int64
}

func slot(sec int64) int { return int(sec % task.RateWindow) }

// add counts one event of priority index p stored at second sec. Events
// older than the window are not kept.
func (r *rates) add(sec int64, p int) {
	if sec <= r.newest-task.RateWindow || sec < 0 {
		return
	}
	r.newest = max(r.newest, sec)
	b := &r.buf[slot(sec)]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	b.n[p]++
}

// at returns the counts of second sec.
func (r *rates) at(sec int64) [task.NumPriorities]int64 {
	if sec <= r.newest-task.RateWindow || sec > r.newest {
		return [task.NumPriorities]int64{}
	}
	if b := &r.buf[slot(sec)]; b.sec == sec {
		return b.n
	}
	return [task.NumPriorities]int64{}
}

// window fills w with the buckets of the seconds from..to, inclusive.
func (r *rates) window(w *task.Rates, from, to int64) *task.Rates {
	w.Start, w.KnownFrom, w.Counts = from, r.knownFrom, w.Counts[:0]
	for s := from; s <= to; s++ {
		w.Counts = append(w.Counts, r.at(s))
	}
	return w
}

// snapshot fills w with the whole window up to the second of now (or the
// newest event's, when the stream's clock is ahead of the relay's).
func (r *rates) snapshot(w *task.Rates, now time.Time) *task.Rates {
	to := max(now.Unix(), r.newest)
	return r.window(w, to-task.RateWindow+1, to)
}
