package page

import (
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
// and it never blocks a batch on a slow page: a subscriber whose queue is
// full is dropped and reconnects.
type hub struct {
	mu     sync.Mutex
	seq    uint64
	ring   []event // the last len(ring) events, oldest first
	keep   int
	subs   map[chan event]struct{}
	queue  int
	closed bool
}

func newHub(keep, queue int) *hub {
	return &hub{keep: keep, queue: queue, subs: make(map[chan event]struct{})}
}

func (h *hub) publish(name string, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.seq++
	e := event{ID: h.seq, Name: name, Data: data}
	if len(h.ring) == h.keep {
		copy(h.ring, h.ring[1:])
		h.ring = h.ring[:len(h.ring)-1]
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
}

// subscribe returns a channel of events after lastID (every kept event
// after it; none when lastID is empty), and a function to unsubscribe. The
// channel is closed when the hub closes or drops the subscriber.
func (h *hub) subscribe(lastID string) (<-chan event, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := make(chan event, h.queue+h.keep)
	if h.closed {
		close(c)
		return c, func() {}
	}
	if last, err := strconv.ParseUint(lastID, 10, 64); err == nil {
		for _, e := range h.ring {
			if e.ID > last {
				c <- e
			}
		}
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
