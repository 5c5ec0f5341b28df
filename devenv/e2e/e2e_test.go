// Package e2e tests the whole pipeline as people run it: the real binaries
// started by the same stack as make run-all, on a private NATS server and a
// real Redis, a recorded batch replayed by the producer, and the dashboard
// read in headless Chromium.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/browser"
	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"

	"github.com/chromedp/chromedp"
	"github.com/hookpipe/hookpipe/devenv/stack"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// The recorded batches the test replays: the first with everything up,
// the second while the relay is down.
const (
	batchFile = "testdata/batches/small.jsonl"
	moreFile  = "testdata/batches/medium.jsonl"
)

// repoRoot returns the folder of go.work.
func repoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == "off" {
		t.Fatalf("e2e: needs the go.work workspace (go env GOWORK: %q, %v)", out, err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// build compiles the four binaries into a folder of the test's own, and
// the page's wasm unless $HOOKPIPE_TEST_WEB_DIR already holds it.
func build(t testing.TB, root string) (binDir, webDir string) {
	t.Helper()
	binDir = t.TempDir()
	goBuild := func(env []string, args ...string) {
		t.Helper()
		cmd := exec.Command("go", append([]string{"build"}, args...)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", args, err, out)
		}
	}
	goBuild(nil, "-o", binDir+string(filepath.Separator), "./receiver", "./relay", "./producer", "./dashboard")
	if webDir = os.Getenv("HOOKPIPE_TEST_WEB_DIR"); webDir != "" {
		return binDir, webDir
	}
	webDir = t.TempDir()
	goBuild([]string{"GOOS=js", "GOARCH=wasm"}, "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(webDir, "app.wasm"), "./dashboard")
	return binDir, webDir
}

// readBatch returns the tasks of a recorded batch.
func readBatch(t testing.TB, path string) []task.Task {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tasks []task.Task
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		tk, err := task.Decode(line)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		tasks = append(tasks, tk)
	}
	if len(tasks) == 0 {
		t.Fatalf("%s holds no task", path)
	}
	return tasks
}

// pageView is what the dashboard shows, read from its DOM.
type pageView struct {
	Conn  string           `json:"conn"`
	Total string           `json:"total"`
	Bars  map[string]int64 `json:"bars"`
	Items []struct {
		Priority string `json:"priority"`
		Text     string `json:"text"`
	} `json:"items"`
	Batches []string `json:"batches"` // the batch picker's options
	Batch   string   `json:"batch"`   // the selected batch's details
}

const readPage = `(() => {
	const c = document.querySelector('#conn'), d = document.querySelector('#dashboard');
	const bars = {};
	for (const b of document.querySelectorAll('rect.bar')) bars[b.dataset.priority] = Number(b.dataset.count);
	const items = [...document.querySelectorAll('#messages li')].map(li => ({priority: li.dataset.priority, text: li.textContent}));
	const batches = [...document.querySelectorAll('#batch-select option')].map(o => o.textContent);
	const b = document.querySelector('#batches');
	return {conn: c ? c.dataset.state : '', total: d ? d.dataset.total : '', bars, items, batches, batch: b ? b.textContent : ''};
})()`

func TestEndToEnd(t *testing.T) {
	root := repoRoot(t)
	binDir, webDir := build(t, root)
	batch := readBatch(t, filepath.Join(root, batchFile))
	var want task.Counts
	for _, tk := range batch {
		want[tk.Priority.Index()]++
	}

	ctx := context.Background()
	var logs bytes.Buffer
	s, err := stack.Start(ctx, stack.Options{
		BinDir: binDir, DataDir: t.TempDir(), WebDir: webDir, NoExternal: true,
		ReceiverPort: -1, RelayPort: -1, DashboardPort: -1, ProducerPort: -1,
		Out: &syncWriter{w: &logs},
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	defer func() {
		s.Close()
		if t.Failed() {
			t.Logf("component logs:\n%s", logs.String())
		}
	}()

	checkCredentials(t, s)

	page := browser.New(t)
	if err := chromedp.Do(page, chromedp.Navigate(s.DashboardURL)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, page, 60*time.Second, "the dashboard to connect to the relay", func(v pageView) bool { return v.Conn == "live" })

	replay(t, binDir, s.ReceiverURL, filepath.Join(root, batchFile))

	v := waitFor(t, page, 30*time.Second, "the bars to show the batch", func(v pageView) bool {
		return v.Total == fmt.Sprint(want.Total())
	})
	inRedis := redisCounts(t, s.NATSURLAs(stack.RoleVerify), s.RedisURLAs(stack.RoleRelay))
	for _, p := range task.Priorities {
		if got := v.Bars[p.String()]; got != want.Of(p) || got != inRedis.Of(p) {
			t.Errorf("bar %s shows %d; the batch has %d and Redis holds %d", p, got, want.Of(p), inRedis.Of(p))
		}
	}
	// Every task of the batch is listed with its owner and priority.
	for _, tk := range batch {
		found := false
		for _, it := range v.Items {
			if it.Priority == tk.Priority.String() && strings.Contains(it.Text, tk.Owner) && strings.Contains(it.Text, tk.Priority.String()) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("the message list lacks task %d of %s (%s)", tk.ID, tk.Owner, tk.Priority)
		}
	}

	// The batch view lists the batch with its count, from Redis.
	batchID := batch[0].BatchID
	waitFor(t, page, 10*time.Second, "the batch view to list the batch", func(v pageView) bool {
		for _, o := range v.Batches {
			if strings.HasPrefix(o, batchID[:8]) && strings.Contains(o, fmt.Sprintf("%d tasks", len(batch))) {
				return true
			}
		}
		return false
	})

	// Guarantee 3 across a relay restart: a batch sent while the relay is
	// down shows once it is back, and the page matches Redis again.
	if err := s.Stop("relay"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, page, 30*time.Second, "the page to notice the relay is gone", func(v pageView) bool { return v.Conn != "live" })
	more := readBatch(t, filepath.Join(root, moreFile))
	for _, tk := range more {
		want[tk.Priority.Index()]++
	}
	replay(t, binDir, s.ReceiverURL, filepath.Join(root, moreFile))
	if err := s.Restart(ctx, "relay"); err != nil {
		t.Fatal(err)
	}
	v = waitFor(t, page, 60*time.Second, "the page to reconnect and show both batches", func(v pageView) bool {
		return v.Conn == "live" && v.Total == fmt.Sprint(want.Total())
	})
	inRedis = redisCounts(t, s.NATSURLAs(stack.RoleVerify), s.RedisURLAs(stack.RoleRelay))
	for _, p := range task.Priorities {
		if got := v.Bars[p.String()]; got != want.Of(p) || got != inRedis.Of(p) {
			t.Errorf("after the relay restart, bar %s shows %d; the batches have %d and Redis holds %d", p, got, want.Of(p), inRedis.Of(p))
		}
	}

	shot := screenshotPath(t, root)
	png, err := chromedp.Run(page, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	version, _ := exec.Command(browser.Path, "--version").Output()
	// Printed, not logged, so that make test shows it on success too.
	fmt.Printf("e2e: %d tasks replayed through receiver, relay and dashboard in %s, %d of them while the relay was down; bars %v equal Redis; screenshot %s\n",
		len(batch)+len(more), strings.TrimSpace(string(version)), len(more), v.Bars, shot)
}

// checkCredentials checks that the stack's NATS and Redis let each role do
// what it needs and nothing more: no anonymous client at all, no direct
// publish into the stream from the relay's user, no writes from the relay's
// Redis user.
func checkCredentials(t *testing.T, s *stack.Stack) {
	t.Helper()
	if nc, err := nats.Connect(s.NATSURL); err == nil {
		nc.Close()
		t.Error("the stack's NATS accepted a client without credentials")
	}
	nc, err := nats.Connect(s.NATSURLAs(stack.RoleRelay))
	if err != nil {
		t.Fatalf("the relay's NATS user: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.Stream(ctx, task.StreamName); err != nil {
		t.Errorf("the relay's NATS user cannot read the stream: %v", err)
	}
	// A refused publish gets no acknowledgement: it ends with its own
	// deadline.
	pubCtx, pubCancel := context.WithTimeout(ctx, time.Second)
	defer pubCancel()
	if _, err := js.Publish(pubCtx, "tasks.critical", []byte(`{}`)); err == nil {
		t.Error("the relay's NATS user published into the stream")
	}
	opt, err := redis.ParseURL(s.RedisURLAs(stack.RoleRelay))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.HGetAll(ctx, task.Keys{}.Counts()).Err(); err != nil {
		t.Errorf("the relay's Redis user cannot read the counts: %v", err)
	}
	if err := rdb.HSet(ctx, task.Keys{}.Counts(), "Low", 1).Err(); err == nil {
		t.Error("the relay's Redis user wrote the counts")
	}
	anon, err := redis.ParseURL(s.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdbAnon := redis.NewClient(anon)
	defer rdbAnon.Close()
	if err := rdbAnon.Get(ctx, "x").Err(); err == nil || err == redis.Nil {
		t.Errorf("the stack's Redis answered a client without credentials (%v)", err)
	}
}

// replay sends a recorded batch through the producer at full speed.
func replay(t testing.TB, binDir, receiverURL, file string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "producer"), "replay", "--speed", "max", "--receiver-url", receiverURL, file)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("producer replay %s: %v\n%s", file, err, out)
	}
}

// waitFor polls the page until cond holds.
func waitFor(t testing.TB, ctx context.Context, d time.Duration, what string, cond func(pageView) bool) pageView {
	t.Helper()
	deadline := time.Now().Add(d)
	var v pageView
	var err error
	for time.Now().Before(deadline) {
		v, err = browser.Eval[pageView](ctx, readPage)
		if err == nil && cond(v) {
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waited %v for %s; page shows %+v (last error %v)", d, what, v, err)
	return v
}

// redisCounts returns the counts in Redis once the receiver's fold has
// reached the end of the stream.
func redisCounts(t testing.TB, natsURL, redisURL string) task.Counts {
	t.Helper()
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	js := testenv.JetStream(t, natsURL)
	var c task.Counts
	testenv.Eventually(t, 20*time.Second, func() bool {
		st, err := js.Stream(context.Background(), task.StreamName)
		if err != nil {
			return false
		}
		info, err := st.Info(context.Background())
		if err != nil {
			return false
		}
		var w uint64
		var ok bool
		c, w, ok, err = redisconn.ReadCounts(context.Background(), rdb, task.Keys{})
		return err == nil && ok && w == info.State.LastSeq
	}, "the fold did not reach the stream's end")
	return c
}

// screenshotPath is where the dashboard's screenshot goes: under
// $HOOKPIPE_ARTIFACTS_DIR, else .artifacts/ at the repository root (ignored by
// git).
func screenshotPath(t testing.TB, root string) string {
	dir := os.Getenv("HOOKPIPE_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(root, ".artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "e2e-dashboard.png")
}
