package cli_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/hookpipe/hookpipe/producer/internal/generate"
	"github.com/hookpipe/hookpipe/producer/internal/send"
)

// BenchmarkSendToReceiver measures delivered tasks per second from one
// sender to the real receiver (Redis and JetStream behind it), at several
// concurrency limits.
func BenchmarkSendToReceiver(b *testing.B) {
	r := newReceiver(b, receiverOptions{})
	g, _ := generate.New(1, 1, 1)
	for _, conc := range []int{1, 8, 32} {
		b.Run("concurrency="+strconv.Itoa(conc), func(b *testing.B) {
			s, err := send.New(send.Config{URL: r.url, Concurrency: conc})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := g.NextOfSize(b.N)
			tasks, _ := batch.All()
			ds := make([]send.Delivery, len(tasks))
			for i, tk := range tasks {
				ds[i] = send.Delivery{WebhookID: send.NewWebhookID(), Task: tk}
			}
			b.ReportAllocs()
			b.ResetTimer()
			sum := s.SendBatch(context.Background(), batch.ID, ds, nil, nil)
			b.StopTimer()
			if sum.Accepted != b.N {
				b.Fatalf("summary %v", sum)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}
