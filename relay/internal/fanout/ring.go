package fanout

import "sort"

// entry is one event of the ring, kept encoded: frames are concatenations
// of these bytes, so no event is encoded twice.
type entry struct {
	seq  uint64
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
// sequence from on: every event with a sequence >= from that it was given is
// still in it.
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
