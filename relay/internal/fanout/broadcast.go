package fanout

import (
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

// fanoutPart is how many clients get one cut of the stream, and the
// fewest worth a goroutine of their own in a fan-out.
const fanoutPart = 125

// fanoutPartsPerCPU splits a fan-out into more parts than there are CPUs:
// each write wakes a reader that often takes the CPU from the writing
// thread, and a part whose thread was preempted holds back fewer clients
// when the other CPUs can pick up the parts not started yet.
const fanoutPartsPerCPU = 4

// broadcast offers every client a frame. The clients are served in parts
// of h.part by a few goroutines per CPU, the parts spread evenly over
// spread; cut, called for each part just before it goes out, sets each
// client's next frame (none: nothing for it), and between two parts the hub
// takes in what arrived meanwhile, so that an event waits for its client's
// next part rather than for a whole fan-out. It returns how many clients
// were a whole frame behind, those too slow to take their frame (their
// queue is full), and how long it paused to keep the pace.
func (h *Hub) broadcast(spread time.Duration, cut func(part []*client)) (backlog int, slow []*client, paused time.Duration) {
	list := h.list // a stream made anew empties h.list, not this
	writers := min(fanoutPartsPerCPU*runtime.GOMAXPROCS(0), max(len(list)/h.part, 1))
	nparts := (len(list) + h.part - 1) / h.part
	start := time.Now()
	parts := make(chan []*client)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			b, sl := h.offerEach(parts)
			mu.Lock()
			backlog += b
			slow = append(slow, sl...)
			mu.Unlock()
		})
	}
	for k, lo := 0, 0; lo < len(list); k, lo = k+1, lo+h.part {
		if k > 0 {
			// Part k goes out at k/nparts of the spread, not sooner.
			if d := time.Until(start.Add(spread * time.Duration(k) / time.Duration(nparts))); d > 0 {
				time.Sleep(d)
				paused += d
			}
			h.takeWaiting()
		}
		part := list[lo:min(lo+h.part, len(list))]
		cut(part)
		parts <- part // unbuffered: cut no further ahead than the writers
	}
	close(parts)
	wg.Wait()
	return backlog, slow, paused
}

// cutFor cuts the frames of part at the hub's newest sequence, with the
// counts as of it. A client gets the events after the last frame it was
// given (usually the same for the whole part, so one frame is encoded for
// it), or a snapshot when the ring no longer holds them.
func (h *Hub) cutFor(part []*client) {
	tl := &h.tl
	seq, version := tl.seq, tl.version
	h.cuts = h.cuts[:0]
	for _, c := range part {
		if c.sent == seq && c.version == version {
			continue // it has everything
		}
		i := slices.IndexFunc(h.cuts, func(k cut) bool { return k.since == c.sent })
		if i < 0 {
			var f *frame
			enc := &h.enc
			if tl.ring.covers(c.sent) {
				enc.evbuf = tl.ring.after(enc.evbuf[:0], c.sent, seq)
				capped := 0
				if n := h.cfg.MaxUpdateEvents; n > 0 && len(enc.evbuf) > n {
					capped = len(enc.evbuf) - n
					enc.evbuf = enc.evbuf[capped:]
				}
				f = enc.frame(task.FrameUpdate, seq, &tl.counts, enc.evbuf, h.meta(capped, h.updateRates(c.sent, seq)))
			} else {
				enc.evbuf = tl.ring.last(enc.evbuf[:0], h.cfg.SnapshotEvents, seq)
				f = enc.frame(task.FrameSnapshot, seq, &tl.counts, enc.evbuf, h.meta(0, h.snapshotRates()))
			}
			i = len(h.cuts)
			h.cuts = append(h.cuts, cut{since: c.sent, f: f})
		}
		c.next = h.cuts[i].f
		c.sent, c.version = seq, version
	}
}

// pingAll is the cut of a ping round: the same ping for everyone.
func pingAll(part []*client) {
	for _, c := range part {
		c.next = pingFrame
	}
}

// offerEach offers each client of the parts it receives the frame cut for
// it, until parts is closed.
func (h *Hub) offerEach(parts <-chan []*client) (backlog int, slow []*client) {
	var st sendStats
	for part := range parts {
		for _, c := range part {
			f := c.next
			if f == nil {
				continue // nothing new for it
			}
			c.next = nil
			ok, behind := c.offer(f, &st)
			if behind && !f.ping {
				backlog++
			}
			if !ok {
				slow = append(slow, c)
			}
		}
		st.flush(&h.stats)
	}
	return backlog, slow
}

// cut is one frame of a part, for the clients whose last frame was since.
type cut struct {
	since uint64
	f     *frame
}

// cutOff closes the clients too slow to take their frames.
func (h *Hub) cutOff(slow []*client) {
	for _, c := range slow {
		h.stats.dropped.Add(1)
		h.stats.slow.Add(1)
		h.remove(c)
		c.close(task.CloseTryAgainLater, ReasonSlow)
	}
}
