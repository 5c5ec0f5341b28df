// Package publish puts accepted tasks into the JetStream stream, with the
// webhook id as message id so that the stream itself drops a repeated
// publish within its duplicate window, and the task's fingerprint, so that
// what did not come through a receiver can be told.
package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/natsconn"
	"github.com/hookpipe/hookpipe/plumbing/taskstream"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrUnavailable wraps every failure to get a publish acknowledged: the
// caller should ask the sender to retry.
var ErrUnavailable = errors.New("publish: stream unavailable")

// ErrInProcess is the answer of a clustered stream to a publish whose
// message id another publish is storing right now: retrying is safe.
var ErrInProcess = errors.New("publish: a message with this id is being stored")

// Publisher publishes tasks to JetStream over one NATS connection.
//
// It publishes each task with a reply subject of its own under one inbox
// and waits for the stream's acknowledgement there, as JetStream's
// asynchronous publishing does, with less work per task: one subscription
// takes every acknowledgement, a table maps its token to the waiting
// request, and the acknowledgement is checked for an error without
// decoding it. Start only registers a publish and queues its message;
// Flush hands what is queued to the connection, in order, so that a batch
// started in a row leaves in one write, and whoever starts publishes can
// answer its callers before it may wait on the network.
type Publisher struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	settings task.StreamSettings
	log      *slog.Logger
	ready    atomic.Bool // the stream is known to exist
	stream   atomic.Pointer[jetstream.Stream]
	ensure   sync.Mutex // one stream check at a time, not one per request

	inbox   string // the acknowledgements' subjects: inbox + token
	acks    *nats.Subscription
	mu      sync.Mutex
	next    uint64             // last token given out
	waiting map[uint64]*waiter // by token, until acknowledged or given up
	busy    sync.WaitGroup     // publishes started and not waited for, for Close
	pool    sync.Pool          // of *waiter
	out     chan outgoing      // started, for Flush
}

// outgoing is a started message, with the token it is acknowledged under.
type outgoing struct {
	msg   *nats.Msg
	token uint64
}

// maxQueued bounds the messages started and not yet handed to the
// connection: beyond it NATS is not taking them, and publishes fail at once.
const maxQueued = 8192

// waiter is one publish waiting for its acknowledgement.
type waiter struct {
	done chan ack // buffered: the acknowledgement never waits for the request
}

// ack is the stream's answer to one publish.
type ack struct {
	Ack
	err error
}

// Ack is the stream's acknowledgement of a publish.
type Ack struct {
	// Seq is the message's stream sequence; for a duplicate, the sequence
	// of the copy stored first.
	Seq uint64
	// Duplicate says that the stream had the message id already, within
	// its duplicate window, and stored nothing.
	Duplicate bool
}

// Connect connects to NATS at url. It returns at once even when NATS does
// not answer yet: the connection keeps trying in the background, and
// publishes fail with ErrUnavailable until it is up. timeout bounds a
// write to a server that stopped reading; the wait for an acknowledgement
// is bounded by the context given to Publish, and ends at once when the
// connection is lost.
func Connect(o natsconn.Options, stream task.StreamSettings, timeout time.Duration, log *slog.Logger) (*Publisher, error) {
	p := &Publisher{settings: stream, log: log}
	nc, err := natsconn.Connect(o,
		nats.Name("hookpipe-receiver"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		// Publishing while disconnected must fail at once rather than sit
		// in a buffer that may or may not be flushed after the reply.
		nats.ReconnectBufSize(-1),
		// A server that stops reading must not hold every request behind
		// the connection's write lock for nats.go's default minute, and a
		// silent one is noticed within seconds rather than minutes.
		nats.FlusherTimeout(timeout),
		nats.PingInterval(5*time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
			// The acknowledgements of what was sent on the lost connection
			// will not come: fail those publishes now rather than at their
			// deadlines. Publishing while disconnected fails at once, so all
			// that wait were sent on it, unless this runs after a reconnect
			// (callbacks run late): then they are left to their deadlines.
			if !nc.IsConnected() {
				p.failAll(nats.ErrConnectionClosed)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			p.ready.Store(false)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("publish: jetstream: %w", err)
	}
	p.nc, p.js = nc, js
	p.inbox = nc.NewInbox() + "."
	p.waiting = make(map[uint64]*waiter)
	p.pool.New = func() any { return &waiter{done: make(chan ack, 1)} }
	p.out = make(chan outgoing, maxQueued)
	// Subscribed while disconnected, the subscription is made on connect;
	// it is made again after every reconnect.
	p.acks, err = nc.Subscribe(p.inbox+"*", p.acknowledged)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("publish: subscribe to acknowledgements: %w", err)
	}
	// Acknowledgements must not be dropped for a slow subscriber: a
	// dropped one turns an accepted task into a 503 and a retry.
	p.acks.SetPendingLimits(-1, -1)
	return p, nil
}

// Flush hands every started message to the connection, in order. It may
// wait on the network: for the connection's lock while a write to a server
// that stopped reading times out.
func (p *Publisher) Flush() {
	for {
		select {
		case o := <-p.out:
			if err := p.nc.PublishMsg(o.msg); err != nil {
				p.answer(o.token, ack{err: err})
			}
		default:
			return
		}
	}
}

// EnsureStream creates the stream when it does not exist, and checks one
// that does (taskstream.Ensure).
func (p *Publisher) EnsureStream(ctx context.Context) error {
	p.ensure.Lock()
	defer p.ensure.Unlock()
	if p.ready.Load() {
		return nil
	}
	st, err := taskstream.Ensure(ctx, p.js, p.settings, p.log)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	p.stream.Store(&st)
	p.ready.Store(true)
	return nil
}

// Publish stores data on subject and waits for the stream's
// acknowledgement, until ctx ends. A non-empty id is the message id the
// stream deduplicates on; fingerprint is the task's (task.Fingerprint).
func (p *Publisher) Publish(ctx context.Context, id, subject string, data []byte, fingerprint string) (Ack, error) {
	pd := p.Start(id, subject, data, fingerprint)
	p.Flush()
	return pd.Wait(ctx)
}

// Stored returns the data of the message the stream holds at seq.
func (p *Publisher) Stored(ctx context.Context, seq uint64) ([]byte, error) {
	st := p.stream.Load()
	if st == nil {
		if err := p.EnsureStream(ctx); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		st = p.stream.Load()
	}
	m, err := (*st).GetMsg(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("publish: stored message %d: %w", seq, err)
	}
	return m.Data, nil
}

// Pending is a publish on its way: Wait for its acknowledgement.
type Pending struct {
	p     *Publisher
	token uint64
	w     *waiter
	err   error // the publish failed at once
	// Set when Start could not send (the stream is not known to exist):
	// Wait checks the stream and publishes.
	id, subject, fingerprint string
	data                     []byte
}

// Start queues data for subject, for the next Flush, and returns the
// publish, for Wait. It never waits, so that one goroutine can start the
// publishes of many requests in a row, and Flush them together; when the
// stream is not known to exist it leaves the publish to Wait, which checks
// first. A non-empty id is the message id the stream deduplicates on.
func (p *Publisher) Start(id, subject string, data []byte, fingerprint string) *Pending {
	if !p.ready.Load() {
		return &Pending{p: p, id: id, subject: subject, data: data, fingerprint: fingerprint}
	}
	w := p.pool.Get().(*waiter)
	p.busy.Add(1)
	p.mu.Lock()
	p.next++
	token := p.next
	p.waiting[token] = w
	p.mu.Unlock()
	msg := &nats.Msg{Subject: subject, Reply: p.inbox + strconv.FormatUint(token, 36), Data: data,
		Header: nats.Header{task.HeaderFingerprint: []string{fingerprint}}}
	if id != "" {
		msg.Header[jetstream.MsgIDHeader] = []string{id}
	}
	select {
	case p.out <- outgoing{msg, token}:
	default:
		p.giveUp(token, w)
		p.busy.Done()
		return &Pending{err: fmt.Errorf("%w: publish %s: %d messages wait for NATS to take them", ErrUnavailable, subject, maxQueued)}
	}
	return &Pending{p: p, token: token, w: w, subject: subject}
}

// Wait returns the stream's acknowledgement of the publish, or why there
// is none: the stream failed it, or ctx ended.
func (pd *Pending) Wait(ctx context.Context) (Ack, error) {
	p := pd.p
	switch {
	case pd.err != nil:
		return Ack{}, pd.err
	case pd.w == nil:
		if p.nc.Status() != nats.CONNECTED {
			return Ack{}, fmt.Errorf("%w: nats %s", ErrUnavailable, p.nc.Status())
		}
		if err := p.EnsureStream(ctx); err != nil {
			return Ack{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		next := p.Start(pd.id, pd.subject, pd.data, pd.fingerprint)
		if next.w == nil && next.err == nil {
			return Ack{}, fmt.Errorf("%w: publish %s: stream gone again", ErrUnavailable, pd.subject)
		}
		p.Flush()
		return next.Wait(ctx)
	}
	defer p.busy.Done()
	var a ack
	select {
	case a = <-pd.w.done:
	case <-ctx.Done():
		if p.giveUp(pd.token, pd.w) {
			return Ack{}, fmt.Errorf("%w: publish %s: %w", ErrUnavailable, pd.subject, ctx.Err())
		}
		// The answer came as the deadline passed and is on its way: take
		// it, rather than fail a publish the stream may have stored.
		a = <-pd.w.done
	}
	p.pool.Put(pd.w)
	if a.err != nil {
		return Ack{}, fmt.Errorf("%w: publish %s: %w", ErrUnavailable, pd.subject, a.err)
	}
	return a.Ack, nil
}

// giveUp stops waiting for token's acknowledgement, and reports whether it
// did: false when the answer is being delivered to w right now.
func (p *Publisher) giveUp(token uint64, w *waiter) (mine bool) {
	p.mu.Lock()
	_, mine = p.waiting[token]
	delete(p.waiting, token)
	p.mu.Unlock()
	if mine {
		p.pool.Put(w)
	}
	return mine
}

// errNoStream is the answer to a publish that no stream took in.
var errNoStream = errors.New("no stream takes the subject")

// acknowledged hands the stream's answer to the publish waiting for it.
func (p *Publisher) acknowledged(m *nats.Msg) {
	i := strings.LastIndexByte(m.Subject, '.')
	token, err := strconv.ParseUint(m.Subject[i+1:], 36, 64)
	if err != nil {
		return
	}
	p.answer(token, p.readAck(m))
}

// answer hands a to the publish of token, unless it gave up already.
func (p *Publisher) answer(token uint64, a ack) {
	p.mu.Lock()
	w := p.waiting[token]
	delete(p.waiting, token)
	p.mu.Unlock()
	if w != nil {
		w.done <- a
	}
}

var (
	seqField       = []byte(`"seq":`)
	duplicateField = []byte(`"duplicate":`)
)

// readAck reads the stream's answer: the sequence it stored the message
// at (or, for a duplicate, the first copy's), or why it did not. Only a
// refusal is decoded in full, for its reason.
func (p *Publisher) readAck(m *nats.Msg) ack {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		// Nobody listens on the subject: the stream is gone, for instance
		// after NATS restarted on empty storage. Create it again before the
		// next publish.
		p.ready.Store(false)
		return ack{err: errNoStream}
	}
	if bytes.Contains(m.Data, []byte(`"error"`)) {
		var a struct {
			Error *jetstream.APIError `json:"error"`
		}
		if err := json.Unmarshal(m.Data, &a); err != nil || a.Error == nil {
			return ack{err: fmt.Errorf("unreadable acknowledgement %q", m.Data)}
		}
		if a.Error.ErrorCode == jsErrDuplicateInProcess {
			return ack{err: fmt.Errorf("%w: %w", ErrInProcess, a.Error)}
		}
		return ack{err: a.Error}
	}
	_, rest, ok := bytes.Cut(m.Data, seqField)
	var seq uint64
	n := 0
	for ; ok && n < len(rest) && rest[n] >= '0' && rest[n] <= '9'; n++ {
		seq = seq*10 + uint64(rest[n]-'0')
	}
	if n == 0 {
		return ack{err: fmt.Errorf("unreadable acknowledgement %q", m.Data)}
	}
	return ack{Ack: Ack{Seq: seq, Duplicate: isDuplicate(m.Data)}}
}

// isDuplicate reports whether an acknowledgement says "duplicate": true
// (the server writes it with a space, which JSON may or may not have).
func isDuplicate(data []byte) bool {
	_, rest, ok := bytes.Cut(data, duplicateField)
	return ok && bytes.HasPrefix(bytes.TrimLeft(rest, " "), []byte("true"))
}

// jsErrDuplicateInProcess is JetStream's error code for "duplicate message
// id is in process".
const jsErrDuplicateInProcess = 10158

// failAll answers every publish still waiting with err: after a
// disconnection their acknowledgements will not come.
func (p *Publisher) failAll(err error) {
	p.mu.Lock()
	waiting := p.waiting
	p.waiting = make(map[uint64]*waiter)
	p.mu.Unlock()
	for _, w := range waiting {
		w.done <- ack{err: err}
	}
}

// Ping reports whether NATS is connected and the stream exists.
func (p *Publisher) Ping(ctx context.Context) error {
	if s := p.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("publish: nats %s", s)
	}
	if _, err := p.js.Stream(ctx, task.StreamName); err != nil {
		return fmt.Errorf("publish: stream %s: %w", task.StreamName, err)
	}
	return nil
}

// Close waits for outstanding acknowledgements and drains the connection,
// both within ctx's deadline.
func (p *Publisher) Close(ctx context.Context) error {
	idle := make(chan struct{})
	go func() { p.busy.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-ctx.Done():
	}
	closed := make(chan struct{})
	p.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := p.nc.Drain(); err != nil {
		p.nc.Close()
		return fmt.Errorf("publish: drain: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		p.nc.Close()
		return fmt.Errorf("publish: drain: %w", ctx.Err())
	}
}
