package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/hookpipe/hookpipe/task"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hookpipe/hookpipe/relay/internal/batches"
)

// Limits of GET /batches.
const (
	defaultBatchLimit = 20
	maxBatchLimit     = 1000
)

func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	limit := defaultBatchLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxBatchLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d", maxBatchLimit))
			return
		}
		limit = n
	}
	list, err := s.batches.List(r.Context(), limit)
	if err != nil {
		s.log.Warn("list batches", "err", err)
		writeError(w, http.StatusServiceUnavailable, "redis unavailable")
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !task.IsUUID(id) {
		writeError(w, http.StatusBadRequest, "batch id must be a UUID")
		return
	}
	// Stored under its canonical form, whatever case the sender wrote.
	id = task.CanonicalUUID(id)
	b, err := s.batches.Get(r.Context(), id)
	switch {
	case errors.Is(err, batches.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such batch")
	case err != nil:
		s.log.Warn("get batch", "id", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "redis unavailable")
	default:
		writeJSON(w, http.StatusOK, b)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// metrics serves the relay's metrics from a registry of its own.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) { s.metrics.ServeHTTP(w, r) }

func newMetrics(s *Server) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{s: s}, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// collector reads the hub's counters when scraped: the hub keeps them as
// atomics on its hot paths, and nothing is counted twice.
type collector struct{ s *Server }

var (
	desc = func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("hookpipe_relay_"+name, help, nil, nil)
	}
	descs = struct {
		clients, conns, built, framesSent, bytesSent, dropped, slow, refused, snapshots, resumes, bad, seq, lag, interval, fanout, redisErrors *prometheus.Desc
	}{
		clients:     desc("clients", "WebSocket clients being served."),
		conns:       desc("connections", "Open WebSocket connections, including ones closing."),
		built:       desc("frames_built_total", "Distinct frames encoded (each sent to many clients)."),
		framesSent:  desc("frames_sent_total", "Frames written to clients."),
		bytesSent:   desc("bytes_sent_total", "Frame payload bytes written to clients."),
		dropped:     desc("frames_dropped_total", "Frames not delivered because a client's queue was full."),
		slow:        desc("slow_disconnects_total", "Clients cut off for being too slow."),
		refused:     prometheus.NewDesc("hookpipe_relay_refused_total", "Connections refused.", []string{"reason"}, nil),
		snapshots:   desc("snapshots_total", "Snapshot frames served to joining clients."),
		resumes:     desc("resumes_total", "Exact resumes served to reconnecting clients."),
		bad:         desc("invalid_events_total", "Stream messages that were not tasks a receiver stored."),
		seq:         desc("stream_seq", "Newest stream sequence taken in."),
		lag:         desc("stream_lag", "Stream messages not taken in yet."),
		interval:    desc("interval_seconds", "Current time between frames."),
		fanout:      desc("fanout_seconds", "Time taken to bring every client up to date once, the pauses that pace it aside."),
		redisErrors: desc("redis_errors_total", "Failed reads of the counts from Redis."),
	}
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.hub.Stats()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descs.clients, float64(st.Clients))
	gauge(descs.conns, float64(st.Conns))
	counter(descs.built, float64(st.FramesBuilt))
	counter(descs.framesSent, float64(st.FramesSent))
	counter(descs.bytesSent, float64(st.BytesSent))
	counter(descs.dropped, float64(st.Dropped))
	counter(descs.slow, float64(st.SlowCuts))
	counter(descs.refused, float64(st.RefusedFull), "limit")
	counter(descs.refused, float64(st.RefusedOrigin), "origin")
	counter(descs.refused, float64(c.s.refusedToken.Load()), "token")
	counter(descs.refused, float64(c.s.refusedIP.Load()), "address")
	counter(descs.snapshots, float64(st.Snapshots))
	counter(descs.resumes, float64(st.Resumes))
	counter(descs.bad, float64(st.BadEvents))
	gauge(descs.seq, float64(st.Seq))
	gauge(descs.lag, float64(st.Lag))
	gauge(descs.interval, st.Interval.Seconds())
	ch <- prometheus.MustNewConstSummary(descs.fanout, uint64(st.Fanouts), st.FanoutTime.Seconds(), nil)
	counter(descs.redisErrors, float64(c.s.poller.Errors()))
}
