package cli_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/program"
	"github.com/hookpipe/hookpipe/producer/internal/cli"
	"github.com/hookpipe/hookpipe/producer/internal/generate"
	"github.com/hookpipe/hookpipe/task"
)

// run runs one producer command with no environment of its own, and
// returns its output.
func run(t testing.TB, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	out := &syncBuffer{}
	m := &cli.Main{Stdout: out, Stderr: out, Getenv: func(string) string { return "" }}
	err := program.Do(ctx, m, args)
	if errors.Is(err, flag.ErrHelp) {
		err = nil
	}
	return out.String(), err
}

// expected returns the tasks seed generates first at size n, and their
// counts.
func expected(t testing.TB, seed int64, n int) ([]task.Task, task.Counts) {
	t.Helper()
	g, err := generate.New(seed, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	b := g.NextOfSize(n)
	tasks, _ := b.All()
	var c task.Counts
	for _, tk := range tasks {
		c[tk.Priority.Index()]++
	}
	return tasks, c
}

func TestSendBatchArrivesWhole(t *testing.T) {
	r := newReceiver(t, receiverOptions{})
	out, err := run(t, context.Background(), "send", "--receiver-url", r.url,
		"--seed", "11", "--size", "60", "--wait", "0", "--concurrency", "4")
	if err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	b, want := expected(t, 11, 60)
	if got := r.counts(t); got != want {
		t.Fatalf("counts %v, want %v\n%s", got, want, out)
	}
	got, size := r.batch(t, b[0].BatchID)
	if got != want || size != 60 {
		t.Fatalf("batch %s: counts %v size %d, want %v size 60", b[0].BatchID, got, size, want)
	}
	if !strings.Contains(out, "60 tasks, 60 sent, 60 accepted, 0 duplicates, 0 failed") {
		t.Fatalf("summary missing:\n%s", out)
	}
	for i := 1; i <= 60; i++ {
		if !strings.Contains(out, strconv.Itoa(i)+" out of 60 -- 200 -- {") {
			t.Fatalf("no line for task %d:\n%s", i, out)
		}
	}
}

// TestSameSeedSameBatch sends seed 12 twice with fresh webhook ids: both
// runs land in one batch, whose counts are exactly twice the batch's.
func TestSameSeedSameBatch(t *testing.T) {
	r := newReceiver(t, receiverOptions{})
	for range 2 {
		if out, err := run(t, context.Background(), "send", "--receiver-url", r.url,
			"--seed", "12", "--size", "25", "--wait", "0", "--concurrency", "4"); err != nil {
			t.Fatalf("send: %v\n%s", err, out)
		}
	}
	b, one := expected(t, 12, 25)
	var want task.Counts
	for i := range one {
		want[i] = 2 * one[i]
	}
	got, _ := r.batch(t, b[0].BatchID)
	if got != want {
		t.Fatalf("batch %s counts %v, want twice %v", b[0].BatchID, got, one)
	}
	n, err := r.rdb.ZCard(context.Background(), r.keys.Batches()).Result()
	if err != nil || n != 1 {
		t.Fatalf("%d batches recorded (%v), want 1", n, err)
	}
}

// flaky sits between producer and receiver. Before each webhook id's first
// two attempts it answers 503 itself (the receiver never sees them); with
// loseAnswer, it instead forwards the first attempt and replaces the
// receiver's 200 with a 503, as when a connection drops after the work is
// done.
type flaky struct {
	proxy      *httputil.ReverseProxy
	loseAnswer bool
	mu         sync.Mutex
	attempts   map[string]int
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(task.HeaderID)
	f.mu.Lock()
	f.attempts[id]++
	n := f.attempts[id]
	f.mu.Unlock()
	if f.loseAnswer {
		if n == 1 {
			f.proxy.ServeHTTP(httptest.NewRecorder(), r)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
	} else if n <= 2 {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	f.proxy.ServeHTTP(w, r)
}

func TestFlakyReceiverGetsEachTaskOnce(t *testing.T) {
	tests := []struct {
		name        string
		loseAnswer  bool
		retries     int
		duplicates  int
		perTaskSeen int
	}{
		{"503 twice then 200", false, 2, 0, 3},
		{"stored but answer lost", true, 1, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t, receiverOptions{})
			target, _ := url.Parse(r.url)
			f := &flaky{loseAnswer: tt.loseAnswer, attempts: map[string]int{}}
			f.proxy = &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.URL.Path = target.Scheme, target.Host, target.Path
				pr.Out.Host = ""
			}}
			srv := httptest.NewServer(f)
			t.Cleanup(srv.Close)
			const n = 20
			out, err := run(t, context.Background(), "send", "--receiver-url", srv.URL,
				"--seed", "13", "--size", strconv.Itoa(n), "--wait", "0", "--concurrency", "4",
				"--retry-initial", "10ms", "--retry-max", "50ms")
			if err != nil {
				t.Fatalf("send: %v\n%s", err, out)
			}
			_, want := expected(t, 13, n)
			if got := r.counts(t); got != want {
				t.Fatalf("counts %v, want %v (each task once)\n%s", got, want, out)
			}
			sum := "accepted, " + strconv.Itoa(tt.duplicates*n) + " duplicates, 0 failed, " + strconv.Itoa(tt.retries*n) + " retries"
			if !strings.Contains(out, sum) {
				t.Fatalf("summary does not say %q:\n%s", sum, out)
			}
			for id, k := range f.attempts {
				if k != tt.perTaskSeen {
					t.Fatalf("webhook id %s sent %d times, want %d", id, k, tt.perTaskSeen)
				}
			}
		})
	}
}

// TestReceiverDownForAWhile starts sending while nothing listens on the
// receiver's port, and starts the receiver once the producer has been
// refused: every task is counted once.
func TestReceiverDownForAWhile(t *testing.T) {
	r := newReceiver(t, receiverOptions{noStart: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		m := &cli.Main{Stdout: out, Stderr: out, Getenv: func(string) string { return "" }}
		done <- program.Do(ctx, m, []string{"send", "--receiver-url", r.url, "--seed", "14", "--size", "30",
			"--wait", "0", "--concurrency", "3", "--retry-attempts", "100", "--retry-initial", "20ms",
			"--retry-max", "200ms", "--retry-max-elapsed", "45s"})
	}()
	testenv.Eventually(t, 10*time.Second, func() bool {
		return strings.Count(out.String(), "retry:") >= 12
	}, "producer never retried against the closed port:\n%s", out)
	r.start(t)
	if err := <-done; err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	_, want := expected(t, 14, 30)
	if got := r.counts(t); got != want {
		t.Fatalf("counts %v, want %v\n%s", got, want, out)
	}
	if !strings.Contains(out.String(), "30 accepted, 0 duplicates, 0 failed") {
		t.Fatalf("summary:\n%s", out)
	}
}

// TestRedisDownForAWhile stops the receiver's Redis in the middle of a
// batch: the receiver answers 503 with Retry-After, the producer retries,
// and once Redis is back every task is counted exactly once.
func TestRedisDownForAWhile(t *testing.T) {
	rp := testenv.StartRedis(t)
	r := newReceiver(t, receiverOptions{redisURL: rp.URL()})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		m := &cli.Main{Stdout: out, Stderr: out, Getenv: func(string) string { return "" }}
		done <- program.Do(ctx, m, []string{"send", "--receiver-url", r.url, "--seed", "16", "--size", "40",
			"--wait", "20ms", "--concurrency", "2", "--retry-attempts", "100", "--retry-initial", "20ms",
			"--retry-max", "200ms", "--retry-max-elapsed", "45s"})
	}()
	testenv.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(out.String(), "5 out of 40 -- 200")
	}, "first tasks never accepted:\n%s", out)
	rp.Stop()
	testenv.Eventually(t, 20*time.Second, func() bool {
		return strings.Contains(out.String(), "got 503")
	}, "receiver never answered 503 with Redis down:\n%s", out)
	rp.Restart(t)
	if err := <-done; err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	_, want := expected(t, 16, 40)
	if got := r.counts(t); got != want {
		t.Fatalf("counts %v, want %v\n%s", got, want, out)
	}
}

func TestSignedDelivery(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	r := newReceiver(t, receiverOptions{secret: secret})
	out, err := run(t, context.Background(), "send", "--receiver-url", r.url, "--seed", "15", "--size", "5",
		"--wait", "0", "--webhook-secret", "whsec_c2Vjb25kLXNlY3JldC1vZi0yNC1ieXRlcw==")
	if !errors.Is(err, cli.ErrFailed) {
		t.Fatalf("wrong secret: got %v, want ErrFailed\n%s", err, out)
	}
	if !strings.Contains(out, "5 failed, 0 retries") || !strings.Contains(out, "-- 401 failed --") {
		t.Fatalf("a 401 must fail at once, without retries:\n%s", out)
	}
	if got := r.counts(t); got.Total() != 0 {
		t.Fatalf("refused tasks counted: %v", got)
	}
	if out, err = run(t, context.Background(), "send", "--receiver-url", r.url, "--seed", "15", "--size", "5",
		"--wait", "0", "--webhook-secret", secret); err != nil {
		t.Fatalf("right secret: %v\n%s", err, out)
	}
	if _, want := expected(t, 15, 5); r.counts(t) != want {
		t.Fatalf("counts %v, want %v", r.counts(t), want)
	}
}

// recordingCounts totals a recording's priorities.
func recordingCounts(t testing.TB, path string) task.Counts {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c task.Counts
	for line := range strings.Lines(string(raw)) {
		tk, err := task.Decode([]byte(line))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		c[tk.Priority.Index()]++
	}
	return c
}

// TestReplaySameIDsChangesNothing replays a committed recording with its
// own ids twice: the second run moves no count. A plain replay afterwards
// (fresh ids) counts again.
func TestReplaySameIDsChangesNothing(t *testing.T) {
	r := newReceiver(t, receiverOptions{})
	root, err := workspaceRoot()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "testdata", "batches", "three-batches.jsonl")
	once := recordingCounts(t, file)
	args := []string{"replay", "--receiver-url", r.url, "--speed", "max", "--concurrency", "4",
		"--counts", "--redis-url", "redis://" + r.rdb.Options().Addr, "--key-prefix", r.keys.Prefix}
	out, err := run(t, context.Background(), append(append(args, "--same-ids"), file)...)
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if got := r.counts(t); got != once {
		t.Fatalf("after the first replay: %v, want %v\n%s", got, once, out)
	}
	out, err = run(t, context.Background(), append(append(args, "--same-ids"), file)...)
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if got := r.counts(t); got != once {
		t.Fatalf("a --same-ids replay moved the counts to %v, want %v\n%s", got, once, out)
	}
	if !strings.Contains(out, "total+0 (unchanged)") || !strings.Contains(out, "0 accepted, 27 duplicates") {
		t.Fatalf("output does not report an unchanged replay:\n%s", out)
	}
	out, err = run(t, context.Background(), append(args, file)...)
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if got := r.counts(t); got.Total() != 2*once.Total() {
		t.Fatalf("a fresh-id replay gave %v, want twice %v\n%s", got, once, out)
	}
}

func TestBadRecordingSendsNothing(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	good := `{"batchid":"0f8fad5b-d9cb-469f-a165-70867728950e","id":0,"owner":"A","priority":"Low","webhookid":"msg_1","offset_ms":0}`
	os.WriteFile(filepath.Join(dir, "good.jsonl"), []byte(good+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.jsonl"), []byte(good+"\n"+strings.Replace(good, "Low", "High", 1)+"\n"), 0o644)
	out, err := run(t, context.Background(), "replay", "--receiver-url", srv.URL, "--speed", "max",
		filepath.Join(dir, "good.jsonl"), filepath.Join(dir, "bad.jsonl"))
	if err == nil || !strings.Contains(err.Error(), "bad.jsonl:2: task: priority") {
		t.Fatalf("got %v, want an error naming bad.jsonl line 2\n%s", err, out)
	}
	if n := hits.Load(); n != 0 || strings.Contains(out, "out of") {
		t.Fatalf("something was sent before the bad file was read:\n%s", out)
	}
}

// TestServeAgainstReceiver runs the serve command, starts a batch through
// the page's endpoint, reads the live log as a page would, checks the
// counts, and shuts the server down.
func TestServeAgainstReceiver(t *testing.T) {
	r := newReceiver(t, receiverOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	out := &syncBuffer{}
	m := &cli.Main{Stdout: out, Stderr: out, Getenv: func(string) string { return "" }, Ready: func(a string) { ready <- a }}
	done := make(chan error, 1)
	go func() {
		done <- program.Do(ctx, m, []string{"--addr", "127.0.0.1:0", "--receiver-url", r.url, "--seed", "17", "--wait", "0"})
	}()
	var base string
	select {
	case a := <-ready:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("serve: %v\n%s", err, out)
	}
	events, err := http.Get(base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer events.Body.Close()
	res, err := http.PostForm(base+"/batches", url.Values{"size": {"30"}})
	if err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("start: %v %v", res.StatusCode, err)
	}
	res.Body.Close()
	sc := bufio.NewScanner(events.Body)
	lines := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: task") {
			lines++
		}
		if strings.HasPrefix(sc.Text(), "event: end") {
			break
		}
	}
	if lines != 30 {
		t.Fatalf("%d task events, want 30", lines)
	}
	g, _ := generate.New(17, 1, 100)
	var want task.Counts
	b := g.NextOfSize(30)
	tasks, _ := b.All()
	for _, tk := range tasks {
		want[tk.Priority.Index()]++
	}
	if got := r.counts(t); got != want {
		t.Fatalf("counts %v, want %v", got, want)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve ended with %v\n%s", err, out)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("serve did not stop with an event stream open\n%s", out)
	}
	for _, w := range []string{"producer listening", "batch started", "batch ended", "shutting down"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
}
