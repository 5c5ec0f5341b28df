package taskstream_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkDuplicateWindowBytes measures what the stream's duplicate window
// holds in the NATS server's memory per webhook id: the same messages go
// into two in-memory streams, one keyed by Nats-Msg-Id within a 10-minute
// window and one without ids, and the heap difference is divided by the
// number of ids. The id's header is stored with its message, so it is part
// of what an id costs.
func BenchmarkDuplicateWindowBytes(b *testing.B) {
	const n = 50_000
	ns := testenv.NATS(b)
	js := testenv.JetStream(b, ns.ClientURL())
	ctx := context.Background()
	body := []byte(`{"batchid":"6a1f0c3e-0b7c-4d6e-9a51-3f2d1b0c9e11","id":1,"owner":"Ada Lovelace","priority":"Low"}`)
	fill := func(name string, withIDs bool) uint64 {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: name, Subjects: []string{name + ".>"}, Storage: jetstream.MemoryStorage, Duplicates: 10 * time.Minute,
		}); err != nil {
			b.Fatal(err)
		}
		before := heap()
		for i := range n {
			m := nats.NewMsg(name + ".x")
			m.Data = body
			if withIDs {
				// A Standard Webhooks id: msg_ and 27 characters.
				m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("msg_%027d", i))
			}
			if _, err := js.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("publishes not acknowledged")
		}
		return heap() - before
	}
	round := 0
	for b.Loop() {
		round++
		plain := fill(fmt.Sprintf("PLAIN%d", round), false)
		keyed := fill(fmt.Sprintf("KEYED%d", round), true)
		b.ReportMetric(float64(int64(keyed)-int64(plain))/n, "bytes/id")
	}
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
