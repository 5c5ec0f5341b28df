// Package fold keeps Redis a projection of the stream: it reads the TASKS
// stream in order and applies it to Redis in runs, one atomic script per
// run, behind a watermark W, the last sequence applied. The stream is the
// record; Redis can lose anything and is repaired by the fold itself.
//
// Every receiver runs a fold over the whole stream. The script applies only
// events above W and refuses a run that would leave a gap, so that
// restarts, redeliveries, a run retried after a timeout and several folds
// at once never count twice and never skip; the work of all but the first
// fold to reach an event is one cheap check.
//
// Beside Redis the fold keeps the same State in memory, which it applies
// first, whatever Redis does, and writes as a checkpoint to NATS every few
// seconds. When Redis lost its projection (flushed, restarted without
// persistence) the fold restores it from that State; when Redis went back
// (failed over to a replica that lost its last writes) the fold rewinds to
// Redis's W and applies the stream from there. Either way the counts come
// back to the stream's without a restart.
package fold

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/backoff"
	"github.com/hookpipe/hookpipe/plumbing/taskstream"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// Options configure a Fold. Zero fields take the defaults given.
type Options struct {
	// Keys names the Redis keys; default prefix task.DefaultKeyPrefix.
	Keys task.Keys
	// Stream are the stream's settings, for creating it and the checkpoint
	// bucket when they do not exist.
	Stream task.StreamSettings
	// SeenTTL is how long after its task was stored a webhook id is
	// remembered in Redis; default 24h. It should not exceed the stream's
	// max age: the ids are rebuilt from the stream after a Redis loss.
	SeenTTL time.Duration
	// KeepBatches is how many of the most recently active batches are
	// kept, in Redis and in checkpoints; default 10,000. It must be at
	// least MaxRun.
	KeepBatches int
	// MaxRun is the most events one script applies; default 1,000.
	MaxRun int
	// CheckpointEvery is how often the fold writes a checkpoint when the
	// stream moved; default 5s.
	CheckpointEvery time.Duration
	// Timeout bounds one Redis or NATS call; default 2s.
	Timeout time.Duration
	// BacklogShare is the share of the stream's limits (bytes, age) that
	// events not yet folded may take before the receiver stops taking new
	// ones, so that the stream never discards what nobody has counted;
	// default 0.5.
	BacklogShare float64
	// Log receives one line per event that matters; default none.
	Log *slog.Logger
	// Metrics counts what the fold does; default a set of its own.
	Metrics *Metrics
	// OnApplied, when set, is called after each run the script applied,
	// with the new watermark, before anything else happens. Tests stop the
	// fold there, as a crash between script and checkpoint would.
	OnApplied func(w uint64)
}

func (o *Options) setDefaults() {
	if o.SeenTTL <= 0 {
		o.SeenTTL = 24 * time.Hour
	}
	if o.KeepBatches <= 0 {
		o.KeepBatches = 10000
	}
	if o.MaxRun <= 0 {
		o.MaxRun = 1000
	}
	o.MaxRun = min(o.MaxRun, o.KeepBatches)
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.BacklogShare <= 0 || o.BacklogShare > 1 {
		o.BacklogShare = 0.5
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	o.Stream = o.Stream.WithDefaults()
}

// Fold folds the stream into Redis. Create it with New and Run it.
type Fold struct {
	js   jetstream.JetStream
	rdb  redis.UniversalClient
	proj *Projection
	opts Options
	log  *slog.Logger
	m    *Metrics

	// Owned by the Run goroutine.
	state   *State
	created time.Time    // the stream's creation, which the state belongs to
	lastAt  atomic.Int64 // stored time of the state's last event, Unix ns

	position   atomic.Uint64 // state.Seq, for other goroutines
	batches    atomic.Int64  // state.Len()
	watermark  atomic.Uint64 // W as last seen in Redis
	backlogged atomic.Bool

	checkpointing sync.Mutex // one checkpoint write at a time
	rebuilding    sync.Mutex // one seen-key rebuild at a time
	bg            sync.WaitGroup
}

// New returns a fold of the stream in js into rdb.
func New(js jetstream.JetStream, rdb redis.UniversalClient, opts Options) *Fold {
	opts.setDefaults()
	return &Fold{
		js: js, rdb: rdb, opts: opts, log: opts.Log, m: opts.Metrics,
		proj: NewProjection(rdb, opts.Keys, opts.KeepBatches),
	}
}

// Position returns the last stream sequence the fold has taken in (in
// memory; Redis follows).
func (f *Fold) Position() uint64 { return f.position.Load() }

// Batches returns how many batches the fold keeps.
func (f *Fold) Batches() int64 { return f.batches.Load() }

// Watermark returns Redis's watermark as the fold last saw it.
func (f *Fold) Watermark() uint64 { return f.watermark.Load() }

// Backlogged reports whether the events not yet folded take more than the
// configured share of the stream's limits: the receiver then answers 503
// until the fold catches up.
func (f *Fold) Backlogged() bool { return f.backlogged.Load() }

// Errors a session ends with to start the next one at once.
var (
	errRewind  = errors.New("fold: redis is behind the run: rewinding to its watermark")
	errRestore = errors.New("fold: redis lost its watermark: restoring")
	errResync  = errors.New("fold: redis answers again: resynchronising")
)

// Run folds until ctx ends; it returns nil then. Outages of NATS or Redis
// are logged once when they start and once when they end, and retried.
func (f *Fold) Run(ctx context.Context) error {
	defer f.bg.Wait()
	f.bg.Go(func() { f.watchBacklog(ctx) })
	delays := backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}
	failing := false
	for {
		err := f.session(ctx, func() {
			if failing {
				f.log.Info("fold recovered", "position", f.Position(), "watermark", f.Watermark())
				failing = false
			}
			delays.Reset()
		})
		if ctx.Err() != nil {
			f.finalCheckpoint()
			return nil
		}
		switch {
		case errors.Is(err, errRewind), errors.Is(err, errRestore), errors.Is(err, errResync):
			f.log.Debug("fold starting over", "why", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(10 * time.Millisecond):
			}
			continue
		case !failing:
			f.log.Warn("fold failing, retrying", "err", err)
			failing = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delays.Next()):
		}
	}
}

// call runs fn with the fold's per-call deadline.
func (f *Fold) call(ctx context.Context, fn func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	return fn(cctx)
}

// session brings Redis in line with the state, then folds the stream from
// where the two are until something needs a new start. ok is called once
// the session folds.
func (f *Fold) session(ctx context.Context, ok func()) error {
	var st jetstream.Stream
	var info *jetstream.StreamInfo
	err := f.call(ctx, func(ctx context.Context) (err error) {
		if st, err = taskstream.Ensure(ctx, f.js, f.opts.Stream, f.log); err != nil {
			return err
		}
		info, err = st.Info(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("fold: stream: %w", err)
	}
	if err := f.loadState(ctx, info); err != nil {
		return err
	}
	var w uint64
	var have bool
	redisUp := f.call(ctx, func(ctx context.Context) (err error) {
		w, have, err = f.proj.Watermark(ctx)
		return err
	}) == nil
	if redisUp {
		if w, err = f.align(ctx, info, w, have); err != nil {
			return err
		}
		f.watermark.Store(w)
		f.m.watermark.Set(float64(w))
	} else {
		// Fold into memory alone, from where it stands, until Redis answers.
		w = f.state.Seq
	}
	cursor := min(w, f.state.Seq)

	msgs := make(chan jetstream.Msg, 2*f.opts.MaxRun)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   cursor + 1,
	})
	if err != nil {
		return fmt.Errorf("fold: consumer from %d: %w", cursor+1, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(2*f.opts.MaxRun), jetstream.PullHeartbeat(2*time.Second), jetstream.PullExpiry(10*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { f.log.Debug("fold consumer", "err", err) }))
	if err != nil {
		return fmt.Errorf("fold: consume from %d: %w", cursor+1, err)
	}
	defer cc.Stop()
	ok()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastCheckpoint := time.Now()
	run := make([]Event, 0, f.opts.MaxRun)
	var keys []string
	var args []any
	for {
		run = run[:0]
		select {
		case <-ctx.Done():
			return nil
		case <-cc.Closed():
			return errors.New("fold: consumer closed")
		case <-tick.C:
			// An ordered consumer waits forever for the next sequence of a
			// stream that was deleted and made anew; look for that.
			var now *jetstream.StreamInfo
			if f.call(ctx, func(ctx context.Context) (err error) {
				now, err = st.Info(ctx)
				return err
			}) == nil && (!now.Created.Equal(f.created) || now.State.LastSeq < f.state.Seq) {
				return errors.New("fold: the stream was made anew")
			}
			if time.Since(lastCheckpoint) >= f.opts.CheckpointEvery {
				lastCheckpoint = time.Now()
				f.checkpoint(ctx)
			}
			if !redisUp {
				if f.call(ctx, func(ctx context.Context) error { return f.rdb.Ping(ctx).Err() }) == nil {
					return errResync
				}
				continue
			}
			// Redis may lose its projection, or go back, while no event comes
			// to show it: look.
			var rw uint64
			var have bool
			if f.call(ctx, func(ctx context.Context) (err error) {
				rw, have, err = f.proj.Watermark(ctx)
				return err
			}) == nil && (!have || rw < cursor) {
				return errRestore
			}
			continue
		case m := <-msgs:
			run = f.take(run, m)
		}
	more:
		for len(run) < f.opts.MaxRun {
			select {
			case m := <-msgs:
				run = f.take(run, m)
			default:
				break more
			}
		}
		// A redelivery after the consumer recreated itself repeats what was
		// taken already.
		for len(run) > 0 && run[0].Seq <= cursor && run[0].Seq <= f.state.Seq {
			run = run[1:]
		}
		if len(run) == 0 {
			continue
		}
		first, last := run[0].Seq, run[len(run)-1].Seq
		if first > f.state.Seq+1 {
			// The stream no longer holds these: it dropped them by age or
			// size (or someone deleted them) before anyone folded them.
			missing := first - 1 - f.state.Seq
			f.m.lost.Add(float64(missing))
			f.log.Error("events dropped by the stream before they were counted", "from", f.state.Seq+1, "to", first-1, "events", missing)
		}
		// Redis misses events the stream no longer holds, but the state
		// has them: Redis is restored from the state below.
		redisGap := redisUp && first > cursor+1 && f.state.Seq+1 >= first
		for _, ev := range run {
			if f.state.Apply(ev) {
				f.lastAt.Store(ev.Time.UnixNano())
				if ev.Skipped {
					f.m.skipped.Inc()
				}
			}
		}
		f.position.Store(f.state.Seq)
		f.batches.Store(int64(f.state.Len()))
		f.m.position.Set(float64(f.state.Seq))
		if !redisUp || last <= cursor {
			continue
		}
		if redisGap {
			var done bool
			st := f.state
			if err := f.call(ctx, func(ctx context.Context) (err error) {
				done, err = f.proj.Restore(ctx, st, w, false)
				return err
			}); err != nil || !done {
				return errRestore
			}
			f.m.restores.Inc()
			f.log.Warn("restored the counts in Redis from the fold's state: the stream no longer holds events Redis lacks",
				"from", cursor+1, "to", first-1, "seq", st.Seq)
			f.rebuildSeen(ctx, first, st.Seq)
			cursor, w = st.Seq, st.Seq
			f.watermark.Store(w)
			f.m.watermark.Set(float64(w))
			continue
		}
		var verdict string
		err := f.call(ctx, func(ctx context.Context) (err error) {
			if err = f.proj.writeSeen(ctx, run, f.opts.SeenTTL, time.Now()); err != nil {
				return err
			}
			verdict, w, err = f.proj.apply(ctx, cursor+1, last, run, keys, args)
			return err
		})
		if err != nil {
			// Fold on in memory; Redis is brought up to date once it
			// answers again (this run may or may not have been applied:
			// the watermark tells).
			f.log.Warn("redis not taking the fold, folding in memory until it answers", "err", err)
			redisUp = false
			continue
		}
		switch verdict {
		case gap:
			f.m.rewinds.Inc()
			f.log.Warn("redis is behind the fold: rewinding to its watermark", "watermark", w, "run_from", cursor+1)
			return errRewind
		case absent:
			return errRestore
		case applied:
		default:
			return fmt.Errorf("fold: script answered %q", verdict)
		}
		now := time.Now()
		for _, ev := range run {
			if ev.Seq > cursor && !ev.Skipped {
				f.m.applied.Inc()
				f.m.lag.Observe(now.Sub(ev.Time).Seconds())
			}
		}
		cursor = last
		f.watermark.Store(w)
		f.m.watermark.Set(float64(w))
		if f.opts.OnApplied != nil {
			f.opts.OnApplied(w)
		}
	}
}

// take appends the event of stored message m to run.
func (f *Fold) take(run []Event, m jetstream.Msg) []Event {
	meta, err := m.Metadata()
	if err != nil {
		f.log.Warn("stream message without metadata, left out", "subject", m.Subject(), "err", err)
		return run
	}
	ev := Event{Seq: meta.Sequence.Stream, Time: meta.Timestamp}
	h := m.Headers()
	t, err := task.DecodeStored(m.Data(), h.Get(task.HeaderFingerprint))
	if err != nil {
		ev.Skipped = true
	} else {
		ev.Task = t
		ev.Fingerprint = h.Get(task.HeaderFingerprint)
		ev.MsgID = h.Get(jetstream.MsgIDHeader)
	}
	return append(run, ev)
}

// loadState sets up the in-memory state on the first session, and again
// when the stream was made anew: from the latest checkpoint of this
// stream, or, without one, from nothing when the stream holds everything
// from its first message, or from what Redis holds when the stream no
// longer does.
func (f *Fold) loadState(ctx context.Context, info *jetstream.StreamInfo) error {
	if f.state != nil && f.created.Equal(info.Created) && f.state.Seq <= info.State.LastSeq {
		return nil
	}
	if f.state != nil {
		f.log.Warn("the stream was made anew: counting it from the start", "was_at", f.state.Seq, "stream_last", info.State.LastSeq)
	}
	first := info.State.FirstSeq
	kv, err := f.bucket(ctx)
	if err != nil {
		return err
	}
	var cp *State
	err = f.call(ctx, func(ctx context.Context) (err error) {
		cp, err = NewCheckpoints(kv, f.opts.Keys, f.opts.KeepBatches).Latest(ctx, info.Created)
		return err
	})
	switch {
	case err == nil && cp.Seq <= info.State.LastSeq:
		f.setState(cp, info.Created)
		f.log.Info("fold starts from its checkpoint", "seq", cp.Seq, "stream_first", first, "stream_last", info.State.LastSeq)
		return nil
	case err != nil && !errors.Is(err, ErrNoCheckpoint):
		return err
	case first <= 1 || info.State.Msgs == 0:
		f.setState(NewState(max(first, 1)-1, f.opts.KeepBatches), info.Created)
		f.log.Info("fold starts from the stream's beginning", "stream_last", info.State.LastSeq)
		return nil
	}
	// The stream dropped its first messages and no checkpoint counts them:
	// what Redis holds is all that is left of them.
	var snap *State
	var have bool
	if err := f.call(ctx, func(ctx context.Context) (err error) {
		snap, have, err = f.proj.Snapshot(ctx)
		return err
	}); err != nil {
		return err
	}
	if have && snap.Seq+1 >= first && snap.Seq <= info.State.LastSeq {
		f.setState(snap, info.Created)
		f.log.Info("fold starts from what Redis holds: no checkpoint, and the stream no longer holds its beginning", "seq", snap.Seq, "stream_first", first)
		return nil
	}
	f.setState(NewState(first-1, f.opts.KeepBatches), info.Created)
	f.m.lost.Add(float64(first - 1))
	f.log.Error("the stream dropped events that no checkpoint and no Redis counts: counting from its first message",
		"lost", first-1, "stream_first", first)
	return nil
}

func (f *Fold) setState(st *State, created time.Time) {
	f.state, f.created = st, created
	f.position.Store(st.Seq)
	f.m.position.Set(float64(st.Seq))
}

// align makes Redis a projection the stream can be folded on from, and
// returns its watermark: a Redis without one, ahead of the stream, or
// behind what the stream still holds is restored from the state (and its
// seen keys rebuilt from the stream); a Redis merely behind is folded on
// from its watermark.
func (f *Fold) align(ctx context.Context, info *jetstream.StreamInfo, w uint64, have bool) (uint64, error) {
	first, last := info.State.FirstSeq, info.State.LastSeq
	var why string
	switch {
	case !have:
		why = "redis holds no watermark (flushed, or restarted without its data)"
	case w > last:
		why = "redis is ahead of the stream (the stream was made anew)"
	case w+1 < first && f.state.Seq+1 >= first:
		why = "redis is behind what the stream still holds"
	default:
		return w, nil
	}
	st := f.state
	var done bool
	err := f.call(ctx, func(ctx context.Context) (err error) {
		done, err = f.proj.Restore(ctx, st, w, !have)
		return err
	})
	if err != nil {
		return 0, err
	}
	if !done {
		return 0, errRestore // another receiver restored it meanwhile: look again
	}
	f.m.restores.Inc()
	f.log.Warn("restored the counts in Redis from the fold's state", "why", why, "seq", st.Seq,
		"redis_watermark", w, "stream_first", first, "stream_last", last)
	from := first
	if have && w+1 > from && w <= last {
		from = w + 1
	}
	f.rebuildSeen(ctx, from, st.Seq)
	return st.Seq, nil
}

// bucket returns the checkpoint bucket, creating it when needed.
func (f *Fold) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := f.call(ctx, func(ctx context.Context) (err error) {
		kv, err = taskstream.EnsureBucket(ctx, f.js, f.opts.Stream)
		return err
	})
	return kv, err
}

// checkpoint writes a copy of the state to the bucket in the background,
// unless a write is still going on.
func (f *Fold) checkpoint(ctx context.Context) {
	if !f.checkpointing.TryLock() {
		return
	}
	st, created := f.state.Clone(), f.created
	f.bg.Go(func() {
		defer f.checkpointing.Unlock()
		kv, err := f.bucket(ctx)
		if err == nil {
			var wrote bool
			err = f.call(ctx, func(ctx context.Context) (err error) {
				wrote, err = NewCheckpoints(kv, f.opts.Keys, f.opts.KeepBatches).Write(ctx, st, created)
				return err
			})
			if wrote {
				f.m.checkpoint.Set(float64(st.Seq))
			}
		}
		if err != nil && ctx.Err() == nil {
			f.m.checkpointFailures.Inc()
			f.log.Warn("fold checkpoint not written", "seq", st.Seq, "err", err)
		}
	})
}

// finalCheckpoint writes the state once more as the fold stops, so that
// the next start has little to read again.
func (f *Fold) finalCheckpoint() {
	if f.state == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.Timeout)
	defer cancel()
	f.checkpointing.Lock()
	defer f.checkpointing.Unlock()
	kv, err := f.bucket(ctx)
	if err == nil {
		_, err = NewCheckpoints(kv, f.opts.Keys, f.opts.KeepBatches).Write(ctx, f.state, f.created)
	}
	if err != nil {
		f.log.Warn("fold checkpoint not written on stop", "seq", f.state.Seq, "err", err)
	}
}

// watchBacklog measures, every second, the events not folded yet against
// the stream's limits. It runs beside the fold, so that a fold that is
// stuck is noticed too.
func (f *Fold) watchBacklog(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var info *jetstream.StreamInfo
		if f.call(ctx, func(ctx context.Context) (err error) {
			st, err := f.js.Stream(ctx, task.StreamName)
			if err == nil {
				info, err = st.Info(ctx)
			}
			return err
		}) != nil {
			continue
		}
		f.measureBacklog(info, time.Now())
	}
}

// measureBacklog decides, from the stream's state, whether the fold is too
// far behind.
func (f *Fold) measureBacklog(info *jetstream.StreamInfo, now time.Time) {
	s := info.State
	behind := s.LastSeq - min(s.LastSeq, f.Position())
	var bytes float64
	if s.Msgs > 0 {
		bytes = float64(behind) * float64(s.Bytes) / float64(s.Msgs)
	}
	share := f.opts.BacklogShare
	over := info.Config.MaxBytes > 0 && bytes > share*float64(info.Config.MaxBytes) ||
		info.Config.MaxMsgs > 0 && float64(behind) > share*float64(info.Config.MaxMsgs)
	if at := f.lastAt.Load(); behind > 0 && info.Config.MaxAge > 0 && at != 0 &&
		now.Sub(time.Unix(0, at)) > time.Duration(share*float64(info.Config.MaxAge)) {
		over = true
	}
	f.m.backlog.Set(float64(behind))
	if over != f.backlogged.Load() {
		f.backlogged.Store(over)
		if over {
			f.log.Error("the fold is behind by more than the share of the stream's limits: refusing new webhooks until it catches up",
				"behind", behind, "share", share)
		} else {
			f.log.Info("the fold caught up: taking webhooks again")
		}
	}
}
