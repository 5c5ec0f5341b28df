package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/hookpipe/hookpipe/task"

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

// metrics writes the relay's counters in the Prometheus text format.
func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	st := s.hub.Stats()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	m := func(name, typ, help string, v any) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, typ, name, v)
	}
	m("hookpipe_relay_clients", "gauge", "WebSocket clients being served.", st.Clients)
	m("hookpipe_relay_connections", "gauge", "Open WebSocket connections, including ones closing.", st.Conns)
	m("hookpipe_relay_frames_built_total", "counter", "Distinct frames encoded (each sent to many clients).", st.FramesBuilt)
	m("hookpipe_relay_frames_sent_total", "counter", "Frames written to clients.", st.FramesSent)
	m("hookpipe_relay_bytes_sent_total", "counter", "Frame payload bytes written to clients.", st.BytesSent)
	m("hookpipe_relay_frames_dropped_total", "counter", "Frames not delivered because a client's queue was full.", st.Dropped)
	m("hookpipe_relay_slow_disconnects_total", "counter", "Clients cut off for being too slow.", st.SlowCuts)
	fmt.Fprintf(w, "# HELP hookpipe_relay_refused_total Connections refused.\n# TYPE hookpipe_relay_refused_total counter\n"+
		"hookpipe_relay_refused_total{reason=\"limit\"} %d\nhookpipe_relay_refused_total{reason=\"origin\"} %d\n",
		st.RefusedFull, st.RefusedOrigin)
	m("hookpipe_relay_snapshots_total", "counter", "Snapshot frames served to joining clients.", st.Snapshots)
	m("hookpipe_relay_resumes_total", "counter", "Exact resumes served to reconnecting clients.", st.Resumes)
	m("hookpipe_relay_invalid_events_total", "counter", "Stream messages that were not valid tasks.", st.BadEvents)
	m("hookpipe_relay_stream_seq", "gauge", "Newest stream sequence taken in.", st.Seq)
	m("hookpipe_relay_stream_lag", "gauge", "Stream messages not taken in yet.", st.Lag)
	m("hookpipe_relay_interval_seconds", "gauge", "Current time between frames.", st.Interval.Seconds())
	fmt.Fprintf(w, "# HELP hookpipe_relay_fanout_seconds Time taken to bring every client up to date once, the pauses that pace it aside.\n# TYPE hookpipe_relay_fanout_seconds summary\n"+
		"hookpipe_relay_fanout_seconds_sum %v\nhookpipe_relay_fanout_seconds_count %d\n", st.FanoutTime.Seconds(), st.Fanouts)
	m("hookpipe_relay_redis_errors_total", "counter", "Failed reads of the counts from Redis.", s.poller.Errors())
}
