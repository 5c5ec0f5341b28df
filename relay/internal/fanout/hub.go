// Package fanout turns the stream of accepted tasks into WebSocket frames
// for many dashboards at once.
//
// One hub goroutine owns everything that changes: a ring of recent events,
// the current counts and the set of clients. At most once per interval it
// builds one update frame, encodes it once and writes the same bytes to
// every client's socket without waiting; what a socket does not take goes
// to the bounded queue of that client's writer, and a client whose queue is
// full is too slow and is cut off, so that it never holds the others back. Joins (snapshots
// and resumes) are served by the same goroutine between two frames, which is
// what makes a resume exact: a client gets the events it missed up to the
// last frame sent, and every later event comes in the next frame.
package fanout

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookpipe/hookpipe/task"
)

// Config tunes a Hub. The zero value of a field means its default.
type Config struct {
	// Interval is the shortest time between two frames to a client;
	// default 10ms, so that the newest event is on every screen by the next
	// display frame.
	Interval time.Duration
	// MaxInterval bounds how far the interval widens when clients cannot
	// keep up with it; default 250ms.
	MaxInterval time.Duration
	// SnapshotEvents is how many recent events a snapshot carries;
	// default 100.
	SnapshotEvents int
	// RingSize is how many recent events the hub keeps for snapshots and
	// resumes; default 10000. A client that missed more gets a snapshot.
	RingSize int
	// QueueSize is how many frames may wait for one client before it counts
	// as too slow and is cut off; default 200 (two seconds at 10ms).
	QueueSize int
	// MaxConns is the most WebSocket connections served at once; default
	// 20000. Beyond it a connection is closed at once with
	// task.CloseTryAgainLater.
	MaxConns int
	// PingInterval is how often the hub pings each client; default 25s.
	PingInterval time.Duration
	// PongTimeout is how long a client may stay silent (no pong) before it
	// is dropped; default 60s.
	PongTimeout time.Duration
	// WriteTimeout bounds one write to a client; default 10s.
	WriteTimeout time.Duration
	// ReadLimit is the largest message a client may send, in bytes; default
	// 4096. Clients have nothing to say but pongs and close frames.
	ReadLimit int64
	// ResumeWait is how long a client that resumes from a sequence the hub
	// has not reached yet (it was served by a relay further ahead) waits for
	// the hub to catch up before it gets a snapshot instead; default 2s.
	ResumeWait time.Duration
	// MaxUpdateEvents, when positive, caps the events of a live update to
	// the newest ones; default 0 sends every event. Event bytes, not frame
	// count, bound how many clients a machine can serve: with 10,000 clients
	// and 2,000 events/s every event costs 3.4 GB/s of writes. A dashboard
	// shows the newest events only, and counts stay exact either way.
	// Resumes are always exact.
	MaxUpdateEvents int
	// SendBuffer, when positive, fixes each client socket's kernel send
	// buffer in bytes; default 0 keeps the kernel's autotuning (up to
	// megabytes per socket). A small buffer bounds the kernel memory of each
	// connection and lets a stalled client be noticed sooner.
	SendBuffer int
	// CheckOrigin decides which browser origins may connect; nil allows
	// every origin.
	CheckOrigin func(r *http.Request) bool
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Interval:       10 * time.Millisecond,
		MaxInterval:    250 * time.Millisecond,
		SnapshotEvents: 100,
		RingSize:       10000,
		QueueSize:      200,
		MaxConns:       20000,
		PingInterval:   25 * time.Second,
		PongTimeout:    60 * time.Second,
		WriteTimeout:   10 * time.Second,
		ReadLimit:      4096,
		ResumeWait:     2 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Interval <= 0 {
		c.Interval = d.Interval
	}
	if c.MaxInterval < c.Interval {
		c.MaxInterval = max(d.MaxInterval, c.Interval)
	}
	if c.SnapshotEvents <= 0 {
		c.SnapshotEvents = d.SnapshotEvents
	}
	if c.RingSize <= 0 {
		c.RingSize = d.RingSize
	}
	if c.QueueSize <= 0 {
		c.QueueSize = d.QueueSize
	}
	if c.MaxConns <= 0 {
		c.MaxConns = d.MaxConns
	}
	if c.PingInterval <= 0 {
		c.PingInterval = d.PingInterval
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = d.PongTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.ReadLimit <= 0 {
		c.ReadLimit = d.ReadLimit
	}
	if c.ResumeWait <= 0 {
		c.ResumeWait = d.ResumeWait
	}
	return c
}

// Close reasons sent to clients.
const (
	ReasonSlow     = "too slow: send queue full, reconnect and resume"
	ReasonFull     = "relay at its connection limit, try again later"
	ReasonShutdown = "relay shutting down, reconnect"
	ReasonReset    = "stream was recreated, reconnect for a snapshot"
)

// frame is one encoded WebSocket frame, header included, shared read-only
// by every client it is sent to. Writers hand these bytes to the socket as
// they are, several queued frames in one system call.
type frame struct {
	data []byte // the whole frame as it goes on the wire
	size int    // payload bytes, for the metrics
	ping bool   // a ping, not a message: not counted as a frame sent
}

// pingFrame is an empty ping, as a server sends it (unmasked).
var pingFrame = &frame{data: []byte{0x80 | websocket.PingMessage, 0}, ping: true}

// appendFrameHeader appends the header of one unmasked, final, uncompressed
// server frame of the given opcode and payload length (RFC 6455, 5.2).
func appendFrameHeader(b []byte, opcode int, n int) []byte {
	b = append(b, 0x80|byte(opcode))
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xffff:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// input is what the stream side hands the hub, in stream order.
type input struct {
	begin   bool // from = seq, last = pending: where the stream starts
	ev      task.Event
	bad     bool
	seq     uint64
	pending uint64
}

// Hub fans frames out to WebSocket clients. Create it with New, feed it
// with Begin, Publish, Skip and SetCounts, serve clients with ServeHTTP,
// and run it with Run.
type Hub struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader

	in         chan input
	countsIn   chan task.Counts
	joins      chan *client
	leaves     chan *client
	wantCounts chan struct{}
	done       chan struct{}
	clientsWG  sync.WaitGroup

	conns   atomic.Int64
	nextSeq atomic.Uint64 // next stream sequence the hub wants; 0 before Begin
	isLive  atomic.Bool
	stats   stats

	// Owned by the Run goroutine.
	ring        *ring
	begun       bool
	haveCounts  bool
	caughtUp    bool
	target      uint64 // stream's last sequence at Begin: live once reached
	seq         uint64 // newest sequence taken in
	sent        uint64 // sequence of the last update frame
	counts      task.Counts
	countsVer   uint64
	countsSent  uint64
	clients     map[*client]struct{}
	list        []*client // the clients again, for fan-out in parts
	held        []*client
	interval    time.Duration
	restarts    int           // streams recreated so far
	due         time.Time     // when the next tick should come
	work        time.Duration // what fan-outs take, pauses aside, averaged
	buf         []byte
	evbuf       [][]byte
	cuts        []cut
	part        int // fanoutPart; tests make it small
	snapCache   cachedFrame
	resumeCache cachedFrame
}

type cachedFrame struct {
	since, sent, ver uint64
	f                *frame
}

// New returns a hub with cfg, whose zero fields take their defaults.
func New(cfg Config, log *slog.Logger) *Hub {
	cfg = cfg.withDefaults()
	h := &Hub{
		cfg:        cfg,
		log:        log,
		in:         make(chan input, 4096),
		countsIn:   make(chan task.Counts, 1),
		joins:      make(chan *client, 256),
		leaves:     make(chan *client, 256),
		wantCounts: make(chan struct{}, 1),
		done:       make(chan struct{}),
		clients:    make(map[*client]struct{}),
		interval:   cfg.Interval,
		part:       fanoutPart,
	}
	origin := cfg.CheckOrigin
	if origin == nil {
		origin = func(*http.Request) bool { return true }
	}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   512,
		WriteBufferPool:  &sync.Pool{},
		CheckOrigin: func(r *http.Request) bool {
			if origin(r) {
				return true
			}
			h.stats.refusedOrigin.Add(1)
			return false
		},
	}
	return h
}

// NextSeq returns the stream sequence the hub wants next, so that a
// consumer recreated after a NATS restart goes on where the hub stopped; 0
// means Begin was not called yet.
func (h *Hub) NextSeq() uint64 { return h.nextSeq.Load() }

// RingSize returns how many events the hub keeps, so that the stream side
// knows how much history to load.
func (h *Hub) RingSize() int { return h.cfg.RingSize }

// Live reports whether the hub has taken in the stream as it stood at Begin,
// so that snapshots are complete.
func (h *Hub) Live() bool { return h.isLive.Load() }

// CountsWanted yields when events arrived whose counts the hub has not
// seen yet; the counts reader reads Redis then.
func (h *Hub) CountsWanted() <-chan struct{} { return h.wantCounts }

// Begin tells the hub that the stream is read from sequence from on and
// that its newest message is last (0 for an empty stream). It is called
// before the first Publish, and again only when the stream was recreated.
func (h *Hub) Begin(ctx context.Context, from, last uint64) error {
	h.nextSeq.Store(max(from, 1))
	return h.send(ctx, input{begin: true, seq: from, pending: last})
}

// Publish hands the hub the next event of the stream; pending is how many
// messages the stream holds after it.
func (h *Hub) Publish(ctx context.Context, ev task.Event, pending uint64) error {
	h.nextSeq.Store(ev.Seq + 1)
	return h.send(ctx, input{ev: ev, seq: ev.Seq, pending: pending})
}

// Skip tells the hub that stream message seq is not a valid task and is
// left out of every frame.
func (h *Hub) Skip(ctx context.Context, seq, pending uint64) error {
	h.nextSeq.Store(seq + 1)
	return h.send(ctx, input{bad: true, seq: seq, pending: pending})
}

func (h *Hub) send(ctx context.Context, in input) error {
	select {
	case h.in <- in:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-h.done:
		return context.Canceled
	}
}

// SetCounts hands the hub the counts just read from Redis. Only the newest
// matters, so an unread older value is replaced.
func (h *Hub) SetCounts(c task.Counts) {
	for {
		select {
		case h.countsIn <- c:
			return
		default:
		}
		select {
		case <-h.countsIn:
		default:
		}
	}
}

// Run serves until ctx ends, then closes every client with
// task.CloseGoingAway and waits, until deadline at most, for them to go.
func (h *Hub) Run(ctx context.Context, shutdown time.Duration) error {
	tick := time.NewTimer(h.interval)
	defer tick.Stop()
	// One ticker pings every client, through its queue, rather than a
	// timer in each writer: a writer then waits on its queue alone.
	ping := time.NewTicker(h.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			h.stop(shutdown)
			return nil
		case in := <-h.in:
			h.take(in)
			// Take whatever else is waiting, so a burst costs one wake-up.
			h.takeQueued(1024)
		case c := <-h.countsIn:
			h.setCounts(c)
		case c := <-h.joins:
			h.join(c, time.Now())
		case c := <-h.leaves:
			h.drop(c)
		case <-ping.C:
			h.cutOff(h.fanout(pingFrame))
		case <-tick.C:
			tick.Reset(h.tick(time.Now()))
		}
	}
}

func (h *Hub) take(in input) {
	if in.begin {
		if h.begun {
			h.restart()
		}
		h.begun = true
		h.ring = newRing(h.cfg.RingSize, max(in.seq, 1))
		h.seq = max(in.seq, 1) - 1
		h.sent = h.seq
		h.target = in.pending
		h.caughtUp = h.seq >= h.target
		h.maybeLive()
		return
	}
	if !h.begun || in.seq <= h.seq {
		return // a redelivery after a consumer reset
	}
	h.seq = in.seq
	h.stats.seq.Store(in.seq)
	h.stats.lag.Store(in.pending)
	if in.bad {
		h.stats.badEvents.Add(1)
	} else {
		h.ring.push(entry{seq: in.seq, json: appendEvent(nil, &in.ev)})
	}
	select {
	case h.wantCounts <- struct{}{}:
	default:
	}
	if !h.caughtUp && (in.pending == 0 || h.seq >= h.target) {
		h.caughtUp = true
		h.maybeLive()
	}
}

func (h *Hub) setCounts(c task.Counts) {
	if c != h.counts || !h.haveCounts {
		h.counts = c
		h.countsVer++
	}
	h.haveCounts = true
	h.maybeLive()
}

// restart forgets everything taken from a stream that was recreated
// (its sequences start again from 1): every client is told to reconnect,
// and gets a snapshot of the new stream once it is loaded.
func (h *Hub) restart() {
	h.log.Warn("stream was recreated, starting over", "old_seq", h.seq)
	for c := range h.clients {
		c.close(task.CloseTryAgainLater, ReasonReset)
	}
	h.clients = map[*client]struct{}{}
	h.list = nil
	h.stats.clients.Store(0)
	h.snapCache, h.resumeCache = cachedFrame{}, cachedFrame{}
	h.isLive.Store(false)
	h.restarts++
}

// maybeLive starts serving clients once the history is loaded and the
// counts were read: from then on every snapshot is complete. Nobody was
// served before, so the loaded history counts as sent.
func (h *Hub) maybeLive() {
	if h.isLive.Load() || !h.caughtUp || !h.haveCounts {
		return
	}
	h.sent, h.countsSent = h.seq, h.countsVer
	h.isLive.Store(true)
	h.log.Info("relay caught up with the stream", "seq", h.seq)
}

// tick sends an update frame to every client when anything changed (see
// update), and serves the joins that waited for the hub to catch up. It
// returns how long to wait before the next tick.
//
// Writing to every client takes time (about 50ms for 10,000 clients on
// two cores), and the clients, or the machine, need time to read what is
// written. So the hub spreads a fan-out over twice the time the writing
// took last time, or over an interval when that is longer: the parts go
// out at an even pace rather than in a burst that readers then queue
// behind, writing takes at most half of the hub's time, and the CPU is
// left to the rest (reading the stream, serving joins, other processes).
// Each client then gets a frame about once per fan-out, and an event
// waits at most that long for its client's next part.
func (h *Hub) tick(now time.Time) (next time.Duration) {
	// A tick that comes two intervals after it was due means the CPU did
	// not get to the hub: as good a sign of overload as clients falling
	// behind.
	late := !h.due.IsZero() && now.Sub(h.due) > 2*h.interval
	next = h.interval
	defer func() { h.due = time.Now().Add(next) }()
	if !h.isLive.Load() {
		return next
	}
	if h.sent != h.seq || h.countsSent != h.countsVer {
		// The first part's cut is what every client has at least: when
		// later parts got more, the next tick brings the first ones up.
		sent, ver, restarts := h.seq, h.countsVer, h.restarts
		backlog, slow, paused := h.update(max(h.interval, 2*h.work))
		if h.restarts == restarts { // else the old stream's sequences mean nothing
			h.sent, h.countsSent = sent, ver
		}
		h.cutOff(slow)
		took := time.Since(now)
		work := took - paused
		// Averaged, so that one slow fan-out (the CPU was busy elsewhere)
		// does not double the next one's spread.
		h.work += (work - h.work) / 4
		h.stats.fanouts.Add(1)
		h.stats.fanoutNanos.Add(int64(work))
		if late {
			backlog = len(h.list)
		}
		h.adapt(backlog, len(h.list))
		next = max(h.interval-took, 0)
	}
	if len(h.held) > 0 {
		held := h.held
		h.held = nil
		for _, c := range held {
			h.join(c, now)
		}
	}
	return next
}

// adapt widens the interval when many clients are a whole frame behind as
// the next is made (two or more frames pending: their sockets, or the CPU,
// cannot keep up) or the frame itself comes late, and narrows it again as
// they drain. A fan-out that takes longer than half the interval needs no
// rule of its own: tick spaces frames by it. Wider intervals mean fewer,
// larger frames: the same events and counts reach everyone with less work.
func (h *Hub) adapt(backlog, clients int) {
	if clients == 0 {
		return
	}
	switch {
	case backlog*10 > clients: // over 10% behind
		h.interval = min(h.interval*2, h.cfg.MaxInterval)
	case backlog*100 <= clients: // at most 1% behind
		h.interval = max(h.interval*3/4, h.cfg.Interval)
	}
	h.stats.intervalNanos.Store(int64(h.interval))
}

// join gives a new client its first frame and adds it to the set: a resume
// update with exactly the events after its sequence up to the last frame
// sent, or a snapshot.
func (h *Hub) join(c *client, now time.Time) {
	if isClosed(c) {
		// It left before it was served (its leave may have come first):
		// its writer ends the connection, and the hub never holds it.
		return
	}
	if !h.isLive.Load() || (c.resume && c.since > h.sent && now.Before(c.joined.Add(h.cfg.ResumeWait))) {
		// The client holds more than this hub sent so far: wait for the
		// stream (or for the hub's first catch-up) rather than go back.
		h.held = append(h.held, c)
		return
	}
	var f *frame
	if c.resume && c.since <= h.sent && h.ring.covers(c.since) {
		f = h.cached(&h.resumeCache, c.since, func() *frame {
			h.evbuf = h.ring.after(h.evbuf[:0], c.since, h.sent)
			return h.prepare(task.FrameUpdate, h.sent, h.evbuf)
		})
		h.stats.resumes.Add(1)
	} else {
		f = h.cached(&h.snapCache, 0, func() *frame {
			h.evbuf = h.ring.last(h.evbuf[:0], h.cfg.SnapshotEvents, h.sent)
			return h.prepare(task.FrameSnapshot, h.sent, h.evbuf)
		})
		h.stats.snapshots.Add(1)
	}
	c.sent, c.ver = h.sent, h.countsVer
	var st sendStats
	c.offer(f, &st) // nothing is pending yet: this cannot fail
	st.flush(&h.stats)
	h.clients[c] = struct{}{}
	c.idx = len(h.list)
	h.list = append(h.list, c)
	h.stats.clients.Store(int64(len(h.clients)))
}

// cached returns the frame in slot when it was made for the same since,
// last sequence and counts, and otherwise makes it, so that a crowd that
// reconnects at once costs one encoding.
func (h *Hub) cached(slot *cachedFrame, since uint64, make func() *frame) *frame {
	if slot.f != nil && slot.since == since && slot.sent == h.sent && slot.ver == h.countsVer {
		return slot.f
	}
	*slot = cachedFrame{since: since, sent: h.sent, ver: h.countsVer, f: make()}
	return slot.f
}

// prepare encodes one frame for every client that will get it: the JSON
// once, then a text frame around it, whose bytes every writer shares.
func (h *Hub) prepare(typ task.FrameType, seq uint64, events [][]byte) *frame {
	h.buf = appendFrame(h.buf[:0], typ, seq, &h.counts, events)
	data := make([]byte, 0, maxFrameHeader+len(h.buf))
	data = appendFrameHeader(data, websocket.TextMessage, len(h.buf))
	data = append(data, h.buf...)
	h.stats.built.Add(1)
	return &frame{data: data, size: len(h.buf)}
}

// maxFrameHeader is the longest header of a server frame.
const maxFrameHeader = 10

func (h *Hub) drop(c *client) {
	h.remove(c)
	for i, hc := range h.held {
		if hc == c {
			h.held = append(h.held[:i], h.held[i+1:]...)
			break
		}
	}
}

func (h *Hub) remove(c *client) {
	if _, ok := h.clients[c]; !ok {
		return
	}
	delete(h.clients, c)
	last := h.list[len(h.list)-1]
	h.list[c.idx], last.idx = last, c.idx
	h.list[len(h.list)-1] = nil
	h.list = h.list[:len(h.list)-1]
	h.stats.clients.Store(int64(len(h.clients)))
}

// takeQueued takes in up to n inputs that are waiting, without waiting.
func (h *Hub) takeQueued(n int) {
	for range n {
		select {
		case in := <-h.in:
			h.take(in)
		default:
			return
		}
	}
}

// takeWaiting takes in, without waiting, the events and counts that came
// in since the hub last looked: between two parts of a fan-out.
func (h *Hub) takeWaiting() {
	h.takeQueued(cap(h.in))
	select {
	case c := <-h.countsIn:
		h.setCounts(c)
	default:
	}
}

// update offers every client the events and counts it does not have yet.
// The clients are served in parts of h.part by a few writer goroutines
// per CPU, the parts spread evenly over spread, and each part's frame is
// cut just before a writer takes the part, with the events that came in
// meanwhile: an event waits for its client's next part rather than for a
// whole fan-out. It returns how many clients were a whole frame behind,
// those too slow to take the frame (their queue is full), and how long it
// paused to keep the pace.
func (h *Hub) update(spread time.Duration) (backlog int, slow []*client, paused time.Duration) {
	list := h.list // a stream restart empties h.list, not this
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
		h.cutFor(part)
		parts <- part // unbuffered: cut no further ahead than the writers
	}
	close(parts)
	wg.Wait()
	return backlog, slow, paused
}

// cutFor cuts the frames of part at the hub's newest sequence and counts.
// A client gets the events after the last frame it was given (usually the
// same for the whole part, so one frame is encoded for it), or a snapshot
// when the ring no longer holds them.
func (h *Hub) cutFor(part []*client) {
	seq, ver := h.seq, h.countsVer
	h.cuts = h.cuts[:0]
	for _, c := range part {
		if c.sent == seq && c.ver == ver {
			continue // it has everything
		}
		i := slices.IndexFunc(h.cuts, func(k cut) bool { return k.since == c.sent })
		if i < 0 {
			var f *frame
			if h.ring.covers(c.sent) {
				h.evbuf = h.ring.after(h.evbuf[:0], c.sent, seq)
				if n := h.cfg.MaxUpdateEvents; n > 0 && len(h.evbuf) > n {
					h.evbuf = h.evbuf[len(h.evbuf)-n:]
				}
				f = h.prepare(task.FrameUpdate, seq, h.evbuf)
			} else {
				h.evbuf = h.ring.last(h.evbuf[:0], h.cfg.SnapshotEvents, seq)
				f = h.prepare(task.FrameSnapshot, seq, h.evbuf)
			}
			i = len(h.cuts)
			h.cuts = append(h.cuts, cut{since: c.sent, f: f})
		}
		c.next = h.cuts[i].f
		c.sent, c.ver = seq, ver
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
			if behind {
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

// fanoutPart is how many clients get one cut of the stream, and the
// fewest worth a goroutine of their own in a fan-out.
const fanoutPart = 125

// fanoutPartsPerCPU splits a fan-out into more parts than there are CPUs:
// each write wakes a reader that often takes the CPU from the writing
// thread, and a part whose thread was preempted holds back fewer clients
// when the other CPUs can pick up the parts not started yet.
const fanoutPartsPerCPU = 4

// fanout offers f to every client, split over a few goroutines per CPU,
// and returns the clients too slow to take it (their queue is full).
func (h *Hub) fanout(f *frame) (slow []*client) {
	list := h.list
	parts := min(fanoutPartsPerCPU*runtime.GOMAXPROCS(0), max(len(list)/fanoutPart, 1))
	results := make([][]*client, parts)
	part := func(i int) {
		var st sendStats
		lo, hi := len(list)*i/parts, len(list)*(i+1)/parts
		for _, c := range list[lo:hi] {
			if ok, _ := c.offer(f, &st); !ok {
				results[i] = append(results[i], c)
			}
		}
		st.flush(&h.stats)
	}
	var wg sync.WaitGroup
	for i := 1; i < parts; i++ {
		wg.Go(func() { part(i) })
	}
	part(0)
	wg.Wait()
	return slices.Concat(results...)
}

func (h *Hub) stop(deadline time.Duration) {
	close(h.done)
	n := len(h.clients) + len(h.held)
	for c := range h.clients {
		c.close(task.CloseGoingAway, ReasonShutdown)
	}
	for _, c := range h.held {
		c.close(task.CloseGoingAway, ReasonShutdown)
	}
	// Joins that raced with the shutdown.
	for {
		select {
		case c := <-h.joins:
			c.close(task.CloseGoingAway, ReasonShutdown)
			continue
		default:
		}
		break
	}
	h.clients = map[*client]struct{}{}
	h.list = nil
	h.held = nil
	h.stats.clients.Store(0)
	waited := make(chan struct{})
	go func() { h.clientsWG.Wait(); close(waited) }()
	select {
	case <-waited:
		h.log.Info("relay closed its clients", "clients", n)
	case <-time.After(deadline):
		h.log.Warn("relay shutdown deadline passed with clients still open", "deadline", deadline)
	}
}
