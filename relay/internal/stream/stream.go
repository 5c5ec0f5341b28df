// Package stream reads the JetStream stream of accepted tasks, in order,
// into the relay's hub: first what Redis holds as the stream's fold and
// the history from its watermark (or the recent events the hub keeps, when
// those reach further back), then every new message as it is stored. When
// NATS goes away it goes on, once NATS is back, from the sequence after the
// last one the hub took.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/backoff"
	"github.com/hookpipe/hookpipe/plumbing/taskstream"
	"github.com/hookpipe/hookpipe/relay/internal/fanout"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go/jetstream"
)

// Sink takes the stream's messages in order; the hub is one.
type Sink interface {
	// NextSeq is the sequence wanted next, 0 before Begin.
	NextSeq() uint64
	// RingSize is how many recent messages to load on start.
	RingSize() int
	// Begin says where reading starts, what the newest message was then,
	// what Redis held as the fold, and, when set, the oldest time the
	// stream still holds events of within the rate chart's window.
	Begin(ctx context.Context, from, last uint64, base fanout.Base, ratesFrom time.Time) error
	// Append hands over one task a receiver stored.
	Append(ctx context.Context, ev task.Event, pending uint64) error
	// Skip hands over a message that is not a task a receiver stored.
	Skip(ctx context.Context, seq, pending uint64) error
}

// BaseReader reads what Redis holds as the stream's fold; false when it
// holds none (it is being restored).
type BaseReader func(ctx context.Context) (fanout.Base, bool, error)

// Reader copies the stream into a Sink.
type Reader struct {
	js       jetstream.JetStream
	settings task.StreamSettings
	base     BaseReader
	sink     Sink
	log      *slog.Logger
	// heartbeat is how often the server must show a consumer is alive; a
	// missed one makes the consumer recreate itself (after a NATS restart).
	heartbeat time.Duration
	// checkEvery is how often the stream is checked for having been
	// recreated.
	checkEvery time.Duration
}

// NewReader returns a Reader from js into sink, which starts from what base
// reads. It creates the stream with settings when it does not exist yet.
func NewReader(js jetstream.JetStream, settings task.StreamSettings, base BaseReader, sink Sink, log *slog.Logger) *Reader {
	return &Reader{js: js, settings: settings, base: base, sink: sink, log: log, heartbeat: 2 * time.Second, checkEvery: 5 * time.Second}
}

// Run reads until ctx ends. Failures to reach NATS are logged once per
// outage and retried with backoff; Run returns nil when ctx ends.
func (r *Reader) Run(ctx context.Context) error {
	delays := backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}
	failing := false
	for {
		err := r.consume(ctx, func() {
			if failing {
				r.log.Info("stream reader reconnected", "next_seq", r.sink.NextSeq())
				failing = false
			}
			delays.Reset()
		})
		if ctx.Err() != nil {
			return nil
		}
		if !failing {
			r.log.Warn("stream reader failing, retrying", "err", err)
			failing = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delays.Next()):
		}
	}
}

// consume creates the stream and an ordered consumer from the sink's next
// sequence, and feeds the sink until ctx ends or the consumer fails.
func (r *Reader) consume(ctx context.Context, ok func()) error {
	// Read where the hub is before asking the stream where it is: the
	// stream only grows, so a hub ahead of the answer means the stream was
	// recreated, never that the answer is simply older.
	next := r.sink.NextSeq()
	st, err := r.stream(ctx)
	if err != nil {
		return err
	}
	state := st.CachedInfo().State
	if next > state.LastSeq+1 {
		// The stream holds less than was taken from it: it was deleted and
		// created anew (or NATS lost its storage). Start over.
		next = 0
	}
	if next == 0 {
		base, ok, err := r.base(ctx)
		if err != nil {
			return fmt.Errorf("read the counts' base: %w", err)
		}
		if !ok || base.Watermark > state.LastSeq {
			// Redis is being restored by a receiver, or belongs to a stream
			// made anew it has not caught up with yet.
			return fmt.Errorf("redis holds no counts for this stream yet (watermark %d, stream at %d)", base.Watermark, state.LastSeq)
		}
		// Load the recent events the hub keeps, and at least every event
		// after Redis's watermark, which the hub counts itself.
		from, last := state.FirstSeq, state.LastSeq
		if n := uint64(r.sink.RingSize()); last >= n && last-n+1 > from {
			from = last - n + 1
		}
		// And the events of the rate chart's window, so that a relay that
		// restarts draws the same chart as one that ran all along.
		rates, ratesFrom, err := r.rateHistory(ctx, st, state)
		if err != nil {
			return err
		}
		from = max(min(from, base.Watermark+1, rates), state.FirstSeq)
		if state.Msgs == 0 {
			from = last + 1
		}
		if err := r.sink.Begin(ctx, from, last, base, ratesFrom); err != nil {
			return err
		}
		r.log.Info("stream reader loading history", "from", from, "last", last, "watermark", base.Watermark)
		next = from
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   max(next, 1),
	})
	if err != nil {
		return fmt.Errorf("consumer on %s from %d: %w", task.StreamName, next, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) { r.handle(ctx, msg) },
		jetstream.PullHeartbeat(r.heartbeat),
		jetstream.PullExpiry(5*r.heartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			// An ordered consumer recreates itself from the sequence after
			// the last one delivered (missed heartbeats, a deleted consumer,
			// a NATS restart); it ends only when that keeps failing, and
			// then Run starts over from the hub's next sequence.
			r.log.Debug("stream consumer", "err", err)
		}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", task.StreamName, err)
	}
	defer cc.Stop()
	ok()
	check := time.NewTicker(r.checkEvery)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-cc.Closed():
			return errors.New("stream consumer closed")
		case <-check.C:
			// An ordered consumer waits forever for sequences a recreated
			// stream will not reach for a long time; look for that.
			next := r.sink.NextSeq() // before the question, as above
			info, err := st.Info(ctx)
			if err == nil && next > info.State.LastSeq+1 {
				return fmt.Errorf("stream %s was recreated: last sequence %d, relay at %d",
					task.StreamName, info.State.LastSeq, next-1)
			}
		}
	}
}

// rateHistory returns the sequence of the first event of the rate chart's
// window (the last task.RateWindow seconds), after the stream's last one
// when it holds none that recent; and, when the stream's retention has
// removed part of that window, the time of the oldest event it holds.
func (r *Reader) rateHistory(ctx context.Context, st jetstream.Stream, state jetstream.StreamState) (uint64, time.Time, error) {
	since := time.Now().Add(-task.RateWindow * time.Second)
	if state.Msgs == 0 {
		return state.LastSeq + 1, time.Time{}, nil
	}
	if state.FirstTime.After(since) {
		var known time.Time
		if state.FirstSeq > 1 { // older events were there, and are gone
			known = state.FirstTime
		}
		return state.FirstSeq, known, nil
	}
	if !state.LastTime.After(since) {
		return state.LastSeq + 1, time.Time{}, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &since,
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("consumer on %s from %v: %w", task.StreamName, since, err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("first event of the last %d s: %w", task.RateWindow, err)
	}
	meta, err := msg.Metadata()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("first event of the last %d s: %w", task.RateWindow, err)
	}
	return meta.Sequence.Stream, time.Time{}, nil
}

// stream returns the TASKS stream, creating it when it does not exist and
// checking it when it does (taskstream.Ensure).
func (r *Reader) stream(ctx context.Context) (jetstream.Stream, error) {
	return taskstream.Ensure(ctx, r.js, r.settings, r.log)
}

func (r *Reader) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		r.log.Warn("stream message without metadata", "subject", msg.Subject(), "err", err)
		return
	}
	seq, pending := meta.Sequence.Stream, meta.NumPending
	t, err := task.DecodeStored(msg.Data(), msg.Headers().Get(task.HeaderFingerprint))
	if err != nil {
		r.log.Debug("stream message is not a task a receiver stored, left out", "seq", seq, "err", err)
		r.sink.Skip(ctx, seq, pending)
		return
	}
	ev := task.Event{Seq: seq, Time: meta.Timestamp, Task: t}
	if id := msg.Headers().Get(jetstream.MsgIDHeader); task.ValidWebhookID(id) {
		ev.WebhookID = id
	}
	r.sink.Append(ctx, ev, pending)
}
