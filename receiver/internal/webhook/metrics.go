package webhook

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// statuses are the HTTP statuses the handler answers, each with a counter
// resolved once, so that counting a request is one atomic add.
var statuses = [...]int{200, 400, 401, 404, 405, 408, 409, 413, 415, 421, 431, 500, 503}

// latencyBuckets are the upper bounds, in seconds, of the latency histogram.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// Metrics counts what the handler does, in a Prometheus registry of its
// own that /metrics serves. Every field is safe for concurrent use.
type Metrics struct {
	// Registry holds every metric of the receiver: the handler's and what
	// the service adds (the fold's).
	Registry *prometheus.Registry

	requests [len(statuses)]prometheus.Counter
	other    prometheus.Counter
	latency  prometheus.Histogram
	inFlight prometheus.Gauge

	Accepted        prometheus.Counter
	Duplicates      prometheus.Counter
	RedisFailures   prometheus.Counter
	PublishFailures prometheus.Counter
	BacklogRefusals prometheus.Counter

	handler fasthttp.RequestHandler
}

// NewMetrics returns the handler's metrics in a new registry, with Go's
// runtime and process metrics beside them.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{Registry: reg}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookpipe_receiver_requests_total", Help: "Webhook requests answered, by HTTP status.",
	}, []string{"status"})
	for i, s := range statuses {
		m.requests[i] = requests.WithLabelValues(strconv.Itoa(s))
	}
	m.other = requests.WithLabelValues("other")
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "hookpipe_receiver_request_duration_seconds", Help: "Time to answer a webhook request.", Buckets: latencyBuckets,
	})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookpipe_receiver_in_flight", Help: "Webhook requests being handled."})
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m.Accepted = counter("hookpipe_receiver_accepted_total", "Tasks stored in the stream for the first time.")
	m.Duplicates = counter("hookpipe_receiver_duplicates_total", "Deliveries of a webhook id whose task the stream holds already.")
	m.RedisFailures = counter("hookpipe_receiver_redis_failures_total", "Requests answered 503 because Redis did not answer the id's lookup.")
	m.PublishFailures = counter("hookpipe_receiver_publish_failures_total", "Requests answered 503 because JetStream did not acknowledge.")
	m.BacklogRefusals = counter("hookpipe_receiver_backlog_refusals_total", "Requests answered 503 because the fold was too far behind the stream.")
	reg.MustRegister(requests, m.latency, m.inFlight, m.Accepted, m.Duplicates, m.RedisFailures, m.PublishFailures, m.BacklogRefusals,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return m
}

func (m *Metrics) observe(status int, d time.Duration) {
	c := m.other
	for i, s := range statuses {
		if s == status {
			c = m.requests[i]
			break
		}
	}
	c.Inc()
	m.latency.Observe(d.Seconds())
}

func (m *Metrics) serve(ctx *fasthttp.RequestCtx) { m.handler(ctx) }
