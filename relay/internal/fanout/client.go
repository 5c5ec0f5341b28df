package fanout

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookpipe/hookpipe/task"
)

// client is one WebSocket connection, and the one owner of every byte
// written to it: data frames, pings, pongs and the close frame. The socket
// belongs either to the hub, which writes a frame itself while the socket
// takes it at once, or, once it does not (its kernel buffer is full), to
// the client's writer goroutine, which sends what is pending, blocking,
// until it has caught up and gives the socket back. Nothing is written in
// the middle of another frame. The reader goroutine only reads: it takes
// pongs, and hands pings and close frames to the writer. A pong answers
// the latest ping only (RFC 6455 allows it), so a client that pings faster
// than it reads costs one pending pong, not a queue of them.
type client struct {
	conn   *websocket.Conn
	raw    syscall.RawConn // nil when the socket cannot be written directly
	wake   chan struct{}   // tells the writer it owns the socket
	done   chan struct{}
	once   sync.Once
	code   int
	reason string

	mu       sync.Mutex
	writing  bool     // the writer goroutine owns the socket
	rest     []byte   // what is left to write of restF, started and not finished
	restF    *frame   // the frame rest belongs to
	pending  []*frame // frames waiting for the writer, oldest first
	pong     []byte   // the pong answering the latest ping, nil when none is due
	capacity int      // most frames pending before the client is too slow

	ended  func() // called once the connection is over
	resume bool
	since  uint64
	joined time.Time
	idx    int // position in the hub's list

	// Owned by the hub: the sequence and counts version of the last
	// frame the client was given, and the frame cut for it next.
	sent, version uint64
	next          *frame
}

// offer sends f to c without waiting: at once when the socket takes it, or
// by queueing it for the writer. It reports false when the queue is full
// (the client is too slow), and whether c was a whole frame behind.
func (c *client) offer(f *frame, st *sendStats) (ok, behind bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if isClosed(c) {
		return true, false
	}
	if !c.writing && c.raw != nil {
		n, err := writeNow(c.raw, f.data)
		if n == len(f.data) {
			st.add(f)
			return true, false
		}
		if err != nil {
			// A broken socket: the writer finds out, ends the connection and
			// tells the hub.
			n = 0
		}
		if n > 0 {
			c.rest, c.restF = f.data[n:], f
		} else {
			c.pending = append(c.pending, f)
		}
		c.handOver()
		return true, false
	}
	if len(c.pending) >= c.capacity {
		return false, true
	}
	behind = len(c.pending) > 0
	c.pending = append(c.pending, f)
	if !c.writing {
		c.handOver()
	}
	return true, behind
}

// handOver gives the socket to the writer goroutine; c.mu is held.
func (c *client) handOver() {
	c.writing = true
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// ponged queues the pong of a ping the client sent, replacing any earlier
// one not written yet; it runs on the reader goroutine, which never writes.
func (c *client) ponged(payload string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pong = controlFrame(opPong, []byte(payload))
	if !c.writing {
		c.handOver()
	}
}

// sendStats counts what one goroutine sent, added to the hub's counters
// once per fan-out rather than once per write.
type sendStats struct {
	frames, bytes int64
}

func (s *sendStats) add(f *frame) {
	if !f.ping {
		s.frames++
		s.bytes += int64(f.size)
	}
}

func (s *sendStats) flush(st *stats) {
	if s.frames > 0 {
		st.framesSent.Add(s.frames)
		st.bytesSent.Add(s.bytes)
	}
	*s = sendStats{}
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
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.Serve(w, r, nil) }

// Serve is ServeHTTP calling ended, when not nil, once the connection is
// over (or was never made), so that whoever admitted it can count it.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, ended func()) {
	served := false
	if ended != nil {
		defer func() {
			if !served {
				ended()
			}
		}()
	}
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
	if sc, ok := conn.NetConn().(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	c.capacity = h.cfg.QueueSize
	c.ended = ended
	served = true
	c.wake = make(chan struct{}, 1)
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
	nc := conn.NetConn()
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	nc.Write(closeFrame(task.CloseTryAgainLater, ReasonFull))
	conn.Close()
}

func (h *Hub) read(c *client) {
	conn := c.conn
	conn.SetReadLimit(h.cfg.ReadLimit)
	conn.SetReadDeadline(time.Now().Add(h.cfg.PongTimeout))
	conn.SetPongHandler(func(string) error {
		return conn.SetReadDeadline(time.Now().Add(h.cfg.PongTimeout))
	})
	// gorilla's own ping handler would write the pong from this goroutine,
	// possibly in the middle of a frame: the writer sends it.
	conn.SetPingHandler(func(payload string) error {
		c.ponged(payload)
		return nil
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

// maxBatch bounds how many pending frames one write system call carries,
// and maxBatchBytes their bytes (one frame is always taken): the write
// deadline bounds each call, so a sluggish reader must take one batch's
// bytes per WriteTimeout, not 64 frames' however large they are.
const (
	maxBatch      = 64
	maxBatchBytes = 64 << 10
)

// write sends what the hub could not write at once, and the pongs, until
// the client is closed or a write fails. It sends everything pending in
// one system call, so catching up costs less than keeping up did, and
// gives the socket back to the hub once nothing is pending. Frames are
// shared and encoded once; they go to the socket as they are, the rest of
// a frame begun always first, so that frames never interleave.
func (h *Hub) write(c *client) {
	defer func() {
		c.conn.Close()
		h.conns.Add(-1)
		h.clientsWG.Done()
		if c.ended != nil {
			c.ended()
		}
	}()
	nc := c.conn.NetConn()
	// Allocated when the socket first fills, which an idle or quick client
	// never does: they would cost every connection over a KiB.
	var batch []*frame
	var iov [][]byte
	var bufs net.Buffers
	var st sendStats
	for {
		select {
		case <-c.done:
			// Keep the hub off the socket: nothing follows the close frame.
			c.mu.Lock()
			c.writing = true
			c.mu.Unlock()
			h.sayGoodbye(c)
			return
		case <-h.done:
			c.close(task.CloseGoingAway, ReasonShutdown)
			continue
		case <-c.wake:
		}
		if batch == nil {
			batch = make([]*frame, maxBatch+2)
			iov = make([][]byte, 0, maxBatch+2)
		}
		for !isClosed(c) {
			c.mu.Lock()
			iov = iov[:0]
			n := 0
			if c.rest != nil {
				iov = append(iov, c.rest)
				batch[n] = c.restF
				n++
				c.rest, c.restF = nil, nil
			}
			if c.pong != nil {
				iov = append(iov, c.pong)
				batch[n] = pongMark
				n++
				c.pong = nil
			}
			k, size := 0, 0
			for _, f := range c.pending[:min(len(c.pending), maxBatch)] {
				if k > 0 && size+len(f.data) > maxBatchBytes {
					break
				}
				iov = append(iov, f.data)
				batch[n] = f
				n++
				k++
				size += len(f.data)
			}
			rest := copy(c.pending, c.pending[k:])
			clear(c.pending[rest:])
			c.pending = c.pending[:rest]
			if n == 0 {
				c.writing = false
				c.mu.Unlock()
				break
			}
			c.mu.Unlock()
			nc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
			var err error
			if n == 1 {
				_, err = nc.Write(iov[0])
			} else {
				bufs = iov // WriteTo consumes bufs, not iov
				_, err = bufs.WriteTo(nc)
			}
			if err != nil {
				c.close(0, "")
				h.leave(c)
				return
			}
			// No deadline for the hub's writes, which never wait.
			nc.SetWriteDeadline(time.Time{})
			for i := range batch[:n] {
				st.add(batch[i])
				batch[i] = nil
			}
			st.flush(&h.stats)
		}
	}
}

// pongMark stands for a pong in a writer's batch: not counted as a frame.
var pongMark = &frame{ping: true}

// sayGoodbye finishes the frame begun, if any, and sends the close frame,
// each within a second: a client that stopped reading is closed without.
func (h *Hub) sayGoodbye(c *client) {
	if c.code == 0 {
		return
	}
	nc := c.conn.NetConn()
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.mu.Lock()
	rest := c.rest
	c.rest, c.restF = nil, nil
	c.mu.Unlock()
	if rest != nil {
		if _, err := nc.Write(rest); err != nil {
			return
		}
	}
	nc.Write(closeFrame(c.code, c.reason))
}
