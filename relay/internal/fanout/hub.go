// Package fanout turns the stream of accepted tasks into WebSocket frames
// for many dashboards at once.
//
// One hub goroutine owns everything that changes: the timeline (a ring of
// recent events, the newest sequence, the counts exact as of it), the
// encoder and its caches, the pacer and the set of clients. At most once
// per interval it cuts update frames and broadcasts them: each frame is
// encoded once and its bytes offered to every client it is for, without
// waiting; what a socket does not take goes to the bounded queue of that
// client's writer, and a client whose queue is full is too slow and is cut
// off, so that it never holds the others back. Joins (snapshots and
// resumes) are served by the same goroutine between two frames, which is
// what makes a resume exact: a client gets the events it missed up to the
// last frame sent, and every later event comes in the next frame.
package fanout

import (
	"context"
	"log/slog"
	"net/http"
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
	// 4096. Clients have nothing to say but pings, pongs and close frames.
	ReadLimit int64
	// ResumeWait is how long a client that resumes from a sequence beyond
	// the end of the stream as the hub knows it waits before it gets a
	// snapshot instead; default 2s. One whose sequence the stream holds
	// and the hub has not reached yet (it was served by a relay further
	// ahead) waits until the hub has it: a client is never sent a sequence
	// below the one it holds.
	ResumeWait time.Duration
	// MaxResumeEvents is the most events a resume carries; a client further
	// behind gets a snapshot instead, so that a crowd resuming from many
	// old sequences cannot make the hub encode its whole ring for each;
	// default 1000.
	MaxResumeEvents int
	// MaxUpdateEvents, when positive, caps the events of a live update to
	// the newest ones; default 0 sends every event. Event bytes, not frame
	// count, bound how many clients a machine can serve: every event is
	// written once per client (relay/README.md gives the figures). A dashboard
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
		Interval:        10 * time.Millisecond,
		MaxInterval:     250 * time.Millisecond,
		SnapshotEvents:  100,
		RingSize:        10000,
		QueueSize:       200,
		MaxResumeEvents: 1000,
		MaxConns:        20000,
		PingInterval:    25 * time.Second,
		PongTimeout:     60 * time.Second,
		WriteTimeout:    10 * time.Second,
		ReadLimit:       4096,
		ResumeWait:      2 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&c.Interval, d.Interval)
	if c.MaxInterval < c.Interval {
		c.MaxInterval = max(d.MaxInterval, c.Interval)
	}
	setInt(&c.SnapshotEvents, d.SnapshotEvents)
	setInt(&c.RingSize, d.RingSize)
	setInt(&c.QueueSize, d.QueueSize)
	setInt(&c.MaxResumeEvents, d.MaxResumeEvents)
	setInt(&c.MaxConns, d.MaxConns)
	set(&c.PingInterval, d.PingInterval)
	set(&c.PongTimeout, d.PongTimeout)
	set(&c.WriteTimeout, d.WriteTimeout)
	set(&c.ResumeWait, d.ResumeWait)
	if c.ReadLimit <= 0 {
		c.ReadLimit = d.ReadLimit
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

// What the stream side hands the hub, in stream order.
type (
	streamMsg interface{ takeIn(h *Hub) }
	// beginMsg: reading starts at from; the stream's newest message is
	// last; Redis's base is as of its watermark.
	beginMsg struct {
		from, last uint64
		base       Base
		ratesFrom  time.Time
	}
	// eventMsg: the next valid task, pending more after it.
	eventMsg struct {
		ev      task.Event
		pending uint64
	}
	// skipMsg: the next message is not a task a receiver stored.
	skipMsg struct{ seq, pending uint64 }
)

// Hub fans frames out to WebSocket clients. Create it with New, feed it
// with Begin, Append, Skip and Rebase, serve clients with ServeHTTP, and
// run it with Run.
type Hub struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader

	in        chan streamMsg
	rebaseIn  chan Base
	joins     chan *client
	leaves    chan *client
	done      chan struct{}
	clientsWG sync.WaitGroup

	conns   atomic.Int64
	nextSeq atomic.Uint64 // next stream sequence the hub wants; 0 before Begin
	isLive  atomic.Bool
	stats   stats

	// Owned by the Run goroutine.
	tl          timeline
	enc         encoder
	pace        pacer
	pending     uint64      // messages the stream held after the newest taken in
	fm          meta        // the last frame's, reused
	rw          task.Rates  // the last frame's rate buckets, reused
	sent        uint64      // sequence of the last update frame
	sentVersion uint64      // and the counts' version then
	sentCounts  task.Counts // and the counts then
	clients     map[*client]struct{}
	list        []*client // the clients again, for fan-out in parts
	held        []*client
	cuts        []cut
	part        int // fanoutPart; tests make it small
}

// New returns a hub with cfg, whose zero fields take their defaults.
func New(cfg Config, log *slog.Logger) *Hub {
	cfg = cfg.withDefaults()
	h := &Hub{
		cfg:      cfg,
		log:      log,
		in:       make(chan streamMsg, 4096),
		rebaseIn: make(chan Base, 1),
		joins:    make(chan *client, 256),
		leaves:   make(chan *client, 256),
		done:     make(chan struct{}),
		clients:  make(map[*client]struct{}),
		pace:     newPacer(cfg.Interval, cfg.MaxInterval),
		part:     fanoutPart,
	}
	h.enc.built = func() { h.stats.built.Add(1) }
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

// Begin tells the hub that the stream is read from sequence from on, that
// its newest message is last (0 for an empty stream), and what Redis held
// as its fold then: from must be at most base.Watermark+1, so that the hub
// sees every event after the watermark and counts it. It is called before
// the first Append, and again only when the stream was made anew.
// ratesFrom, when set, is the oldest time the stream still holds events
// of, when that is within the rate chart's window: the chart knows nothing
// before it.
func (h *Hub) Begin(ctx context.Context, from, last uint64, base Base, ratesFrom time.Time) error {
	h.nextSeq.Store(max(from, 1))
	return h.send(ctx, beginMsg{from: from, last: last, base: base, ratesFrom: ratesFrom})
}

// Append hands the hub the next event of the stream; pending is how many
// messages the stream holds after it.
func (h *Hub) Append(ctx context.Context, ev task.Event, pending uint64) error {
	h.nextSeq.Store(ev.Seq + 1)
	return h.send(ctx, eventMsg{ev: ev, pending: pending})
}

// Skip tells the hub that stream message seq is not a task a receiver
// stored, and is left out of every count and frame.
func (h *Hub) Skip(ctx context.Context, seq, pending uint64) error {
	h.nextSeq.Store(seq + 1)
	return h.send(ctx, skipMsg{seq: seq, pending: pending})
}

func (h *Hub) send(ctx context.Context, m streamMsg) error {
	select {
	case h.in <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-h.done:
		return context.Canceled
	}
}

// Rebase hands the hub what Redis holds now. When its watermark is one the
// hub can bring up to its own sequence with the events it keeps, and the
// result differs from the hub's counts (Redis was repaired), the hub takes
// it. Only the newest matters, so an unread older one is replaced.
func (h *Hub) Rebase(b Base) {
	for {
		select {
		case h.rebaseIn <- b:
			return
		default:
		}
		select {
		case <-h.rebaseIn:
		default:
		}
	}
}

func (m beginMsg) takeIn(h *Hub) {
	if h.tl.begin(m.from, m.last, m.base, h.cfg.RingSize, m.ratesFrom) {
		h.restart()
	}
	h.sent, h.sentVersion, h.sentCounts = h.tl.seq, h.tl.version, h.tl.counts
	h.maybeLive()
}

func (m eventMsg) takeIn(h *Hub) {
	if h.tl.append(&m.ev, appendEvent(nil, &m.ev)) {
		h.arrived(m.ev.Seq, m.pending)
	}
}

func (m skipMsg) takeIn(h *Hub) {
	if h.tl.skip(m.seq) {
		h.stats.badEvents.Add(1)
		h.arrived(m.seq, m.pending)
	}
}

func (h *Hub) arrived(seq, pending uint64) {
	h.pending = pending
	h.stats.seq.Store(seq)
	h.stats.lag.Store(pending)
	if h.tl.arrived(pending) {
		h.maybeLive()
	}
}

// Run serves until ctx ends, then closes every client with
// task.CloseGoingAway and waits, until deadline at most, for them to go.
func (h *Hub) Run(ctx context.Context, shutdown time.Duration) error {
	tick := time.NewTimer(h.pace.interval)
	defer tick.Stop()
	// One ticker pings every client, through the same broadcast as the
	// frames, rather than a timer in each writer.
	ping := time.NewTicker(h.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			h.stop(shutdown)
			return nil
		case m := <-h.in:
			m.takeIn(h)
			// Take whatever else is waiting, so a burst costs one wake-up.
			h.takeQueued(1024)
		case b := <-h.rebaseIn:
			h.rebase(b)
		case c := <-h.joins:
			h.join(c, time.Now())
		case c := <-h.leaves:
			h.drop(c)
		case <-ping.C:
			_, slow, _ := h.broadcast(0, pingAll)
			h.cutOff(slow)
		case <-tick.C:
			tick.Reset(h.tick(time.Now()))
		}
	}
}

func (h *Hub) rebase(b Base) {
	if h.tl.rebase(b) {
		h.log.Warn("counts rebased on what Redis holds now (it was repaired or restored)",
			"watermark", b.Watermark, "seq", h.tl.seq)
	}
}

// restart forgets every client of a stream that was made anew (its
// sequences start again from 1): each is told to reconnect, and gets a
// snapshot of the new stream once it is loaded.
func (h *Hub) restart() {
	h.log.Warn("stream was recreated, starting over")
	for c := range h.clients {
		c.close(task.CloseTryAgainLater, ReasonReset)
	}
	h.clients = map[*client]struct{}{}
	h.list = nil
	h.stats.clients.Store(0)
	h.enc.forget()
	h.isLive.Store(false)
}

// maybeLive starts serving clients once the history is loaded: from then
// on every snapshot is complete. Nobody was served before, so the loaded
// history counts as sent.
func (h *Hub) maybeLive() {
	if h.isLive.Load() || !h.tl.caughtUp {
		return
	}
	h.sent, h.sentVersion, h.sentCounts = h.tl.seq, h.tl.version, h.tl.counts
	h.isLive.Store(true)
	h.log.Info("relay caught up with the stream", "seq", h.tl.seq)
}

// tick sends an update frame to every client when anything changed, and
// serves the joins that waited for the hub to catch up. It returns how
// long to wait before the next tick.
func (h *Hub) tick(now time.Time) (next time.Duration) {
	late := h.pace.late(now)
	next = h.pace.interval
	defer func() { h.pace.next(next) }()
	if !h.isLive.Load() {
		return next
	}
	tl := &h.tl
	if h.sent != tl.seq || h.sentVersion != tl.version {
		// The first part's cut is what every client has at least: when
		// later parts got more, the next tick brings the first ones up.
		seq, version, counts, restarts := tl.seq, tl.version, tl.counts, tl.restarts
		backlog, slow, paused := h.broadcast(h.pace.spread(), h.cutFor)
		if tl.restarts == restarts { // else the old stream's sequences mean nothing
			h.sent, h.sentVersion, h.sentCounts = seq, version, counts
		}
		h.cutOff(slow)
		took := time.Since(now)
		h.stats.fanouts.Add(1)
		h.stats.fanoutNanos.Add(int64(took - paused))
		if late {
			backlog = len(h.list)
		}
		next = h.pace.done(took, paused)
		h.pace.adapt(backlog, len(h.list))
		h.stats.intervalNanos.Store(int64(h.pace.interval))
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

// updateRates returns the rate buckets an update from since to upto
// carries: the seconds its events fell in, whole; nil when it has none.
func (h *Hub) updateRates(since, upto uint64) *task.Rates {
	tl := &h.tl
	lo, hi, ok := tl.ring.seconds(since, upto)
	if !ok {
		return nil
	}
	lo = max(lo, tl.rates.newest-task.RateWindow+1)
	if lo > hi {
		return nil
	}
	return tl.rates.window(&h.rw, lo, hi)
}

// snapshotRates returns the rate buckets of a snapshot: the whole window.
func (h *Hub) snapshotRates() *task.Rates { return h.tl.rates.snapshot(&h.rw, time.Now()) }

// meta says that a frame is made now and what holds the pipeline back:
// the interval when widened, the capped events of an update, and how far
// the hub is behind the stream and Redis's fold behind the hub.
func (h *Hub) meta(capped int, rates *task.Rates) *meta {
	h.fm = meta{sent: time.Now(), health: task.Health{Capped: capped, StreamLag: h.pending, FoldLag: h.tl.foldLag}, rates: rates}
	if h.pace.interval > h.cfg.Interval {
		h.fm.health.IntervalMS = max(h.pace.interval.Milliseconds(), 1)
	}
	return &h.fm
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
	tl := &h.tl
	if !h.isLive.Load() || (c.resume && c.since > h.sent &&
		(c.since <= tl.seq+h.pending || now.Before(c.joined.Add(h.cfg.ResumeWait)))) {
		// The client holds more than this hub sent so far: wait for the
		// stream rather than send it back in time. A sequence beyond the
		// stream's end gets a snapshot after ResumeWait.
		h.held = append(h.held, c)
		return
	}
	var f *frame
	enc := &h.enc
	if c.resume && c.since <= h.sent && h.sent-c.since <= uint64(h.cfg.MaxResumeEvents) && tl.ring.covers(c.since) {
		f = enc.cached(&enc.resume, c.since, h.sent, h.sentVersion, func() *frame {
			enc.evbuf = tl.ring.after(enc.evbuf[:0], c.since, h.sent)
			return enc.frame(task.FrameUpdate, h.sent, &h.sentCounts, enc.evbuf, h.meta(0, h.updateRates(c.since, h.sent)))
		})
		h.stats.resumes.Add(1)
	} else {
		f = enc.cached(&enc.snap, 0, h.sent, h.sentVersion, func() *frame {
			enc.evbuf = tl.ring.last(enc.evbuf[:0], h.cfg.SnapshotEvents, h.sent)
			return enc.frame(task.FrameSnapshot, h.sent, &h.sentCounts, enc.evbuf, h.meta(0, h.snapshotRates()))
		})
		h.stats.snapshots.Add(1)
	}
	c.sent, c.version = h.sent, h.sentVersion
	var st sendStats
	c.offer(f, &st) // nothing is pending yet: this cannot fail
	st.flush(&h.stats)
	h.clients[c] = struct{}{}
	c.idx = len(h.list)
	h.list = append(h.list, c)
	h.stats.clients.Store(int64(len(h.clients)))
}

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

// takeQueued takes in up to n stream messages that are waiting, without
// waiting.
func (h *Hub) takeQueued(n int) {
	for range n {
		select {
		case m := <-h.in:
			m.takeIn(h)
		default:
			return
		}
	}
}

// takeWaiting takes in, without waiting, what came in since the hub last
// looked: between two parts of a broadcast.
func (h *Hub) takeWaiting() {
	h.takeQueued(cap(h.in))
	select {
	case b := <-h.rebaseIn:
		h.rebase(b)
	default:
	}
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
