// Package page serves the producer's web page: a "Produce Tasks" button
// with batch size and speed controls, and a live log of every webhook as it
// completes, streamed with Server-Sent Events. Several batches may run at
// once and each can be cancelled.
//
// The page is plain HTML and a little JavaScript, embedded in the binary;
// it renders every value as text.
package page

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/look"

	"github.com/hookpipe/hookpipe/plumbing/access"
	"github.com/hookpipe/hookpipe/producer/internal/generate"
	"github.com/hookpipe/hookpipe/producer/internal/send"
	"github.com/hookpipe/hookpipe/task"
)

//go:embed static
var static embed.FS

var index = template.Must(template.ParseFS(static, "static/index.html"))

// Sender delivers batches; *send.Sender is one.
type Sender interface {
	SendStream(ctx context.Context, batchID string, n int, next func() send.Delivery, gap send.Gap, onResult func(i int, r send.Result)) send.Summary
}

var _ Sender = (*send.Sender)(nil)

// Options configure a Server.
type Options struct {
	// Generator makes the batches; required.
	Generator *generate.Generator
	// Sender delivers them; required.
	Sender Sender
	// Wait is the default pause between two sends of a batch, which the
	// page can change per batch.
	Wait time.Duration
	// MinTasks and MaxTasks are the bounds of a random batch size, shown on
	// the page.
	MinTasks, MaxTasks int
	// Logger receives one line per batch started and ended; default
	// slog.Default().
	Logger *slog.Logger
	// KeepEvents is how many recent events a reconnecting page can catch
	// up on; default 4096.
	KeepEvents int
	// KeepLines is how many of a running batch's latest lines a page that
	// opens mid-batch is shown, with the batch's start; default 200.
	KeepLines int
	// MaxBatchSize bounds the size of a batch the page may start; default
	// 10,000.
	MaxBatchSize int
	// MaxRunning bounds the batches running at once; default 4.
	MaxRunning int
	// MaxStreams bounds the open event streams (pages); default 32.
	MaxStreams int
	// AccessToken, when set, is what the page requires (see package
	// access); default none, on loopback only.
	AccessToken string
	// Hosts are the host names served besides loopback ones.
	Hosts []string
}

// Server is the page's HTTP handler and the batches it runs.
type Server struct {
	opt     Options
	log     *slog.Logger
	hub     *hub
	mux     *http.ServeMux
	root    http.Handler
	streams atomic.Int64

	mu     sync.Mutex
	runs   map[string]*run
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

type run struct {
	id      string
	size    int
	started time.Time
	cancel  context.CancelFunc
}

// MaxWait bounds the pause the page may ask for between two sends.
const MaxWait = time.Minute

// New returns a Server. Close it to cancel its batches and end its event
// streams.
func New(opt Options) (*Server, error) {
	if opt.Generator == nil || opt.Sender == nil {
		return nil, errors.New("page: generator and sender are required")
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.KeepEvents <= 0 {
		opt.KeepEvents = 4096
	}
	if opt.KeepLines <= 0 {
		opt.KeepLines = 200
	}
	if opt.MaxBatchSize <= 0 {
		opt.MaxBatchSize = 10000
	}
	if opt.MaxRunning <= 0 {
		opt.MaxRunning = 4
	}
	if opt.MaxStreams <= 0 {
		opt.MaxStreams = 32
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opt:    opt,
		log:    opt.Logger,
		hub:    newHub(opt.KeepEvents, opt.KeepLines, 1024),
		mux:    http.NewServeMux(),
		runs:   make(map[string]*run),
		ctx:    ctx,
		cancel: cancel,
	}
	assets, _ := fs.Sub(static, "static")
	gate := access.NewGate(opt.AccessToken)
	s.mux.Handle("GET /{$}", gate.Page(http.HandlerFunc(s.handleIndex)))
	s.mux.Handle("GET /static/", gate.Page(http.StripPrefix("/static/", http.FileServerFS(assets))))
	s.mux.Handle("GET /static/hookpipe.css", gate.Page(http.HandlerFunc(serveLook)))
	s.mux.Handle("GET /events", gate.API(http.HandlerFunc(s.handleEvents)))
	s.mux.Handle("GET /batches", gate.API(http.HandlerFunc(s.handleList)))
	s.mux.Handle("POST /batches", gate.API(http.HandlerFunc(s.handleStart)))
	s.mux.Handle("POST /batches/{id}/cancel", gate.API(http.HandlerFunc(s.handleCancel)))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	// Browsers say where a request comes from: a state-changing request
	// another site made is refused, whatever its content type.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
	}))
	s.root = access.NewHosts(opt.Hosts).Wrap(cop.Handler(s.mux))
	return s, nil
}

// ServeHTTP serves the page, its assets, the event stream and the batch
// endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; "+
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	s.root.ServeHTTP(w, r)
}

// Close cancels every running batch, waits until each has reported its
// summary, and ends the event streams.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
	s.hub.close()
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	err := index.Execute(w, map[string]any{
		"Min":       s.opt.MinTasks,
		"Max":       s.opt.MaxTasks,
		"WaitMS":    s.opt.Wait.Milliseconds(),
		"MaxWaitMS": MaxWait.Milliseconds(),
		"MaxSize":   s.opt.MaxBatchSize,
	})
	if err != nil {
		s.log.Debug("page: render index", "err", err)
	}
}

// startReply answers POST /batches.
type startReply struct {
	BatchID string `json:"batchid"`
	Size    int    `json:"size"`
	WaitMS  int64  `json:"wait_ms"`
}

// handleStart starts a batch. Form fields: size (empty: random between the
// bounds) and wait_ms (empty: the default wait).
func (s *Server) handleStart(w http.ResponseWriter, r *http.Request) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" && ct != "multipart/form-data" {
		writeError(w, http.StatusUnsupportedMediaType, "send the form as application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "unreadable form: "+err.Error())
		return
	}
	size, err := intParam(r.PostForm.Get("size"), 1, s.opt.MaxBatchSize)
	if err != nil {
		writeError(w, http.StatusBadRequest, "size: "+err.Error())
		return
	}
	wait := s.opt.Wait
	if v := r.PostForm.Get("wait_ms"); v != "" {
		ms, err := intParam(v, 0, int(MaxWait.Milliseconds()))
		if err != nil {
			writeError(w, http.StatusBadRequest, "wait_ms: "+err.Error())
			return
		}
		wait = time.Duration(ms) * time.Millisecond
	}
	if s.ctx.Err() != nil {
		writeError(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	var b generate.Batch
	if size == 0 {
		b = s.opt.Generator.Next()
	} else {
		b = s.opt.Generator.NextOfSize(size)
	}
	if b.Size > s.opt.MaxBatchSize {
		b.Size = s.opt.MaxBatchSize // the random bounds are the command line's
	}
	if !s.start(b, wait) {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%d batches are running, the most at once: wait for one to end or cancel one", s.opt.MaxRunning))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(startReply{BatchID: b.ID, Size: b.Size, WaitMS: wait.Milliseconds()})
}

// intParam parses an optional integer in [lo, hi]; empty is 0.
func intParam(v string, lo, hi int) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("want a whole number from %d to %d, got %q", lo, hi, v)
	}
	return n, nil
}

// Events of the stream, as JSON.
type (
	startEvent struct {
		BatchID string `json:"batchid"`
		Size    int    `json:"size"`
		WaitMS  int64  `json:"wait_ms"`
	}
	taskEvent struct {
		BatchID string       `json:"batchid"`
		I       int          `json:"i"`
		N       int          `json:"n"`
		Done    int          `json:"done"` // results of the batch so far, this one included
		Status  int          `json:"status"`
		Outcome send.Outcome `json:"outcome"`
		Retries int          `json:"retries"`
		Error   string       `json:"error,omitempty"`
		Task    task.Task    `json:"task"`
		Line    string       `json:"line"`
	}
	retryEvent struct {
		BatchID string `json:"batchid"`
		I       int    `json:"i"`
		N       int    `json:"n"`
		Attempt int    `json:"attempt"`
		Status  int    `json:"status"`
		Error   string `json:"error"`
		DelayMS int64  `json:"delay_ms"`
	}
	endEvent struct {
		send.Summary
		Line string `json:"line"`
	}
)

// OnRetry publishes a retry to the live log. Set it as the sender's
// OnRetry hook.
func (s *Server) OnRetry(e send.RetryEvent) {
	errText := ""
	if e.Err != nil {
		errText = e.Err.Error()
	}
	s.publish(s.hub.line, e.Delivery.Task.BatchID, "retry", retryEvent{
		BatchID: e.Delivery.Task.BatchID, I: int(e.Delivery.Task.ID) + 1, N: int(e.Delivery.Task.BatchSize),
		Attempt: e.Attempt, Status: e.Status, Error: errText, DelayMS: e.Delay.Milliseconds(),
	})
}

// publish encodes v and hands it to the hub as the named event of batch,
// with the hub's begin, line or end.
func (s *Server) publish(to func(batch, name string, data []byte), batch, name string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		s.log.Error("page: encode event", "event", name, "err", err)
		return
	}
	to(batch, name, data)
}

// start runs batch b, its tasks made as they are sent, unless MaxRunning
// batches run already.
func (s *Server) start(b generate.Batch, wait time.Duration) bool {
	ctx, cancel := context.WithCancel(s.ctx)
	rn := &run{id: b.ID, size: b.Size, started: time.Now(), cancel: cancel}
	s.mu.Lock()
	if len(s.runs) >= s.opt.MaxRunning {
		s.mu.Unlock()
		cancel()
		return false
	}
	s.runs[b.ID] = rn
	s.mu.Unlock()
	s.log.Info("batch started", "batchid", b.ID, "size", b.Size, "wait", wait)
	s.publish(s.hub.begin, b.ID, "start", startEvent{BatchID: b.ID, Size: b.Size, WaitMS: wait.Milliseconds()})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancel()
		n, done := b.Size, 0
		next := func() send.Delivery {
			t, _, _ := b.Next()
			return send.Delivery{WebhookID: send.NewWebhookID(), Task: t}
		}
		sum := s.opt.Sender.SendStream(ctx, b.ID, n, next, send.Every(wait), func(i int, r send.Result) {
			done++ // SendBatch reports one result at a time
			ev := taskEvent{
				BatchID: b.ID, I: i + 1, N: n, Done: done, Status: r.Status, Outcome: r.Outcome,
				Retries: r.Retries(), Task: r.Delivery.Task, Line: send.Line(i+1, n, r),
			}
			if r.Err != nil && r.Outcome != send.Accepted && r.Outcome != send.Duplicate {
				ev.Error = r.Err.Error()
			}
			s.publish(s.hub.line, b.ID, "task", ev)
		})
		s.mu.Lock()
		delete(s.runs, b.ID)
		s.mu.Unlock()
		s.log.Info("batch ended", "batchid", b.ID, "size", sum.Size, "sent", sum.Sent, "accepted", sum.Accepted,
			"duplicates", sum.Duplicates, "failed", sum.Failed, "cancelled", sum.Cancelled,
			"retries", sum.Retries, "duration", sum.Duration)
		s.publish(s.hub.end, b.ID, "end", endEvent{Summary: sum, Line: sum.String()})
	}()
	return true
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	rn, ok := s.runs[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "no running batch "+strconv.Quote(id))
		return
	}
	rn.cancel()
	s.log.Info("batch cancelled", "batchid", id)
	w.WriteHeader(http.StatusNoContent)
}

// runningBatch is an item of GET /batches.
type runningBatch struct {
	BatchID string    `json:"batchid"`
	Size    int       `json:"size"`
	Started time.Time `json:"started"`
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	list := make([]runningBatch, 0, len(s.runs))
	for _, rn := range s.runs {
		list = append(list, runningBatch{BatchID: rn.id, Size: rn.size, Started: rn.started})
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(list)
}

// handleEvents streams events as text/event-stream. A client that
// reconnects with Last-Event-ID gets the events it missed, as far as the
// server still keeps them; a new one gets the running batches' start and
// latest lines first. It subscribes before it answers, so that a client
// that has the answer's headers misses no event published after.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if s.streams.Add(1) > int64(s.opt.MaxStreams) {
		s.streams.Add(-1)
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%d event streams are open, the most at once: close a page", s.opt.MaxStreams))
		return
	}
	defer s.streams.Add(-1)
	events, unsubscribe := s.hub.subscribe(r.Header.Get("Last-Event-ID"))
	defer unsubscribe()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// A comment first, so that the client's onopen fires at once.
	if _, err := w.Write([]byte(": hookpipe producer\nretry: 1000\n\n")); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	buf := make([]byte, 0, 1024)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			buf = append(buf[:0], ": ping\n\n"...)
		case e, ok := <-events:
			if !ok {
				return
			}
			buf = appendEvent(buf[:0], e)
			// Send what else is queued in the same write.
			for more := true; more && len(buf) < 32<<10; {
				select {
				case e, ok := <-events:
					if !ok {
						more = false
						break
					}
					buf = appendEvent(buf, e)
				default:
					more = false
				}
			}
		}
		if _, err := w.Write(buf); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// appendEvent appends e in the event-stream format. Its data is JSON on one
// line, which never holds a raw newline.
func appendEvent(b []byte, e event) []byte {
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, e.ID, 10)
	b = append(b, "\nevent: "...)
	b = append(b, e.Name...)
	b = append(b, "\ndata: "...)
	b = append(b, e.Data...)
	return append(b, '\n', '\n')
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// serveLook serves the stylesheet the dashboard has too.
func serveLook(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "hookpipe.css", time.Time{}, bytes.NewReader(look.CSS))
}
