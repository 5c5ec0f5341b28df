package fold

import (
	"context"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/task"
)

// BenchmarkCatchUp measures how fast a fold catches up on a backlog: a
// fresh fold (no checkpoint, an empty Redis under a prefix of its own)
// over a stream of 20,000 stored tasks over 500 batches, half of them
// with webhook ids, until Redis's watermark is the stream's end. It
// reports events per second.
func BenchmarkCatchUp(b *testing.B) {
	const n = 20000
	w, _ := newWorld(b, false, task.DefaultStreamSettings())
	w.publish(n, 500)
	b.ResetTimer()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		w.keys = task.Keys{Prefix: testenv.KeyPrefix(b)}
		// The checkpoint bucket holds one key per prefix: a new prefix
		// starts from nothing.
		start := time.Now()
		_, stop := w.start(Options{})
		w.waitFolded()
		total += time.Since(start)
		stop()
		ctx := context.Background()
		if keys, _ := w.rdb.Keys(ctx, w.keys.Prefix+"*").Result(); len(keys) > 0 {
			w.rdb.Del(ctx, keys...)
		}
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "events/s")
}
