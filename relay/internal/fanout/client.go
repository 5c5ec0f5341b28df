package fanout

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookpipe/hookpipe/task"
)

// client is one WebSocket connection. The hub offers it frames; its writer
// goroutine sends them; its reader goroutine takes pongs and close frames.
type client struct {
	conn   *websocket.Conn
	queue  chan *frame
	done   chan struct{}
	once   sync.Once
	code   int
	reason string

	resume bool
	since  uint64
	joined time.Time
}

// offer queues f without waiting and reports whether there was room.
func (c *client) offer(f *frame) bool {
	select {
	case c.queue <- f:
		return true
	default:
		return false
	}
}

// close asks the writer to send a close frame with code and reason (none
// when code is 0) and to end the connection. Only the first call counts.
func (c *client) close(code int, reason string) {
	c.once.Do(func() {
		c.code, c.reason = code, reason
		close(c.done)
	})
}

// ServeHTTP upgrades a request to a WebSocket and serves it until it ends.
// The query parameter since=<seq> resumes after that stream sequence.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &client{joined: time.Now()}
	if s := r.URL.Query().Get("since"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			http.Error(w, "since must be a stream sequence (an unsigned integer)", http.StatusBadRequest)
			return
		}
		c.resume, c.since = true, n
	}
	if h.conns.Add(1) > int64(h.cfg.MaxConns) {
		h.conns.Add(-1)
		h.refuse(w, r)
		return
	}
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		h.conns.Add(-1)
		return // the upgrader answered with an HTTP error
	}
	c.conn = conn
	if tc, ok := conn.NetConn().(*net.TCPConn); ok && h.cfg.SendBuffer > 0 {
		tc.SetWriteBuffer(h.cfg.SendBuffer)
	}
	c.queue = make(chan *frame, h.cfg.QueueSize)
	c.done = make(chan struct{})
	h.clientsWG.Add(1)
	select {
	case h.joins <- c:
	case <-h.done:
		c.close(task.CloseGoingAway, ReasonShutdown)
	}
	// Both loops get goroutines of their own and the handler returns, so
	// that net/http frees its per-request state (buffers, request,
	// response: several KiB) instead of keeping it for the connection's
	// life.
	go h.write(c)
	go h.read(c)
}

// refuse tells a client beyond the connection limit why it is turned away,
// in a close frame a browser can read.
func (h *Hub) refuse(w http.ResponseWriter, r *http.Request) {
	h.stats.refusedFull.Add(1)
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	msg := websocket.FormatCloseMessage(task.CloseTryAgainLater, ReasonFull)
	conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	conn.Close()
}

func (h *Hub) read(c *client) {
	conn := c.conn
	conn.SetReadLimit(h.cfg.ReadLimit)
	conn.SetReadDeadline(time.Now().Add(h.cfg.PongTimeout))
	conn.SetPongHandler(func(string) error {
		return conn.SetReadDeadline(time.Now().Add(h.cfg.PongTimeout))
	})
	// The writer answers a close frame, after the frame it may be writing,
	// rather than gorilla from this goroutine: no frame follows the close.
	conn.SetCloseHandler(func(code int, _ string) error {
		c.close(code, "")
		return nil
	})
	for {
		if _, _, err := conn.NextReader(); err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.close(websocket.CloseMessageTooBig, "message too big")
			} else {
				c.close(0, "") // the peer closed, went silent or vanished
			}
			break
		}
	}
	h.leave(c)
}

func isClosed(c *client) bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (h *Hub) leave(c *client) {
	select {
	case h.leaves <- c:
	case <-h.done:
	}
}

// maxBatch bounds how many queued frames one write system call carries.
const maxBatch = 64

// write sends c's frames and pings until the client is closed or a write
// fails. Frames are shared, encoded once: no encoding happens here. A
// writer that fell behind sends everything queued in one system call, so
// catching up costs less than keeping up did. Frames go to the socket
// directly: each write is whole (the socket serialises writes), and
// gorilla itself writes only control frames, also whole, from the reader.
func (h *Hub) write(c *client) {
	defer func() {
		c.conn.Close()
		h.conns.Add(-1)
		h.clientsWG.Done()
	}()
	nc := c.conn.NetConn()
	var batch [maxBatch][]byte
	iov := make([][]byte, 0, maxBatch)
	var bufs net.Buffers
	for {
		var f *frame
		select {
		case <-c.done:
			h.sayGoodbye(c)
			return
		case <-h.done:
			c.close(task.CloseGoingAway, ReasonShutdown)
			continue
		case f = <-c.queue:
		}
		if isClosed(c) {
			continue
		}
		n, frames, bytes := 0, 0, 0
		for {
			batch[n] = f.data
			n++
			if !f.ping {
				frames++
				bytes += f.size
			}
			if n == maxBatch {
				break
			}
			select {
			case f = <-c.queue:
				continue
			default:
			}
			break
		}
		nc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
		var err error
		if n == 1 {
			_, err = nc.Write(batch[0])
		} else {
			bufs = append(iov, batch[:n]...) // WriteTo consumes bufs
			_, err = bufs.WriteTo(nc)
		}
		clear(batch[:n])
		if err != nil {
			c.close(0, "")
			h.leave(c)
			return
		}
		h.stats.framesSent.Add(int64(frames))
		h.stats.bytesSent.Add(int64(bytes))
	}
}

func (h *Hub) sayGoodbye(c *client) {
	if c.code == 0 {
		return
	}
	msg := websocket.FormatCloseMessage(c.code, c.reason)
	c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
}

// stats are the hub's counters, read by Stats from any goroutine.
type stats struct {
	clients       atomic.Int64
	built         atomic.Int64
	framesSent    atomic.Int64
	bytesSent     atomic.Int64
	dropped       atomic.Int64
	slow          atomic.Int64
	refusedFull   atomic.Int64
	refusedOrigin atomic.Int64
	snapshots     atomic.Int64
	resumes       atomic.Int64
	badEvents     atomic.Int64
	seq           atomic.Uint64
	lag           atomic.Uint64
	intervalNanos atomic.Int64
}

// Stats is a point-in-time reading of the hub's counters.
type Stats struct {
	Clients       int64         // clients being served
	Conns         int64         // open connections, including ones being closed
	FramesBuilt   int64         // distinct frames encoded
	FramesSent    int64         // frames written to clients
	BytesSent     int64         // payload bytes written to clients
	Dropped       int64         // frames not delivered because a client's queue was full
	SlowCuts      int64         // clients cut off for being too slow
	RefusedFull   int64         // connections refused at the connection limit
	RefusedOrigin int64         // connections refused for their origin
	Snapshots     int64         // snapshot frames served on join
	Resumes       int64         // exact resumes served on join
	BadEvents     int64         // stream messages that were not valid tasks
	Seq           uint64        // newest stream sequence taken in
	Lag           uint64        // messages in the stream not taken in yet
	Interval      time.Duration // current time between frames
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	s := &h.stats
	iv := time.Duration(s.intervalNanos.Load())
	if iv == 0 {
		iv = h.cfg.Interval
	}
	return Stats{
		Clients:       s.clients.Load(),
		Conns:         h.conns.Load(),
		FramesBuilt:   s.built.Load(),
		FramesSent:    s.framesSent.Load(),
		BytesSent:     s.bytesSent.Load(),
		Dropped:       s.dropped.Load(),
		SlowCuts:      s.slow.Load(),
		RefusedFull:   s.refusedFull.Load(),
		RefusedOrigin: s.refusedOrigin.Load(),
		Snapshots:     s.snapshots.Load(),
		Resumes:       s.resumes.Load(),
		BadEvents:     s.badEvents.Load(),
		Seq:           s.seq.Load(),
		Lag:           s.lag.Load(),
		Interval:      iv,
	}
}
