package service_test

import (
	"testing"

	"github.com/hookpipe/hookpipe/receiver/internal/loadtest"
	"github.com/valyala/fasthttp"
)

// BenchmarkIngest posts the load test's task, without a webhook id, to the
// real receiver over loopback from parallel clients: decoding, one Redis
// script and one JetStream publish per request, batched as under load.
func BenchmarkIngest(b *testing.B) {
	e := newEnv(b, nil)
	client := &fasthttp.Client{MaxConnsPerHost: 64}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(res)
		for pb.Next() {
			req.SetRequestURI(e.url)
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType("application/json")
			req.SetBody(loadtest.Body)
			if err := client.Do(req, res); err != nil {
				b.Error(err)
				return
			}
			if res.StatusCode() != 200 {
				b.Errorf("status %d: %s", res.StatusCode(), res.Body())
				return
			}
		}
	})
	b.StopTimer()
	if got := e.counts(b).Total(); got != int64(b.N) {
		b.Fatalf("Redis counted %d of %d requests", got, b.N)
	}
}
