package counter_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/receiver/internal/counter"
	"github.com/hookpipe/hookpipe/task"
	"github.com/hookpipe/hookpipe/testdata/testenv"
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
				tk := task.Task{BatchID: "0f8fad5b-d9cb-469f-a165-70867728950e", ID: int64(i), Owner: "o", Priority: task.Priorities[i%4]}
				prev, err := c.Count(ctx, id, tk, time.Now())
				if err != nil {
					errs <- err
					return
				}
				if prev == "" {
					if err := c.MarkPublished(ctx, id); err != nil {
						errs <- err
						return
					}
				} else if prev != task.SeenPublished {
					errs <- fmt.Errorf("id %s: second delivery saw %q, want %q", id, prev, task.SeenPublished)
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
