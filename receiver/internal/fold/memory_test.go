package fold

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

// BenchmarkRedisBytes measures what the keys the fold writes take in
// Redis, the figures of the README's "Memory and retention": 100,000 seen
// keys of a Standard Webhooks id (msg_ and 27 characters), 100,000 of a
// 64-character id, and 10,000 batches (the default --keep-batches) of
// four priorities and a size, each written by the fold's own code
// (writeSeen, applyScript) in runs of the fold's default MaxRun.
//
// It runs its own redis-server, without the append-only file, so that
// nothing else moves used_memory, and writes under the production key
// prefix, so that the keys are as long as in production (a test's prefix
// is some 40 characters longer). bytes/key is the growth of used_memory,
// the clients' buffers left out, over the keys written: the key, its
// value, its expiry and its share of Redis's tables (which grow in powers
// of two, so the share moves with the number of keys), and for a batch
// its entry in the batch index. usage-bytes/key is MEMORY USAGE averaged
// over a sample of the keys: the key's own allocation alone.
func BenchmarkRedisBytes(b *testing.B) {
	const (
		seenIDs = 100_000
		batches = 10_000
		run     = 1000 // the fold's default MaxRun
	)
	rp := testenv.StartRedis(b)
	rdb := rp.Client(b)
	ctx := context.Background()
	if err := rdb.ConfigSet(ctx, "appendonly", "no").Err(); err != nil {
		b.Fatal(err)
	}
	keys := task.Keys{Prefix: task.DefaultKeyPrefix}
	p := NewProjection(rdb, keys, batches)
	now := time.Now()

	seen := func(id func(i int) string) func(b *testing.B, n int) []string {
		return func(b *testing.B, n int) []string {
			evs := make([]Event, 0, run)
			written := make([]string, 0, n)
			for i := range n {
				t := task.Task{BatchID: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", ID: int64(i), Owner: "Ada Lovelace", Priority: task.Low}
				ev := Event{Seq: uint64(1_000_000 + i), Time: now, Task: t, MsgID: id(i), Fingerprint: task.Fingerprint(t.Encode())}
				evs = append(evs, ev)
				written = append(written, keys.Seen(ev.MsgID))
				if len(evs) == run || i == n-1 {
					if err := p.writeSeen(ctx, evs, 24*time.Hour, now); err != nil {
						b.Fatal(err)
					}
					evs = evs[:0]
				}
			}
			return written
		}
	}
	batch := func(b *testing.B, n int) []string {
		if _, err := p.Restore(ctx, NewState(0, n), 0, true); err != nil {
			b.Fatal(err)
		}
		evs := make([]Event, 0, run)
		written := make([]string, 0, n)
		var seq uint64
		for i := range n {
			id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			written = append(written, keys.Batch(id))
			for _, prio := range task.Priorities {
				seq++
				t := task.Task{BatchID: id, ID: int64(seq), Owner: "Ada Lovelace", Priority: prio, BatchSize: 1000}
				evs = append(evs, Event{Seq: seq, Time: now, Task: t})
			}
			if len(evs) == run || i == n-1 {
				verdict, _, err := p.apply(ctx, evs[0].Seq, seq, evs, nil, nil)
				if err != nil || verdict != applied {
					b.Fatalf("apply: %q, %v", verdict, err)
				}
				evs = evs[:0]
			}
		}
		if got := rdb.ZCard(ctx, keys.Batches()).Val(); got != int64(n) {
			b.Fatalf("the batch index holds %d batches, want %d", got, n)
		}
		return written
	}

	for _, bm := range []struct {
		name string
		// write writes n keys and returns their names.
		write func(b *testing.B, n int) []string
		n     int
		// base is the keys there besides the n measured: for batches the
		// counts hash and the batch index.
		base int64
	}{
		{"seen-id=msg_+27", seen(func(i int) string { return fmt.Sprintf("msg_%027d", i) }), seenIDs, 0},
		{"seen-id=64", seen(func(i int) string { return fmt.Sprintf("%064d", i) }), seenIDs, 0},
		{"batch", batch, batches, 2},
	} {
		b.Run(bm.name, func(b *testing.B) {
			var grown, usage float64
			rounds := 0
			for b.Loop() {
				rounds++
				if err := rdb.FlushAll(ctx).Err(); err != nil {
					b.Fatal(err)
				}
				before := usedMemory(b, rdb)
				written := bm.write(b, bm.n)
				grown += float64(usedMemory(b, rdb)-before) / float64(bm.n)
				if got, want := rdb.DBSize(ctx).Val(), int64(bm.n)+bm.base; got != want {
					b.Fatalf("Redis holds %d keys, want %d", got, want)
				}
				usage += meanUsage(b, rdb, written)
			}
			rdb.FlushAll(ctx)
			b.ReportMetric(grown/float64(rounds), "bytes/key")
			b.ReportMetric(usage/float64(rounds), "usage-bytes/key")
		})
	}
}

// usedMemory returns Redis's used_memory less its clients' buffers, which
// a pipeline of many writes grows for a while.
func usedMemory(b *testing.B, rdb *redis.Client) int64 {
	b.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	fields := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if n, err := strconv.ParseInt(v, 10, 64); ok && err == nil {
			fields[k] = n
		}
	}
	used, ok := fields["used_memory"]
	if !ok {
		b.Fatalf("INFO memory has no used_memory:\n%s", info)
	}
	return used - fields["mem_clients_normal"]
}

// meanUsage returns MEMORY USAGE averaged over a hundred of keys, spread
// over them.
func meanUsage(b *testing.B, rdb *redis.Client, keys []string) float64 {
	b.Helper()
	const samples = 100
	var sum int64
	for i := range samples {
		n, err := rdb.MemoryUsage(context.Background(), keys[i*len(keys)/samples], 0).Result()
		if err != nil {
			b.Fatal(err)
		}
		sum += n
	}
	return float64(sum) / samples
}
