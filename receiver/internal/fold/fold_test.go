package fold

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/plumbing/taskstream"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

// world is a stream and a Redis for folds to work on.
type world struct {
	t    testing.TB
	nc   *nats.Conn
	js   jetstream.JetStream
	rdb  *redis.Client
	keys task.Keys
	n    int // tasks published so far, for their ids
}

// newWorld starts NATS and uses the shared Redis, or a private
// redis-server when the test breaks Redis (rp is nil otherwise).
func newWorld(t testing.TB, private bool, stream task.StreamSettings) (*world, *testenv.RedisProcess) {
	t.Helper()
	ns := testenv.NATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if _, err := taskstream.Ensure(context.Background(), js, stream, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, nc: nc, js: js}
	var rp *testenv.RedisProcess
	if private {
		rp = testenv.StartRedis(t)
		w.rdb = rp.Client(t)
		w.keys = task.Keys{Prefix: testenv.KeyPrefix(t)}
	} else {
		url, prefix := testenv.Redis(t)
		opt, _ := redis.ParseURL(url)
		w.rdb = redis.NewClient(opt)
		t.Cleanup(func() { w.rdb.Close() })
		w.keys = task.Keys{Prefix: prefix}
	}
	return w, rp
}

func logger() *slog.Logger {
	if os.Getenv("HOOKPIPE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// start runs a fold until the test ends or stop is called.
func (w *world) start(opts Options) (f *Fold, stop func()) {
	w.t.Helper()
	opts.Keys = w.keys
	opts.CheckpointEvery = 50 * time.Millisecond
	opts.Timeout = time.Second
	opts.Log = logger()
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	f = New(w.js, w.rdb, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	w.t.Cleanup(stop)
	return f, stop
}

// limitMessages makes the stream keep at most n messages, as whoever runs
// it may set it.
func (w *world) limitMessages(n int64) {
	w.t.Helper()
	st, err := w.js.Stream(context.Background(), task.StreamName)
	if err != nil {
		w.t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxMsgs = n
	if _, err := w.js.UpdateStream(context.Background(), cfg); err != nil {
		w.t.Fatal(err)
	}
}

// publish stores n tasks as a receiver does, the first half of them with
// webhook ids, over batches of the given count.
func (w *world) publish(n, batches int) {
	w.t.Helper()
	for range n {
		i := w.n
		w.n++
		t := task.Task{
			BatchID:   fmt.Sprintf("00000000-0000-4000-8000-%012d", i%batches),
			ID:        int64(i),
			Owner:     "Owner",
			Priority:  task.Priorities[(i*7)%task.NumPriorities],
			BatchSize: int64(batches),
		}
		data := t.Encode()
		m := nats.NewMsg(t.Priority.Subject())
		m.Data = data
		m.Header.Set(task.HeaderFingerprint, task.Fingerprint(data))
		if i%2 == 0 {
			m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("msg_%d", i))
		}
		if _, err := w.js.PublishMsg(context.Background(), m); err != nil {
			w.t.Fatal(err)
		}
	}
}

// stream reads the stream and counts it independently of the fold: totals
// per priority, per batch, and the last sequence.
func (w *world) stream() (counts task.Counts, perBatch map[string]task.Counts, last uint64) {
	w.t.Helper()
	ctx := context.Background()
	st, err := w.js.Stream(ctx, task.StreamName)
	if err != nil {
		w.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	perBatch = map[string]task.Counts{}
	last = info.State.LastSeq
	if info.State.Msgs == 0 {
		return counts, perBatch, last
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		w.t.Fatal(err)
	}
	for {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			w.t.Fatal(err)
		}
		meta, _ := m.Metadata()
		if t, err := task.DecodeStored(m.Data(), m.Headers().Get(task.HeaderFingerprint)); err == nil {
			counts[t.Priority.Index()]++
			b := perBatch[t.BatchID]
			b[t.Priority.Index()]++
			perBatch[t.BatchID] = b
		}
		if meta.Sequence.Stream == last {
			return counts, perBatch, last
		}
	}
}

// waitFolded waits until Redis's watermark is the stream's last sequence.
func (w *world) waitFolded() {
	w.t.Helper()
	p := NewProjection(w.rdb, w.keys, 10000)
	var wm, last uint64
	var ok bool
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		st, err := w.js.Stream(context.Background(), task.StreamName)
		if err != nil {
			continue
		}
		info, err := st.Info(context.Background())
		if err != nil {
			continue
		}
		last = info.State.LastSeq
		if wm, ok, err = p.Watermark(context.Background()); err == nil && ok && wm == last {
			return
		}
	}
	w.t.Fatalf("watermark %d (present %v), stream at %d", wm, ok, last)
}

// exact checks that Redis holds what the stream implies, totals and every
// batch, given that the stream starts at sequence 1 and holds fewer
// batches than are kept.
func (w *world) exact(what string) {
	w.t.Helper()
	w.waitFolded()
	counts, perBatch, last := w.stream()
	got, ok, err := NewProjection(w.rdb, w.keys, 10000).Snapshot(context.Background())
	if err != nil || !ok {
		w.t.Fatalf("%s: snapshot: %v %v", what, ok, err)
	}
	if got.Seq != last || got.Counts != counts {
		w.t.Fatalf("%s: Redis has %v at %d, the stream %v at %d", what, got.Counts, got.Seq, counts, last)
	}
	if got.Len() != len(perBatch) {
		w.t.Fatalf("%s: Redis has %d batches, the stream %d", what, got.Len(), len(perBatch))
	}
	for id, c := range perBatch {
		if b, ok := got.Batch(id); !ok || b.Counts != c {
			w.t.Fatalf("%s: batch %s is %+v in Redis, %v in the stream", what, id, b, c)
		}
	}
}

func TestFoldCountsTheStream(t *testing.T) {
	w, _ := newWorld(t, false, task.DefaultStreamSettings())
	w.publish(300, 7)
	// Messages that did not come through a receiver are left out.
	w.nc.Publish("tasks.critical", []byte(`{"batchid":"00000000-0000-4000-8000-000000000001","id":1,"owner":"x","priority":"Critical"}`))
	w.nc.Publish("tasks.low", []byte(`not a task`))
	w.nc.Flush()
	m := NewMetrics(nil)
	f, _ := w.start(Options{Metrics: m})
	w.publish(200, 7)
	w.exact("after 500 tasks")
	if n := testutil.ToFloat64(m.skipped); n != 2 {
		t.Fatalf("skipped %v messages, want the 2 not stored by a receiver", n)
	}
	if f.Position() != 502 {
		t.Fatalf("position %d, want 502", f.Position())
	}
	// Every webhook id is remembered with its task's fingerprint and
	// sequence, until its stored time plus the TTL.
	v, err := w.rdb.Get(context.Background(), w.keys.Seen("msg_4")).Result()
	s, perr := task.ParseSeen(v)
	if err != nil || perr != nil || s.Seq != 5 {
		t.Fatalf("seen key of msg_4: %q %v %v, want sequence 5", v, err, perr)
	}
	if ttl := w.rdb.TTL(context.Background(), w.keys.Seen("msg_4")).Val(); ttl < 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("seen key TTL %v, want about a day", ttl)
	}
}

// Redis loses everything under a running fold, twice: flushed, and
// restarted without its data. The fold restores the counts from its state
// and rebuilds the seen keys from the stream, without a restart.
func TestFoldHealsARedisThatLostEverything(t *testing.T) {
	w, rp := newWorld(t, true, task.DefaultStreamSettings())
	m := NewMetrics(nil)
	w.start(Options{Metrics: m})
	w.publish(200, 5)
	w.exact("before")
	for _, fault := range []struct {
		name string
		do   func()
	}{
		{"FLUSHALL", func() { w.rdb.FlushAll(context.Background()) }},
		{"restart without persistence", func() { rp.RestartEmpty(t) }},
	} {
		fault.do()
		w.publish(100, 5)
		w.exact("after " + fault.name)
		testenv.Eventually(t, 10*time.Second, func() bool {
			return w.rdb.Exists(context.Background(), w.keys.Seen("msg_0")).Val() == 1
		}, "the seen key of the first task was not rebuilt after %s", fault.name)
	}
	if n := testutil.ToFloat64(m.restores); n < 2 {
		t.Fatalf("%v restores, want one per loss", n)
	}
}

// Redis went back in time (a replica that lost the last writes took over):
// the fold goes back to Redis's watermark and applies the stream from
// there.
func TestFoldRewindsWhenRedisWentBack(t *testing.T) {
	w, _ := newWorld(t, false, task.DefaultStreamSettings())
	m := NewMetrics(nil)
	w.start(Options{Metrics: m})
	w.publish(100, 3)
	w.exact("first 100")
	p := NewProjection(w.rdb, w.keys, 10000)
	old, _, err := p.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w.publish(100, 3)
	w.waitFolded()
	// Put the state of sequence 100 back, as a failover to a stale replica.
	wm, _, _ := p.Watermark(context.Background())
	if ok, err := p.Restore(context.Background(), old, wm, false); err != nil || !ok {
		t.Fatal(ok, err)
	}
	w.publish(50, 3)
	w.exact("after Redis went back")
	if n := testutil.ToFloat64(m.rewinds); n < 1 {
		t.Fatalf("%v rewinds, want at least one", n)
	}
}

// A fold dies between its script and its checkpoint: another one takes the
// stream from Redis's watermark, exact.
func TestFoldKilledBetweenScriptAndCheckpoint(t *testing.T) {
	w, _ := newWorld(t, false, task.DefaultStreamSettings())
	hang := make(chan struct{})
	var once sync.Once
	hung := make(chan uint64, 1)
	w.start(Options{OnApplied: func(wm uint64) {
		if wm >= 50 {
			once.Do(func() { hung <- wm })
			<-hang // as dead: no checkpoint, no further run
		}
	}})
	t.Cleanup(func() { close(hang) })
	w.publish(120, 4)
	select {
	case wm := <-hung:
		t.Logf("first fold stopped right after applying up to %d", wm)
	case <-time.After(20 * time.Second):
		t.Fatal("the first fold never applied 50 events")
	}
	w.start(Options{})
	w.publish(80, 4)
	w.exact("after the first fold died")
}

func TestTwoFoldsAtOnce(t *testing.T) {
	w, _ := newWorld(t, false, task.DefaultStreamSettings())
	w.start(Options{MaxRun: 7})
	w.start(Options{MaxRun: 13})
	var wg sync.WaitGroup
	pub := &world{t: t, js: w.js, n: 1_000_000}
	wg.Go(func() { w.publish(400, 9) })
	wg.Go(func() { pub.publish(400, 9) })
	wg.Wait()
	w.exact("two folds")
}

// The stream keeps 100 messages. A fold that checkpointed every event can
// restore a Redis that lost everything although the stream no longer
// holds most of them; a fold that never saw the dropped ones counts what
// is left and reports the rest lost.
func TestRetention(t *testing.T) {
	w, rp := newWorld(t, true, task.DefaultStreamSettings())
	w.limitMessages(100)
	_, stop := w.start(Options{})
	for range 6 {
		w.publish(50, 4)
		w.waitFolded()
	}
	stop() // writes its last checkpoint
	rp.RestartEmpty(t)
	m := NewMetrics(nil)
	w.start(Options{Metrics: m})
	w.waitFolded()
	got, _, _ := NewProjection(w.rdb, w.keys, 10000).Snapshot(context.Background())
	if got.Counts.Total() != 300 || got.Seq != 300 {
		t.Fatalf("restored %v at %d, want the 300 tasks at 300", got.Counts, got.Seq)
	}
	if n := testutil.ToFloat64(m.lost); n != 0 {
		t.Fatalf("%v lost with a checkpoint, want 0", n)
	}

	// A fresh world: nobody folds while 300 tasks go into a stream of 100.
	w2, _ := newWorld(t, false, task.DefaultStreamSettings())
	st2, _ := w2.js.Stream(context.Background(), task.StreamName)
	cfg2 := st2.CachedInfo().Config
	cfg2.MaxMsgs = 100
	if _, err := w2.js.UpdateStream(context.Background(), cfg2); err != nil {
		t.Fatal(err)
	}
	w2.publish(300, 4)
	m2 := NewMetrics(nil)
	w2.start(Options{Metrics: m2})
	w2.waitFolded()
	got2, _, _ := NewProjection(w2.rdb, w2.keys, 10000).Snapshot(context.Background())
	if got2.Counts.Total() != 100 || testutil.ToFloat64(m2.lost) != 200 {
		t.Fatalf("counted %d with %v lost, want 100 counted and 200 lost", got2.Counts.Total(), testutil.ToFloat64(m2.lost))
	}
}

// A fold that stops folding leaves a backlog; past the share of the
// stream's size it says so, and stops saying so once it caught up.
func TestBacklog(t *testing.T) {
	s := task.DefaultStreamSettings()
	s.MaxBytes = 64 << 10
	w, _ := newWorld(t, false, s)
	hang := make(chan struct{})
	var once sync.Once
	f, _ := w.start(Options{BacklogShare: 0.25, OnApplied: func(uint64) { <-hang }})
	defer once.Do(func() { close(hang) })
	w.publish(1, 1)
	// Each stored task takes about 200 bytes: a quarter of 64 KiB is some
	// 80 tasks behind.
	for i := 0; !f.Backlogged(); i++ {
		if i > 300 {
			t.Fatalf("no backlog after %d tasks behind", i)
		}
		w.publish(5, 1)
		time.Sleep(20 * time.Millisecond)
	}
	once.Do(func() { close(hang) })
	testenv.Eventually(t, 20*time.Second, func() bool { return !f.Backlogged() }, "the backlog did not clear")
}

// A stream limited by its number of messages, as someone may have set it:
// the fold is behind by too many of them long before the bytes count.
func TestBacklogByMessages(t *testing.T) {
	w, _ := newWorld(t, false, task.DefaultStreamSettings())
	w.limitMessages(200)
	hang, hung := make(chan struct{}), make(chan struct{}, 1)
	var once sync.Once
	f, _ := w.start(Options{BacklogShare: 0.25, OnApplied: func(uint64) {
		select {
		case hung <- struct{}{}:
		default:
		}
		<-hang
	}})
	defer once.Do(func() { close(hang) })
	w.publish(1, 1)
	select {
	case <-hung: // the fold is stuck after its first run
	case <-time.After(20 * time.Second):
		t.Fatal("the fold never applied its first run")
	}
	// 60 behind, of at most 200: past a quarter, while the bytes are a
	// trifle of the stream's limit.
	w.publish(60, 1)
	testenv.Eventually(t, 10*time.Second, f.Backlogged, "no backlog with 60 of at most 200 messages behind")
	once.Do(func() { close(hang) })
	testenv.Eventually(t, 20*time.Second, func() bool { return !f.Backlogged() }, "the backlog did not clear")
}

// The stream was deleted and made anew: its sequences start again, and so
// do the counts.
func TestStreamMadeAnew(t *testing.T) {
	w, _ := newWorld(t, false, task.DefaultStreamSettings())
	w.start(Options{})
	w.publish(60, 3)
	w.exact("first stream")
	if err := w.js.DeleteStream(context.Background(), task.StreamName); err != nil {
		t.Fatal(err)
	}
	var err error
	for range 100 {
		if _, err = taskstream.Ensure(context.Background(), w.js, task.DefaultStreamSettings(), slog.New(slog.DiscardHandler)); err == nil {
			break
		}
		if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "not found") {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	w.publish(10, 2)
	w.exact("second stream")
}

// TestManyBatchesLeaveBoundedKeys sends 100,000 tasks of as many distinct
// batch ids through the fold: Redis keeps the hashes of the newest
// KeepBatches batches only, and the batch index has as many entries.
func TestManyBatchesLeaveBoundedKeys(t *testing.T) {
	const n, keep = 100_000, 1000
	w, _ := newWorld(t, false, task.DefaultStreamSettings())
	_, stop := w.start(Options{KeepBatches: keep})
	defer stop()
	for i := range n {
		tk := task.Task{BatchID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), ID: 0, Owner: "Owner", Priority: task.Priorities[i%task.NumPriorities]}
		data := tk.Encode()
		m := nats.NewMsg(tk.Priority.Subject())
		m.Data = data
		m.Header.Set(task.HeaderFingerprint, task.Fingerprint(data))
		if _, err := w.js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 {
			select {
			case <-w.js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				t.Fatal("publishes not acknowledged")
			}
		}
	}
	p := NewProjection(w.rdb, w.keys, keep)
	testenv.Eventually(t, 3*time.Minute, func() bool {
		wm, ok, err := p.Watermark(context.Background())
		return err == nil && ok && wm == n
	}, "the fold did not reach the stream's end")
	ctx := context.Background()
	var hashes int
	iter := w.rdb.Scan(ctx, 0, w.keys.Batch("*"), 1000).Iterator()
	for iter.Next(ctx) {
		hashes++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	indexed := w.rdb.ZCard(ctx, w.keys.Batches()).Val()
	if hashes > keep || indexed > keep || hashes != int(indexed) {
		t.Fatalf("%d batch hashes and %d indexed after %d batches, want at most %d of each, equal", hashes, indexed, n, keep)
	}
	if _, err := w.rdb.HGetAll(ctx, w.keys.Batch(fmt.Sprintf("00000000-0000-4000-8000-%012d", n-1))).Result(); err != nil {
		t.Fatal(err)
	}
	if c, _, _, err := redisconn.ReadCounts(ctx, w.rdb, w.keys); err != nil || c.Total() != n {
		t.Fatalf("counts %v (%v), want %d in all", c, err, n)
	}
}
