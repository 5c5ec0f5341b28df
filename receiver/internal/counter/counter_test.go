package counter_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/natsconn"
	"github.com/hookpipe/hookpipe/receiver/internal/counter"
	"github.com/hookpipe/hookpipe/receiver/internal/publish"
	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

func newCounter(t *testing.T) (*counter.Counter, *redis.Client, task.Keys) {
	t.Helper()
	url, prefix := testenv.Redis(t)
	opt, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	keys := task.Keys{Prefix: prefix}
	c := counter.New(rdb, counter.Options{Keys: keys})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, rdb, keys
}

// TestConcurrentCountsAndMarks mixes counts and published marks from many
// goroutines, so that batches hold both kinds and ops are recycled while a
// batch is still being answered.
func TestConcurrentCountsAndMarks(t *testing.T) {
	c, rdb, keys := newCounter(t)
	ctx := context.Background()
	const workers, each = 16, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i%(each/2)) // every id twice
				tk := task.Task{BatchID: "0f8fad5b-d9cb-469f-a165-70867728950e", ID: int64(i % (each / 2)), Owner: "o", Priority: task.Priorities[i%4]}
				body := tk.Encode()
				prev, err := c.Count(ctx, id, tk, body, time.Now())
				if err != nil {
					errs <- err
					return
				}
				if prev == "" {
					if err := c.MarkPublished(ctx, id, body); err != nil {
						errs <- err
						return
					}
				} else if prev != counter.SeenPublished {
					errs <- fmt.Errorf("id %s: second delivery saw %q, want %q", id, prev, counter.SeenPublished)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	m, err := rdb.HGetAll(ctx, keys.Counts()).Result()
	if err != nil {
		t.Fatal(err)
	}
	var total int
	for _, v := range m {
		var n int
		fmt.Sscan(v, &n)
		total += n
	}
	if want := workers * each / 2; total != want {
		t.Fatalf("counted %d, want %d (each id once)", total, want)
	}
	ttl, err := rdb.TTL(ctx, keys.Seen("w0-0")).Result()
	if err != nil || ttl <= 0 {
		t.Fatalf("seen key TTL %v, %v; want the dedupe TTL kept by the published mark", ttl, err)
	}
}

func sum(t *testing.T, rdb *redis.Client, key string) int {
	t.Helper()
	m, err := rdb.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for f, v := range m {
		if f == task.BatchSizeField {
			continue
		}
		var n int
		fmt.Sscan(v, &n)
		total += n
	}
	return total
}

var sample = task.Task{BatchID: "0f8fad5b-d9cb-469f-a165-70867728950e", ID: 1, Owner: "Ada", Priority: task.Major}

func TestIDReusedForAnotherTask(t *testing.T) {
	c, rdb, keys := newCounter(t)
	ctx := context.Background()
	if prev, err := c.Count(ctx, "msg_1", sample, sample.Encode(), time.Now()); err != nil || prev != "" {
		t.Fatalf("first count: %q, %v", prev, err)
	}
	other := sample
	other.Priority = task.Critical
	if _, err := c.Count(ctx, "msg_1", other, other.Encode(), time.Now()); !errors.Is(err, task.ErrIDReused) {
		t.Fatalf("same id, other task: %v, want ErrIDReused", err)
	}
	if prev, err := c.Count(ctx, "msg_1", sample, sample.Encode(), time.Now()); err != nil || prev != counter.SeenCounted {
		t.Fatalf("same id, same task: %q, %v; want %q", prev, err, counter.SeenCounted)
	}
	if got := sum(t, rdb, keys.Counts()); got != 1 {
		t.Fatalf("counted %d, want 1", got)
	}
}

func TestUncount(t *testing.T) {
	c, rdb, keys := newCounter(t)
	ctx := context.Background()
	for range 3 {
		if _, err := c.Count(ctx, "", sample, sample.Encode(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Uncount(ctx, sample); err != nil {
		t.Fatal(err)
	}
	if got := sum(t, rdb, keys.Counts()); got != 2 {
		t.Fatalf("total %d after 3 counts and 1 uncount, want 2", got)
	}
	if got := sum(t, rdb, keys.Batch(sample.BatchID)); got != 2 {
		t.Fatalf("batch total %d, want 2", got)
	}
}

// TestAbandonedCountIsTakenBack gives up on counts without an id while a
// slow link to Redis holds them: those that Redis still ran are taken back,
// so that the 503 the caller answered leaves nothing behind.
func TestAbandonedCountIsTakenBack(t *testing.T) {
	url, prefix := testenv.Redis(t)
	opt, _ := redis.ParseURL(url)
	opt.Addr = slowProxy(t, opt.Addr, 200*time.Millisecond)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	keys := task.Keys{Prefix: prefix}
	c := counter.New(rdb, counter.Options{Keys: keys})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)

	for range 5 {
		cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := c.Count(cctx, "", sample, sample.Encode(), time.Now())
		ccancel()
		if !errors.Is(err, counter.ErrUnavailable) {
			t.Fatalf("count behind a 200ms link with a 20ms deadline: %v, want ErrUnavailable", err)
		}
	}
	// One pipeline answers in order: once an operation queued after the
	// abandoned counts is answered, Redis has run them all, and the take
	// backs they caused were queued before it or run with it.
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if err := c.MarkPublished(sctx, "msg_sentinel", nil); err != nil {
		t.Fatal(err)
	}
	direct := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(url, "redis://")})
	defer direct.Close()
	ran, _ := direct.HGetAll(context.Background(), keys.Batch(sample.BatchID)).Result()
	testenv.Eventually(t, 5*time.Second, func() bool { return sum(t, direct, keys.Counts()) == 0 },
		"abandoned counts still in Redis: %d", sum(t, direct, keys.Counts()))
	if len(ran) == 0 {
		t.Fatal("no abandoned count reached Redis; the test proves nothing")
	}
}

// slowProxy forwards TCP connections to addr, holding every chunk for
// delay, and returns its own address.
func slowProxy(t *testing.T, addr string, delay time.Duration) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				time.Sleep(delay)
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				dst.Close()
				return
			}
		}
	}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	return l.Addr().String()
}

// CountThenStart publishes what the stream must get, from the pipeline:
// a new task, and again one counted but not marked published (the stream
// drops the copy); nothing once the id is marked published.
func TestCountThenStartPublishes(t *testing.T) {
	url, prefix := testenv.Redis(t)
	opt, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	ns := testenv.NATS(t)
	pub, err := publish.Connect(natsconn.Options{URL: ns.ClientURL()}, task.StreamSettings{}, time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	testenv.Eventually(t, 5*time.Second, func() bool { return pub.EnsureStream(ctx) == nil }, "no stream")
	c := counter.New(rdb, counter.Options{Keys: task.Keys{Prefix: prefix}, Start: func(id, subject string, encoded []byte) counter.Started {
		return pub.Start(id, subject, encoded)
	}, Flush: pub.Flush})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	tk := task.Task{BatchID: "0f8fad5b-d9cb-469f-a165-70867728950e", ID: 1, Owner: "Ada", Priority: task.Major}
	body := tk.Encode()
	deliver := func(id string) (string, bool) {
		t.Helper()
		prev, p, err := c.CountThenStart(ctx, id, tk, body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if p != nil {
			if _, err := p.Wait(ctx); err != nil {
				t.Fatalf("publish of %q: %v", id, err)
			}
		}
		return prev, p != nil
	}
	if prev, published := deliver("msg_a"); prev != "" || !published {
		t.Fatalf("new id: prev %q, published %v; want counted and published", prev, published)
	}
	if prev, published := deliver("msg_a"); prev != counter.SeenCounted || !published {
		t.Fatalf("id counted, not marked: prev %q, published %v; want published again", prev, published)
	}
	if err := c.MarkPublished(ctx, "msg_a", body); err != nil {
		t.Fatal(err)
	}
	if prev, published := deliver("msg_a"); prev != counter.SeenPublished || published {
		t.Fatalf("id marked published: prev %q, published %v; want nothing published", prev, published)
	}
	for range 3 {
		if prev, published := deliver(""); prev != "" || !published {
			t.Fatalf("no id: prev %q, published %v; want counted and published every time", prev, published)
		}
	}

	js := testenv.JetStream(t, ns.ClientURL())
	s, err := js.Stream(ctx, task.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 4 {
		t.Fatalf("stream holds %d messages, want 4: msg_a once (its second publish dropped as a duplicate) and 3 without id", info.State.Msgs)
	}
	counts, err := rdb.HGet(ctx, task.Keys{Prefix: prefix}.Counts(), task.Major.String()).Int()
	if err != nil || counts != 4 {
		t.Fatalf("Major counted %d (%v), want 4", counts, err)
	}
}

// An uncount whose caller stops waiting (Redis was slow to answer) is
// done all the same: the request answered 503, and its count must go.
func TestAbandonedUncountIsDone(t *testing.T) {
	rp := testenv.StartRedis(t) // paused below: a server of the test's own
	opt, _ := redis.ParseURL(rp.URL())
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	keys := task.Keys{Prefix: testenv.KeyPrefix(t)}
	c := counter.New(rdb, counter.Options{Keys: keys})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	ctx := context.Background()
	tk := task.Task{BatchID: "0f8fad5b-d9cb-469f-a165-70867728950e", ID: 1, Owner: "Ada", Priority: task.Low}
	if _, err := c.Count(ctx, "", tk, tk.Encode(), time.Now()); err != nil {
		t.Fatal(err)
	}
	// Redis takes no write for 500ms, and a count waits for it in the
	// pipeline; the uncount queued behind it is given up after 100ms.
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", 500, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	other := tk
	other.ID, other.Priority = 2, task.Major
	counted := make(chan error, 1)
	go func() {
		_, err := c.Count(ctx, "", other, other.Encode(), time.Now())
		counted <- err
	}()
	time.Sleep(50 * time.Millisecond) // lets the pipeline take the count first; not a wait for a condition
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := c.Uncount(short, tk); err == nil {
		t.Fatal("Uncount returned before Redis could answer")
	}
	if err := <-counted; err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		n, err := rdb.HGet(ctx, keys.Counts(), task.Low.String()).Int()
		return err == nil && n == 0
	}, "the count of the failed request was not taken back")
}
