package page

import (
	"cmp"
	"slices"
	"strconv"
	"sync"
)

// event is one Server-Sent Event: its id, name and JSON data.
type event struct {
	ID   uint64
	Name string
	Data []byte
}

// hub fans events out to the open event streams. It keeps the most recent
// ones so that a browser that reconnects with Last-Event-ID misses nothing,
// and the start and latest lines of every running batch so that a page
// opened mid-batch shows it at once. It never blocks a batch on a slow
// page: a subscriber whose queue is full is dropped and reconnects.
type hub struct {
	mu       sync.Mutex
	seq      uint64
	ring     []event // the last keep events, oldest first
	keep     int
	running  map[string]*running // by batch id, until the batch ends
	perBatch int
	subs     map[chan event]struct{}
	queue    int
	closed   bool
}

// running is what a new page is shown of a batch still running: its start
// event and its latest lines, at most perBatch of them.
type running struct {
	start event
	lines []event
}

func newHub(keep, perBatch, queue int) *hub {
	return &hub{keep: keep, perBatch: perBatch, queue: queue,
		running: make(map[string]*running), subs: make(map[chan event]struct{})}
}

// begin publishes the start event of a batch and keeps it, with the
// batch's lines to come, for pages that open while it runs.
func (h *hub) begin(batch, name string, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.publish(name, data); ok {
		h.running[batch] = &running{start: e}
	}
}

// line publishes an event of a running batch.
func (h *hub) line(batch, name string, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.publish(name, data); ok {
		if r := h.running[batch]; r != nil {
			if len(r.lines) == h.perBatch {
				r.lines = append(r.lines[:0], r.lines[1:]...)
			}
			r.lines = append(r.lines, e)
		}
	}
}

// end publishes the last event of a batch, which new pages no longer see.
func (h *hub) end(batch, name string, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.publish(name, data)
	delete(h.running, batch)
}

// publish numbers an event, keeps it and offers it to every subscriber;
// h.mu is held. It reports false once the hub is closed.
func (h *hub) publish(name string, data []byte) (event, bool) {
	if h.closed {
		return event{}, false
	}
	h.seq++
	e := event{ID: h.seq, Name: name, Data: data}
	if len(h.ring) == h.keep {
		h.ring = append(h.ring[:0], h.ring[1:]...)
	}
	h.ring = append(h.ring, e)
	for c := range h.subs {
		select {
		case c <- e:
		default:
			delete(h.subs, c)
			close(c)
		}
	}
	return e, true
}

// subscribe returns a channel of events and a function to unsubscribe. A
// subscriber that gives lastID (a reconnecting page) gets every kept event
// after it; a new one gets the start and latest lines of the batches still
// running. Every later event follows. The channel is closed when the hub
// closes or drops the subscriber.
func (h *hub) subscribe(lastID string) (<-chan event, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var backlog []event
	if last, err := strconv.ParseUint(lastID, 10, 64); err == nil {
		for _, e := range h.ring {
			if e.ID > last {
				backlog = append(backlog, e)
			}
		}
	} else {
		for _, r := range h.running {
			backlog = append(backlog, r.start)
			backlog = append(backlog, r.lines...)
		}
		slices.SortFunc(backlog, func(a, b event) int { return cmp.Compare(a.ID, b.ID) })
	}
	c := make(chan event, h.queue+len(backlog))
	if h.closed {
		close(c)
		return c, func() {}
	}
	for _, e := range backlog {
		c <- e
	}
	h.subs[c] = struct{}{}
	return c, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[c]; ok {
			delete(h.subs, c)
			close(c)
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.subs {
		delete(h.subs, c)
		close(c)
	}
}
