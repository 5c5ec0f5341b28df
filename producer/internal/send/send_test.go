package send_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/producer/internal/send"
	"github.com/hookpipe/hookpipe/task"
)

const batchID = "0f8fad5b-d9cb-469f-a165-70867728950e"

func sampleTasks(n int) []send.Delivery {
	ds := make([]send.Delivery, n)
	for i := range ds {
		ds[i] = send.Delivery{
			WebhookID: send.NewWebhookID(),
			Task: task.Task{BatchID: batchID, ID: int64(i), Owner: fmt.Sprintf("Owner %d", i),
				Priority: task.Priorities[i%task.NumPriorities], BatchSize: int64(n)},
		}
	}
	return ds
}

// peer is a scripted receiver: answer(id, attempt) decides each reply. It
// stores what it accepted, once per webhook id, as the real receiver does.
type peer struct {
	t      testing.TB
	srv    *httptest.Server
	answer func(id string, attempt int, w http.ResponseWriter) bool // true: accepted

	mu       sync.Mutex
	attempts map[string]int
	stored   map[string]task.Task
	bodies   map[string][]string
	times    map[string][]time.Time
	headers  []http.Header
	remotes  map[string]int
	inFlight atomic.Int32
	peak     atomic.Int32
}

func newPeer(t testing.TB, answer func(id string, attempt int, w http.ResponseWriter) bool) *peer {
	t.Helper()
	p := &peer{t: t, answer: answer, attempts: map[string]int{}, stored: map[string]task.Task{},
		bodies: map[string][]string{}, times: map[string][]time.Time{}, remotes: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *peer) serve(w http.ResponseWriter, r *http.Request) {
	n := p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	for {
		old := p.peak.Load()
		if n <= old || p.peak.CompareAndSwap(old, n) {
			break
		}
	}
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get(task.HeaderID)
	p.mu.Lock()
	p.attempts[id]++
	attempt := p.attempts[id]
	p.bodies[id] = append(p.bodies[id], string(body))
	p.times[id] = append(p.times[id], time.Now())
	p.headers = append(p.headers, r.Header.Clone())
	p.remotes[r.RemoteAddr]++
	p.mu.Unlock()
	if !p.answer(id, attempt, w) {
		return
	}
	tk, err := task.Decode(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	_, dup := p.stored[id]
	p.stored[id] = tk
	p.mu.Unlock()
	if dup {
		w.Write([]byte(`{"status":"duplicate"}`))
		return
	}
	w.Write([]byte(`{"status":"accepted"}`))
}

func ok(string, int, http.ResponseWriter) bool { return true }

func fastRetry() send.Retry {
	return send.Retry{Attempts: 5, Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, MaxElapsed: 10 * time.Second}
}

func newSender(t testing.TB, cfg send.Config) *send.Sender {
	t.Helper()
	s, err := send.New(cfg)
	if err != nil {
		t.Fatalf("send.New: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestHeadersAndSignature(t *testing.T) {
	secret, _ := task.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	p := newPeer(t, ok)
	s := newSender(t, send.Config{URL: p.srv.URL, Secret: secret, Retry: fastRetry()})
	d := sampleTasks(1)[0]
	r := s.Send(context.Background(), d)
	if r.Outcome != send.Accepted || r.Status != 200 || r.Attempts != 1 {
		t.Fatalf("got %+v, want accepted at the first attempt", r)
	}
	h := p.headers[0]
	if h.Get(task.HeaderID) != d.WebhookID {
		t.Errorf("webhook-id %q, want %q", h.Get(task.HeaderID), d.WebhookID)
	}
	if h.Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", h.Get("Content-Type"))
	}
	v := task.Verifier{Secrets: []task.Secret{secret}}
	body := p.bodies[d.WebhookID][0]
	if err := v.Verify(h.Get(task.HeaderID), h.Get(task.HeaderTimestamp), h.Get(task.HeaderSignature), []byte(body), time.Now()); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	if got, _ := task.Decode([]byte(body)); got != d.Task {
		t.Fatalf("body %s decodes to %+v, want %+v", body, got, d.Task)
	}
}

func TestUnsignedWithoutSecret(t *testing.T) {
	p := newPeer(t, ok)
	s := newSender(t, send.Config{URL: p.srv.URL})
	s.Send(context.Background(), sampleTasks(1)[0])
	if sig := p.headers[0].Get(task.HeaderSignature); sig != "" {
		t.Fatalf("signature %q sent without a secret", sig)
	}
	if p.headers[0].Get(task.HeaderTimestamp) == "" {
		t.Fatal("no webhook-timestamp")
	}
}

// TestOutcomes covers the retry decisions: which answers are retried, and
// that each ends in the right outcome with the same webhook id throughout.
func TestOutcomes(t *testing.T) {
	status := func(codes ...int) func(string, int, http.ResponseWriter) bool {
		return func(_ string, attempt int, w http.ResponseWriter) bool {
			if attempt <= len(codes) && codes[attempt-1] != 0 {
				w.WriteHeader(codes[attempt-1])
				return false
			}
			return true
		}
	}
	tests := []struct {
		name     string
		answer   func(string, int, http.ResponseWriter) bool
		outcome  send.Outcome
		attempts int
		status   int
	}{
		{"200 at once", ok, send.Accepted, 1, 200},
		{"503 twice then 200", status(503, 503), send.Accepted, 3, 200},
		{"429 then 200", status(429), send.Accepted, 2, 200},
		{"500 502 504 then 200", status(500, 502, 504), send.Accepted, 4, 200},
		{"408 then 200", status(408), send.Accepted, 2, 200},
		{"400 is final", status(400), send.Failed, 1, 400},
		{"401 is final", status(401), send.Failed, 1, 401},
		{"413 is final", status(413), send.Failed, 1, 413},
		{"415 is final", status(415), send.Failed, 1, 415},
		{"503 forever exhausts the schedule", status(503, 503, 503, 503, 503, 503), send.Failed, 5, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPeer(t, tt.answer)
			s := newSender(t, send.Config{URL: p.srv.URL, Retry: fastRetry()})
			var retries []send.RetryEvent
			s.OnRetry = func(e send.RetryEvent) { retries = append(retries, e) }
			d := sampleTasks(1)[0]
			r := s.Send(context.Background(), d)
			if r.Outcome != tt.outcome || r.Attempts != tt.attempts || r.Status != tt.status {
				t.Fatalf("got %v after %d attempts, status %d (%v); want %v after %d, status %d",
					r.Outcome, r.Attempts, r.Status, r.Err, tt.outcome, tt.attempts, tt.status)
			}
			if got := p.attempts[d.WebhookID]; got != tt.attempts {
				t.Errorf("receiver saw %d attempts under the id, want %d (ids seen: %d)", got, tt.attempts, len(p.attempts))
			}
			if len(retries) != tt.attempts-1 {
				t.Errorf("OnRetry called %d times, want %d", len(retries), tt.attempts-1)
			}
			if tt.outcome == send.Failed && r.Err == nil {
				t.Error("failed without an error")
			}
			if tt.attempts == 5 && !errors.Is(r.Err, send.ErrScheduleExhausted) {
				t.Errorf("error %v is not ErrScheduleExhausted", r.Err)
			}
			for i, b := range p.bodies[d.WebhookID] {
				if b != string(d.Task.Encode()) {
					t.Errorf("attempt %d sent %s, want the same body each time", i+1, b)
				}
			}
		})
	}
}

func TestDuplicateAnswer(t *testing.T) {
	p := newPeer(t, ok)
	s := newSender(t, send.Config{URL: p.srv.URL})
	d := sampleTasks(1)[0]
	if r := s.Send(context.Background(), d); r.Outcome != send.Accepted {
		t.Fatalf("first send %v", r.Outcome)
	}
	if r := s.Send(context.Background(), d); r.Outcome != send.Duplicate || r.Status != 200 {
		t.Fatalf("second send of the same id: %v %d, want duplicate 200", r.Outcome, r.Status)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	p := newPeer(t, func(_ string, attempt int, w http.ResponseWriter) bool {
		if attempt == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(503)
			return false
		}
		return true
	})
	// Backoff alone would retry after 5 ms at most.
	s := newSender(t, send.Config{URL: p.srv.URL, Retry: fastRetry()})
	var delay time.Duration
	s.OnRetry = func(e send.RetryEvent) { delay = e.Delay }
	d := sampleTasks(1)[0]
	r := s.Send(context.Background(), d)
	if r.Outcome != send.Accepted || r.Attempts != 2 {
		t.Fatalf("got %v after %d attempts", r.Outcome, r.Attempts)
	}
	if delay != time.Second {
		t.Errorf("planned delay %v, want the 1s Retry-After", delay)
	}
	ts := p.times[d.WebhookID]
	if gap := ts[1].Sub(ts[0]); gap < 900*time.Millisecond {
		t.Errorf("retried after %v, before the 1s Retry-After", gap)
	}
}

func TestRetryAfterBeyondScheduleFails(t *testing.T) {
	p := newPeer(t, func(_ string, _ int, w http.ResponseWriter) bool {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(503)
		return false
	})
	s := newSender(t, send.Config{URL: p.srv.URL, Retry: fastRetry()})
	r := s.Send(context.Background(), sampleTasks(1)[0])
	if r.Outcome != send.Failed || r.Attempts != 1 || !errors.Is(r.Err, send.ErrScheduleExhausted) {
		t.Fatalf("got %v after %d attempts (%v), want failed at once", r.Outcome, r.Attempts, r.Err)
	}
}

func TestTimeoutIsRetried(t *testing.T) {
	release := make(chan struct{})
	p := newPeer(t, func(_ string, attempt int, w http.ResponseWriter) bool {
		if attempt == 1 {
			<-release
			return false
		}
		return true
	})
	// Registered after newPeer, so it runs before the server's Close.
	t.Cleanup(func() { close(release) })
	s := newSender(t, send.Config{URL: p.srv.URL, Timeout: 100 * time.Millisecond, Retry: fastRetry()})
	d := sampleTasks(1)[0]
	r := s.Send(context.Background(), d)
	if r.Outcome != send.Accepted || r.Attempts != 2 {
		t.Fatalf("got %v after %d attempts (%v), want accepted at the second", r.Outcome, r.Attempts, r.Err)
	}
}

// TestReceiverDownForAWhile closes the port, sends a batch, and opens it
// again: every task arrives exactly once.
func TestReceiverDownForAWhile(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := newPeer(t, ok)
	s := newSender(t, send.Config{URL: "http://" + addr, Concurrency: 4, Retry: send.Retry{
		Attempts: 50, Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, MaxElapsed: 30 * time.Second}})
	var failedOnce atomic.Int32
	s.OnRetry = func(send.RetryEvent) { failedOnce.Add(1) }
	ds := sampleTasks(20)
	done := make(chan send.Summary)
	go func() { done <- s.SendBatch(context.Background(), batchID, ds, nil, nil) }()
	// Come back only once every worker has been refused at least once.
	deadline := time.Now().Add(10 * time.Second)
	for failedOnce.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if failedOnce.Load() < 4 {
		t.Fatal("sender never met the closed port")
	}
	back, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("reopen %s: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(p.serve)}
	go srv.Serve(back)
	t.Cleanup(func() { srv.Close() })
	sum := <-done
	if sum.Accepted != len(ds) || sum.Failed != 0 || sum.Retries == 0 {
		t.Fatalf("summary %v, want all %d accepted after retries", sum, len(ds))
	}
	if len(p.stored) != len(ds) {
		t.Fatalf("receiver stored %d tasks, want %d", len(p.stored), len(ds))
	}
	for _, d := range ds {
		if p.stored[d.WebhookID] != d.Task {
			t.Fatalf("task %d not stored under its id", d.Task.ID)
		}
	}
}

func TestKeepAlive(t *testing.T) {
	p := newPeer(t, func(_ string, attempt int, w http.ResponseWriter) bool {
		if attempt == 1 {
			w.WriteHeader(503)
			w.Write([]byte(`{"error":"busy"}`))
			return false
		}
		return true
	})
	s := newSender(t, send.Config{URL: p.srv.URL, Retry: fastRetry()})
	if sum := s.SendBatch(context.Background(), batchID, sampleTasks(10), nil, nil); sum.Accepted != 10 {
		t.Fatalf("summary %v", sum)
	}
	if len(p.remotes) != 1 {
		t.Fatalf("20 requests one after another used %d connections, want 1 kept alive", len(p.remotes))
	}
}

func TestConcurrencyLimit(t *testing.T) {
	gate := make(chan struct{})
	p := newPeer(t, func(string, int, http.ResponseWriter) bool { <-gate; return true })
	s := newSender(t, send.Config{URL: p.srv.URL, Concurrency: 3})
	ds := sampleTasks(12)
	done := make(chan send.Summary)
	go func() { done <- s.SendBatch(context.Background(), batchID, ds, nil, nil) }()
	deadline := time.Now().Add(5 * time.Second)
	for p.inFlight.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	sum := <-done
	if sum.Accepted != 12 {
		t.Fatalf("summary %v", sum)
	}
	if got := p.peak.Load(); got != 3 {
		t.Fatalf("peak of %d requests in flight, want 3", got)
	}
}

func TestRateLimit(t *testing.T) {
	p := newPeer(t, ok)
	s := newSender(t, send.Config{URL: p.srv.URL, Concurrency: 8, Rate: 50})
	start := time.Now()
	sum := s.SendBatch(context.Background(), batchID, sampleTasks(11), nil, nil)
	if sum.Accepted != 11 {
		t.Fatalf("summary %v", sum)
	}
	// 50 per second with a burst of one: ten gaps of 20 ms at least.
	if d := time.Since(start); d < 180*time.Millisecond {
		t.Fatalf("11 tasks at 50/s took %v, want at least 200ms", d)
	}
}

func TestCancelReportsEveryTask(t *testing.T) {
	p := newPeer(t, ok)
	s := newSender(t, send.Config{URL: p.srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	ds := sampleTasks(10)
	var seen []int
	sum := s.SendBatch(ctx, batchID, ds, send.Every(20*time.Millisecond), func(i int, r send.Result) {
		seen = append(seen, i)
		if i == 2 {
			cancel()
		}
	})
	if len(seen) != len(ds) {
		t.Fatalf("%d results reported for %d tasks", len(seen), len(ds))
	}
	if sum.Accepted != 3 || sum.Cancelled != 7 || sum.Sent != 3 {
		t.Fatalf("summary %v, want 3 accepted and 7 cancelled", sum)
	}
	if len(p.stored) != 3 {
		t.Fatalf("receiver stored %d, want 3", len(p.stored))
	}
}

func TestSummaryAndLine(t *testing.T) {
	p := newPeer(t, func(id string, attempt int, w http.ResponseWriter) bool {
		if strings.HasSuffix(id, "fail") {
			w.WriteHeader(400)
			return false
		}
		if attempt == 1 {
			w.WriteHeader(503)
			return false
		}
		return true
	})
	s := newSender(t, send.Config{URL: p.srv.URL, Retry: fastRetry()})
	ds := sampleTasks(3)
	ds[2].WebhookID = "msg_fail"
	// Results come in the order tasks finish, not the order they were sent.
	lines := make([]string, len(ds))
	sum := s.SendBatch(context.Background(), batchID, ds, nil, func(i int, r send.Result) {
		lines[i] = send.Line(i+1, len(ds), r)
	})
	want := send.Summary{BatchID: batchID, Size: 3, Sent: 3, Accepted: 2, Failed: 1, Retries: 2}
	sum.Duration = 0
	if sum != want {
		t.Fatalf("summary %+v, want %+v", sum, want)
	}
	if !strings.HasPrefix(lines[0], "1 out of 3 -- 200 -- {") || !strings.HasSuffix(lines[0], "-- 1 retry") {
		t.Errorf("line %q", lines[0])
	}
	if !strings.HasPrefix(lines[2], "3 out of 3 -- 400 failed -- {") || !strings.Contains(lines[2], "receiver answered 400") {
		t.Errorf("line %q", lines[2])
	}
	if s := sum.String(); !strings.Contains(s, "2 accepted, 0 duplicates, 1 failed, 2 retries") {
		t.Errorf("summary line %q", s)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*send.Config)
	}{
		{"negative concurrency", func(c *send.Config) { c.Concurrency = -1 }},
		{"negative rate", func(c *send.Config) { c.Rate = -1 }},
		{"negative timeout", func(c *send.Config) { c.Timeout = -1 }},
		{"retries past the duplicate window", func(c *send.Config) { c.Retry.MaxElapsed = 11 * time.Minute }},
		{"negative attempts", func(c *send.Config) { c.Retry.Attempts = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := send.DefaultConfig()
			tt.mod(&c)
			if _, err := send.New(c); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
	if err := send.DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"status":"accepted"}`))
	}))
	defer srv.Close()
	s := newSender(b, send.Config{URL: srv.URL, Concurrency: 8})
	d := sampleTasks(1)[0]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := s.Send(context.Background(), d); r.Outcome == send.Failed {
				b.Fatal(r.Err)
			}
		}
	})
}
