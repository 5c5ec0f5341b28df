package webhook

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// statuses are the HTTP statuses the handler answers, each with a counter.
var statuses = [...]int{200, 400, 401, 404, 405, 408, 409, 413, 415, 431, 500, 503}

// latencyBuckets are the upper bounds, in seconds, of the latency histogram.
var latencyBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// Metrics counts what the handler did, for /metrics. Every field is safe for
// concurrent use.
type Metrics struct {
	requests     [len(statuses)]atomic.Uint64
	latency      [len(latencyBuckets) + 1]atomic.Uint64
	latencySumNs atomic.Uint64
	inFlight     atomic.Int64

	Accepted        atomic.Uint64
	Duplicates      atomic.Uint64
	RedisFailures   atomic.Uint64
	PublishFailures atomic.Uint64
}

func (m *Metrics) observe(status int, d time.Duration) {
	for i, s := range statuses {
		if s == status {
			m.requests[i].Add(1)
			break
		}
	}
	secs := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && secs > latencyBuckets[i] {
		i++
	}
	m.latency[i].Add(1)
	m.latencySumNs.Add(uint64(d))
}

// Requests returns how many requests were answered with status.
func (m *Metrics) Requests(status int) uint64 {
	for i, s := range statuses {
		if s == status {
			return m.requests[i].Load()
		}
	}
	return 0
}

// WriteTo writes the metrics in the Prometheus text format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	fmt.Fprintln(cw, "# HELP hookpipe_receiver_requests_total Webhook requests answered, by HTTP status.")
	fmt.Fprintln(cw, "# TYPE hookpipe_receiver_requests_total counter")
	for i, s := range statuses {
		fmt.Fprintf(cw, "hookpipe_receiver_requests_total{status=\"%d\"} %d\n", s, m.requests[i].Load())
	}
	fmt.Fprintln(cw, "# HELP hookpipe_receiver_request_duration_seconds Time to answer a webhook request.")
	fmt.Fprintln(cw, "# TYPE hookpipe_receiver_request_duration_seconds histogram")
	var cum uint64
	for i, le := range latencyBuckets {
		cum += m.latency[i].Load()
		fmt.Fprintf(cw, "hookpipe_receiver_request_duration_seconds_bucket{le=\"%g\"} %d\n", le, cum)
	}
	cum += m.latency[len(latencyBuckets)].Load()
	fmt.Fprintf(cw, "hookpipe_receiver_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", cum)
	fmt.Fprintf(cw, "hookpipe_receiver_request_duration_seconds_sum %g\n", time.Duration(m.latencySumNs.Load()).Seconds())
	fmt.Fprintf(cw, "hookpipe_receiver_request_duration_seconds_count %d\n", cum)
	for _, c := range []struct {
		name, help string
		v          uint64
	}{
		{"hookpipe_receiver_accepted_total", "Tasks counted and published for the first time.", m.Accepted.Load()},
		{"hookpipe_receiver_duplicates_total", "Deliveries of a webhook id that was already accepted.", m.Duplicates.Load()},
		{"hookpipe_receiver_redis_failures_total", "Requests answered 503 because Redis did not take the write.", m.RedisFailures.Load()},
		{"hookpipe_receiver_publish_failures_total", "Requests answered 503 because JetStream did not acknowledge.", m.PublishFailures.Load()},
	} {
		fmt.Fprintf(cw, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", c.name, c.help, c.name, c.name, c.v)
	}
	fmt.Fprintln(cw, "# HELP hookpipe_receiver_in_flight Webhook requests being handled.")
	fmt.Fprintln(cw, "# TYPE hookpipe_receiver_in_flight gauge")
	fmt.Fprintf(cw, "hookpipe_receiver_in_flight %d\n", m.inFlight.Load())
	return cw.n, cw.err
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}
