package pagetest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookpipe/hookpipe/task"
)

// fakeRelay stands in for the relay: it keeps an event log with counts, and
// serves /ws (snapshot, updates, resume with ?since=) and /batches like the
// relay does. It can be stopped and started again on the same port, as a
// relay restart.
type fakeRelay struct {
	t    testing.TB
	port int

	mu      sync.Mutex
	log     []task.Event
	counts  task.Counts
	batches map[string]*task.BatchSummary
	conns   map[*websocket.Conn]bool
	sinces  []string // the since parameter of every connection, in order
	srv     *http.Server
}

func newFakeRelay(t testing.TB) *fakeRelay {
	t.Helper()
	r := &fakeRelay{t: t, batches: make(map[string]*task.BatchSummary), conns: make(map[*websocket.Conn]bool)}
	r.start()
	t.Cleanup(r.stop)
	return r
}

// URL returns the relay's base URL.
func (r *fakeRelay) URL() string { return "http://127.0.0.1:" + strconv.Itoa(r.port) }

func (r *fakeRelay) start() {
	r.t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(r.port)
	var ln net.Listener
	var err error
	for range 100 { // the old socket may linger for a moment after stop
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatalf("relay listen: %v", err)
	}
	r.port = ln.Addr().(*net.TCPAddr).Port
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", r.serveWS)
	mux.HandleFunc("/batches", r.serveBatches)
	mux.HandleFunc("/batches/{id}", r.serveBatch)
	srv := &http.Server{Handler: mux}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

// stop closes the listener and every connection, as a relay that died.
func (r *fakeRelay) stop() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	for c := range r.conns {
		c.Close()
		delete(r.conns, c)
	}
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// restart stops the relay and starts it again on the same port.
func (r *fakeRelay) restart() { r.stop(); r.start() }

// publish appends tasks to the log and sends one update frame with them to
// every connection.
func (r *fakeRelay) publish(tasks ...task.Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	events := make([]task.Event, 0, len(tasks))
	now := time.Now()
	for _, tk := range tasks {
		if err := tk.Validate(); err != nil {
			r.t.Errorf("publish: %v", err)
			return
		}
		e := task.Event{Seq: uint64(len(r.log) + 1), Time: now, Task: tk}
		r.log = append(r.log, e)
		events = append(events, e)
		r.counts[tk.Priority.Index()]++
		b := r.batches[tk.BatchID]
		if b == nil {
			b = &task.BatchSummary{BatchID: tk.BatchID, Size: tk.BatchSize}
			r.batches[tk.BatchID] = b
		}
		b.Counts[tk.Priority.Index()]++
		b.Updated = now
	}
	f := task.Frame{Type: task.FrameUpdate, Seq: uint64(len(r.log)), Counts: r.counts, Events: events}
	data, _ := json.Marshal(f)
	for c := range r.conns {
		if err := c.WriteMessage(websocket.TextMessage, data); err != nil {
			c.Close()
			delete(r.conns, c)
		}
	}
}

// state returns the relay's sequence and counts, the truth the page must
// show once traffic stops.
func (r *fakeRelay) state() (uint64, task.Counts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return uint64(len(r.log)), r.counts
}

// connections returns the since parameter of every connection so far.
func (r *fakeRelay) connections() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.sinces...)
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (r *fakeRelay) serveWS(w http.ResponseWriter, req *http.Request) {
	c, err := upgrader.Upgrade(w, req, nil)
	if err != nil {
		return
	}
	since := req.URL.Query().Get("since")
	r.mu.Lock()
	r.sinces = append(r.sinces, since)
	f := task.Frame{Type: task.FrameSnapshot, Seq: uint64(len(r.log)), Counts: r.counts}
	if n, err := strconv.ParseUint(since, 10, 64); err == nil && n <= uint64(len(r.log)) {
		f.Type = task.FrameUpdate
		f.Events = append(f.Events, r.log[n:]...)
	} else {
		f.Events = append(f.Events, r.log[max(0, len(r.log)-100):]...)
	}
	data, _ := json.Marshal(f)
	err = c.WriteMessage(websocket.TextMessage, data)
	if err == nil {
		r.conns[c] = true
	}
	r.mu.Unlock()
	// Read until the page goes away, to notice closes.
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			r.mu.Lock()
			delete(r.conns, c)
			r.mu.Unlock()
			c.Close()
			return
		}
	}
}

func (r *fakeRelay) serveBatches(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	list := make([]task.BatchSummary, 0, len(r.batches))
	for _, b := range r.batches {
		list = append(list, *b)
	}
	r.mu.Unlock()
	writeJSON(w, list)
}

func (r *fakeRelay) serveBatch(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	b := r.batches[req.PathValue("id")]
	var s task.BatchSummary
	if b != nil {
		s = *b
	}
	r.mu.Unlock()
	if b == nil {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		http.Error(w, "no such batch", http.StatusNotFound)
		return
	}
	writeJSON(w, s)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// tasks returns n valid tasks of one batch, priorities in turn.
func tasks(batch string, from, n int) []task.Task {
	out := make([]task.Task, n)
	for i := range out {
		id := from + i
		out[i] = task.Task{BatchID: batch, ID: int64(id), Owner: fmt.Sprintf("Owner %d", id),
			Priority: task.Priorities[id%task.NumPriorities], BatchSize: 1000}
	}
	return out
}

var httpClient = &http.Client{Timeout: 2 * time.Second}
