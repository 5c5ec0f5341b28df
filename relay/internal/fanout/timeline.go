package fanout

import (
	"sort"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

// Base is what Redis holds as the stream's fold: the totals as of its
// watermark, the last sequence folded into them. The hub counts the events
// after the watermark itself, so that every frame's counts are exact as of
// the frame's sequence.
type Base struct {
	Counts    task.Counts
	Watermark uint64
}

// entry is one event of the ring, kept encoded: frames are concatenations
// of these bytes, so no event is encoded twice.
type entry struct {
	seq  uint64
	prio int   // the event's priority index
	sec  int64 // the Unix second the stream stored it
	json []byte
}

// ring holds the newest events in stream order, up to a fixed number. It
// serves snapshots (the last N events) and resumes (everything after a
// sequence). Only the hub goroutine touches it.
type ring struct {
	buf   []entry
	head  int // index of the oldest entry
	n     int // entries held
	cover uint64
}

// newRing returns a ring of the given capacity that covers the stream from
// sequence from on: every event with a sequence >= from that it was given
// is still in it.
func newRing(capacity int, from uint64) *ring {
	return &ring{buf: make([]entry, capacity), cover: from}
}

// push appends the newest event, dropping the oldest when full.
func (r *ring) push(e entry) {
	if len(r.buf) == 0 {
		r.cover = e.seq + 1
		return
	}
	if r.n == len(r.buf) {
		r.cover = r.buf[r.head].seq + 1
		r.buf[r.head] = e
		r.head = (r.head + 1) % len(r.buf)
		return
	}
	r.buf[(r.head+r.n)%len(r.buf)] = e
	r.n++
}

func (r *ring) at(i int) *entry { return &r.buf[(r.head+i)%len(r.buf)] }

// covers reports whether every event after since is in the ring, so that a
// client that holds everything up to since can be brought up to date.
func (r *ring) covers(since uint64) bool { return since+1 >= r.cover }

// after returns the encoded events with since < seq <= upto, oldest first,
// appended to dst.
func (r *ring) after(dst [][]byte, since, upto uint64) [][]byte {
	i := sort.Search(r.n, func(i int) bool { return r.at(i).seq > since })
	for ; i < r.n; i++ {
		e := r.at(i)
		if e.seq > upto {
			break
		}
		dst = append(dst, e.json)
	}
	return dst
}

// last returns up to n encoded events with seq <= upto, oldest first,
// appended to dst.
func (r *ring) last(dst [][]byte, n int, upto uint64) [][]byte {
	end := sort.Search(r.n, func(i int) bool { return r.at(i).seq > upto })
	start := max(end-n, 0)
	for i := start; i < end; i++ {
		dst = append(dst, r.at(i).json)
	}
	return dst
}

// seconds returns the first and last second the events with since < seq
// <= upto fell in; ok is false when there are none.
func (r *ring) seconds(since, upto uint64) (lo, hi int64, ok bool) {
	i := sort.Search(r.n, func(i int) bool { return r.at(i).seq > since })
	for ; i < r.n; i++ {
		e := r.at(i)
		if e.seq > upto {
			break
		}
		if !ok || e.sec < lo {
			lo = e.sec
		}
		hi, ok = max(hi, e.sec), true
	}
	return lo, hi, ok
}

// countAfter adds to c the events with since < seq <= upto.
func (r *ring) countAfter(c *task.Counts, since, upto uint64) {
	i := sort.Search(r.n, func(i int) bool { return r.at(i).seq > since })
	for ; i < r.n; i++ {
		e := r.at(i)
		if e.seq > upto {
			break
		}
		c[e.prio]++
	}
}

// timeline is what the hub knows of the stream: the ring of recent events,
// the newest sequence taken in, and the counts exact as of it, which are
// Redis's as of its watermark plus the events after it. Only the hub
// goroutine touches it.
type timeline struct {
	ring     *ring
	begun    bool
	seq      uint64 // newest sequence taken in
	baseAt   uint64 // Redis's watermark at begin: later events are counted here
	target   uint64 // the stream's last sequence at begin: caught up once reached
	caughtUp bool
	counts   task.Counts
	// version changes whenever counts change other than by an event: a
	// rebase.
	version  uint64
	restarts int // streams made anew so far
	// foldLag is how many events the timeline had taken in past Redis's
	// watermark when it last read it.
	foldLag uint64
	// rates are the events per second of the stream's last minutes.
	rates rates
}

// begin starts the timeline of a stream read from sequence from on, whose
// newest message is last, with Redis's base, whose watermark is at least
// from-1 (the reader starts at or before the event after it). It reports
// whether the stream was begun before: then it was made anew.
func (tl *timeline) begin(from, last uint64, base Base, ringSize int, ratesFrom time.Time) (restarted bool) {
	restarted = tl.begun
	if restarted {
		tl.restarts++
	}
	from = max(from, 1)
	*tl = timeline{ring: newRing(ringSize, from), begun: true, seq: from - 1, baseAt: base.Watermark, target: last,
		counts: base.Counts, restarts: tl.restarts, version: tl.version + 1}
	if !ratesFrom.IsZero() {
		tl.rates.knownFrom = ratesFrom.Unix()
	}
	tl.caughtUp = tl.seq >= tl.target
	return restarted
}

// append takes in the next valid event. Events at or below seq (a
// redelivery after the consumer reset) change nothing; it reports whether
// ev was new.
func (tl *timeline) append(ev *task.Event, json []byte) bool {
	if !tl.begun || ev.Seq <= tl.seq {
		return false
	}
	tl.seq = ev.Seq
	p := ev.Priority.Index()
	if ev.Seq > tl.baseAt {
		tl.counts[p]++
	}
	sec := ev.Time.Unix()
	tl.rates.add(sec, p)
	tl.ring.push(entry{seq: ev.Seq, prio: p, sec: sec, json: json})
	return true
}

// skip takes in a stream message that is not a valid task.
func (tl *timeline) skip(seq uint64) bool {
	if !tl.begun || seq <= tl.seq {
		return false
	}
	tl.seq = seq
	return true
}

// arrived notes that the stream holds pending messages after seq, and
// reports whether the timeline just caught up with the stream as it stood
// at begin.
func (tl *timeline) arrived(pending uint64) bool {
	if tl.caughtUp || (pending != 0 && tl.seq < tl.target) {
		return false
	}
	tl.caughtUp = true
	return true
}

// rebase takes Redis's counts as the base again when the ring can bring
// them up to seq: when Redis was repaired, every relay's counts follow. It
// reports whether the counts changed.
func (tl *timeline) rebase(b Base) bool {
	if tl.begun {
		tl.foldLag = tl.seq - min(b.Watermark, tl.seq)
	}
	if !tl.begun || b.Watermark > tl.seq || !tl.ring.covers(b.Watermark) {
		return false
	}
	c := b.Counts
	tl.ring.countAfter(&c, b.Watermark, tl.seq)
	if c == tl.counts {
		return false
	}
	tl.counts = c
	tl.version++
	return true
}
