package page_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/producer/internal/generate"
	"github.com/hookpipe/hookpipe/producer/internal/page"
	"github.com/hookpipe/hookpipe/producer/internal/send"
	"github.com/hookpipe/hookpipe/task"
)

// peer is a stand-in receiver whose answers a test scripts: hold, when
// set, is called before each answer and may block it.
type peer struct {
	srv  *httptest.Server
	hold func(t task.Task) (status int, body string)
}

func newPeer(t testing.TB, hold func(task.Task) (int, string)) *peer {
	t.Helper()
	p := &peer{hold: hold}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		tk, err := task.Decode(b)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		status, body := 200, `{"status":"accepted"}`
		if p.hold != nil {
			status, body = p.hold(tk)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// newPage starts a page server that sends to p.
func newPage(t testing.TB, p *peer) (*page.Server, *httptest.Server) {
	t.Helper()
	return newPageWith(t, p, page.Options{})
}

// newPageWith starts a page server that sends to p, with the keep limits
// of opt.
func newPageWith(t testing.TB, p *peer, opt page.Options) (*page.Server, *httptest.Server) {
	t.Helper()
	s, err := send.New(send.Config{URL: p.srv.URL, Concurrency: 1,
		Retry: send.Retry{Attempts: 3, Initial: 5 * time.Millisecond, Max: 10 * time.Millisecond, MaxElapsed: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	g, _ := generate.New(1, 1, 100)
	pg, err := page.New(page.Options{Generator: g, Sender: s, Wait: time.Second, MinTasks: 1, MaxTasks: 100,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), KeepEvents: opt.KeepEvents, KeepLines: opt.KeepLines,
		MaxBatchSize: opt.MaxBatchSize, MaxRunning: opt.MaxRunning, MaxStreams: opt.MaxStreams, AccessToken: opt.AccessToken})
	if err != nil {
		t.Fatal(err)
	}
	s.OnRetry = pg.OnRetry
	srv := httptest.NewServer(pg)
	// Close the page first: it ends the event streams the server waits for.
	t.Cleanup(srv.Close)
	t.Cleanup(pg.Close)
	return pg, srv
}

type sse struct {
	id, name string
	data     map[string]any
}

// stream reads events from GET /events until the test ends.
func stream(t testing.TB, base, lastID string) <-chan sse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events", nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	out := make(chan sse, 1000)
	go func() {
		defer res.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(res.Body)
		var e sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.name != "" {
					out <- e
				}
				e = sse{}
			case strings.HasPrefix(line, "id: "):
				e.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				json.Unmarshal([]byte(line[6:]), &e.data)
			}
		}
	}()
	return out
}

func next(t testing.TB, c <-chan sse) sse {
	t.Helper()
	select {
	case e, ok := <-c:
		if !ok {
			t.Fatal("event stream ended")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sse{}
}

func start(t testing.TB, base string, form url.Values) (int, map[string]any) {
	t.Helper()
	res, err := http.PostForm(base+"/batches", form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]any
	json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body
}

func TestBatchStreamsEachTask(t *testing.T) {
	p := newPeer(t, nil)
	_, srv := newPage(t, p)
	events := stream(t, srv.URL, "")
	code, body := start(t, srv.URL, url.Values{"size": {"5"}, "wait_ms": {"0"}})
	if code != http.StatusAccepted || body["size"] != 5.0 {
		t.Fatalf("POST /batches: %d %v", code, body)
	}
	e := next(t, events)
	if e.name != "start" || e.data["batchid"] != body["batchid"] {
		t.Fatalf("first event %+v, want start of %v", e, body["batchid"])
	}
	for i := 1; i <= 5; i++ {
		e = next(t, events)
		if e.name != "task" || e.data["i"] != float64(i) || e.data["n"] != 5.0 || e.data["status"] != 200.0 || e.data["outcome"] != "accepted" {
			t.Fatalf("event %d: %+v", i, e)
		}
		line, _ := e.data["line"].(string)
		if !strings.HasPrefix(line, strconv.Itoa(i)+" out of 5 -- 200 -- {") {
			t.Fatalf("line %q", line)
		}
	}
	e = next(t, events)
	if e.name != "end" || e.data["accepted"] != 5.0 || e.data["failed"] != 0.0 {
		t.Fatalf("end event %+v", e)
	}
}

func TestPageOpenedMidBatchSeesIt(t *testing.T) {
	release := make(chan struct{})
	p := newPeer(t, func(tk task.Task) (int, string) {
		if tk.ID == 3 {
			<-release
		}
		return 200, `{"status":"accepted"}`
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	_, srv := newPageWith(t, p, page.Options{KeepLines: 2})
	first := stream(t, srv.URL, "")
	_, body := start(t, srv.URL, url.Values{"size": {"5"}, "wait_ms": {"0"}})
	for e := next(t, first); e.name != "task" || e.data["i"] != 3.0; e = next(t, first) {
	}
	// The fourth task is held: a page opened now sees the batch's start and
	// its latest two lines, then the rest as it comes.
	late := stream(t, srv.URL, "")
	want := []struct {
		name string
		i    float64
	}{{"start", 0}, {"task", 2}, {"task", 3}}
	for _, w := range want {
		e := next(t, late)
		if e.name != w.name || e.data["batchid"] != body["batchid"] || (w.i > 0 && e.data["i"] != w.i) {
			t.Fatalf("late page got %s %v, want %s %v of batch %v", e.name, e.data, w.name, w.i, body["batchid"])
		}
	}
	close(release)
	for _, i := range []float64{4, 5} {
		if e := next(t, late); e.name != "task" || e.data["i"] != i || e.data["done"] != i {
			t.Fatalf("late page got %s %v, want task %v", e.name, e.data, i)
		}
	}
	if e := next(t, late); e.name != "end" {
		t.Fatalf("late page got %s %v, want end", e.name, e.data)
	}
	// Once the batch ended, a new page is shown nothing of it: the first
	// event it gets is the start of the next batch.
	fresh := stream(t, srv.URL, "")
	_, again := start(t, srv.URL, url.Values{"size": {"1"}, "wait_ms": {"0"}})
	if e := next(t, fresh); e.name != "start" || e.data["batchid"] != again["batchid"] {
		t.Fatalf("a page opened after the batch got %s %v first, want the start of %v", e.name, e.data, again["batchid"])
	}
}

func TestRetriesAndFailuresAreStreamed(t *testing.T) {
	var mu sync.Mutex
	tries := map[int64]int{}
	p := newPeer(t, func(tk task.Task) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		tries[tk.ID]++
		switch {
		case tk.ID == 0 && tries[tk.ID] == 1:
			return 503, `{"error":"busy"}`
		case tk.ID == 1:
			return 400, `{"error":"no"}`
		}
		return 200, `{"status":"accepted"}`
	})
	_, srv := newPage(t, p)
	events := stream(t, srv.URL, "")
	start(t, srv.URL, url.Values{"size": {"2"}, "wait_ms": {"0"}})
	var names []string
	var got []sse
	for {
		e := next(t, events)
		names = append(names, e.name)
		got = append(got, e)
		if e.name == "end" {
			break
		}
	}
	if strings.Join(names, ",") != "start,retry,task,task,end" {
		t.Fatalf("events %v", names)
	}
	if got[1].data["status"] != 503.0 || got[1].data["attempt"] != 1.0 {
		t.Errorf("retry event %+v", got[1].data)
	}
	if got[2].data["retries"] != 1.0 || got[2].data["outcome"] != "accepted" {
		t.Errorf("first task %+v", got[2].data)
	}
	if got[3].data["outcome"] != "failed" || !strings.Contains(got[3].data["error"].(string), "400") {
		t.Errorf("second task %+v", got[3].data)
	}
	if got[4].data["failed"] != 1.0 || got[4].data["retries"] != 1.0 {
		t.Errorf("summary %+v", got[4].data)
	}
}

func TestBadStartChangesNothing(t *testing.T) {
	p := newPeer(t, nil)
	_, srv := newPage(t, p)
	tests := []struct {
		name string
		form url.Values
	}{
		{"size not a number", url.Values{"size": {"ten"}}},
		{"size zero", url.Values{"size": {"0"}}},
		{"size negative", url.Values{"size": {"-3"}}},
		{"size too large", url.Values{"size": {"1000001"}}},
		{"wait negative", url.Values{"wait_ms": {"-1"}}},
		{"wait too long", url.Values{"wait_ms": {"60001"}}},
		{"wait fractional", url.Values{"wait_ms": {"1.5"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := start(t, srv.URL, tt.form)
			if code != http.StatusBadRequest || body["error"] == "" || body["error"] == nil {
				t.Fatalf("got %d %v, want 400 with an error", code, body)
			}
		})
	}
	res, err := http.Get(srv.URL + "/batches")
	if err != nil {
		t.Fatal(err)
	}
	var list []any
	json.NewDecoder(res.Body).Decode(&list)
	res.Body.Close()
	if len(list) != 0 {
		t.Fatalf("bad requests started batches: %v", list)
	}
}

func TestCancel(t *testing.T) {
	p := newPeer(t, nil)
	_, srv := newPage(t, p)
	events := stream(t, srv.URL, "")
	_, body := start(t, srv.URL, url.Values{"size": {"50"}, "wait_ms": {"20"}})
	id := body["batchid"].(string)
	next(t, events) // start
	next(t, events) // first task
	res, err := http.Post(srv.URL+"/batches/"+id+"/cancel", "", nil)
	if err != nil || res.StatusCode != http.StatusNoContent {
		t.Fatalf("cancel: %v %v", res.StatusCode, err)
	}
	var end sse
	tasks := 1
	for end.name != "end" {
		end = next(t, events)
		if end.name == "task" {
			tasks++
		}
	}
	if tasks != 50 {
		t.Fatalf("%d task events, want one for each of the 50 tasks", tasks)
	}
	if c := end.data["cancelled"].(float64); c < 1 || end.data["accepted"].(float64)+c != 50 {
		t.Fatalf("summary %+v, want accepted + cancelled = 50", end.data)
	}
	if res, _ := http.Post(srv.URL+"/batches/"+id+"/cancel", "", nil); res.StatusCode != http.StatusNotFound {
		t.Fatalf("cancelling an ended batch: %d, want 404", res.StatusCode)
	}
}

func TestReconnectResumes(t *testing.T) {
	p := newPeer(t, nil)
	_, srv := newPage(t, p)
	events := stream(t, srv.URL, "")
	start(t, srv.URL, url.Values{"size": {"3"}, "wait_ms": {"0"}})
	var all []sse
	for len(all) == 0 || all[len(all)-1].name != "end" {
		all = append(all, next(t, events))
	}
	again := stream(t, srv.URL, all[1].id)
	for _, want := range all[2:] {
		if got := next(t, again); got.id != want.id || got.name != want.name {
			t.Fatalf("resumed with %s %s, want %s %s", got.id, got.name, want.id, want.name)
		}
	}
}

func TestIndex(t *testing.T) {
	p := newPeer(t, nil)
	_, srv := newPage(t, p)
	res, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"Produce Tasks", `value="1000"`, "random 1–100", `src="/static/app.js"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	for _, asset := range []string{"/static/app.js", "/static/app.css", "/static/hookpipe.css"} {
		r, err := http.Get(srv.URL + asset)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("%s: %v %v", asset, r.StatusCode, err)
		}
		r.Body.Close()
	}
}
