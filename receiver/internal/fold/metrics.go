package fold

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the fold's counters, registered with the receiver's.
type Metrics struct {
	applied, skipped, lost, restores, rewinds, checkpointFailures prometheus.Counter
	seenRebuilt                                                   prometheus.Counter
	watermark, position, checkpoint, backlog                      prometheus.Gauge
	lag                                                           prometheus.Histogram
}

// LagBuckets are the upper bounds, in seconds, of the fold's lag from a
// task's storing in the stream to its counting in Redis.
var LagBuckets = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// NewMetrics returns the fold's metrics, registered with reg (none when
// reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "hookpipe_fold_" + name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookpipe_fold_" + name, Help: help})
	}
	m := &Metrics{
		applied:            counter("applied_total", "Tasks this receiver's fold counted in Redis first."),
		skipped:            counter("skipped_total", "Stream messages left out of the counts: not a task a receiver stored."),
		lost:               counter("lost_total", "Stream messages dropped by the stream's limits before any fold counted them."),
		restores:           counter("restores_total", "Times Redis's counts were restored from the fold's state."),
		rewinds:            counter("rewinds_total", "Times the fold went back to Redis's watermark because Redis was behind it."),
		checkpointFailures: counter("checkpoint_failures_total", "Checkpoints that could not be written."),
		seenRebuilt:        counter("seen_rebuilt_total", "Seen keys rebuilt from the stream after Redis lost them."),
		watermark:          gauge("watermark", "Redis's watermark: the last stream sequence in its counts."),
		position:           gauge("position", "The last stream sequence the fold has taken in."),
		checkpoint:         gauge("checkpoint_seq", "The stream sequence of the last checkpoint this receiver wrote."),
		backlog:            gauge("backlog", "Stream messages not yet taken in by the fold."),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookpipe_fold_lag_seconds",
			Help:    "Time from a task's storing in the stream (its acknowledgement) to its counting in Redis.",
			Buckets: LagBuckets,
		}),
	}
	if reg != nil {
		reg.MustRegister(m.applied, m.skipped, m.lost, m.restores, m.rewinds, m.checkpointFailures, m.seenRebuilt,
			m.watermark, m.position, m.checkpoint, m.backlog, m.lag)
	}
	return m
}
