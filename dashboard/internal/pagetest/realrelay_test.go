package pagetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hookpipe/hookpipe/devenv/proc"
	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

var (
	relayBinOnce sync.Once
	relayBin     string
	relayBinErr  error
)

// relayBinary builds the real relay command once per run.
func relayBinary(t testing.TB) string {
	t.Helper()
	relayBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hookpipe-relay-")
		if err != nil {
			relayBinErr = err
			return
		}
		relayBin = filepath.Join(dir, "relay")
		out, err := exec.Command("go", "build", "-o", relayBin, "github.com/hookpipe/hookpipe/relay").CombinedOutput()
		if err != nil {
			relayBinErr = fmt.Errorf("build relay: %v\n%s", err, out)
		}
	})
	if relayBinErr != nil {
		t.Fatal(relayBinErr)
	}
	return relayBin
}

// system is the real back end of the page: NATS with the TASKS stream,
// Redis with the counts, and the relay between them and the page.
type system struct {
	t                 testing.TB
	js                jetstream.JetStream
	rdb               *redis.Client
	keys              task.Keys
	natsURL, redisURL string
	port              int
	relay             *exec.Cmd
	n                 int
}

func newSystem(t testing.TB) *system {
	t.Helper()
	ns := testenv.NATS(t)
	redisURL, prefix := testenv.Redis(t)
	js := testenv.JetStream(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The stream's settings as the receiver and relay create it.
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: task.StreamName, Subjects: []string{task.SubjectAll}, Storage: jetstream.FileStorage,
		MaxAge: 24 * time.Hour, MaxBytes: 1 << 30, Duplicates: 10 * time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	port, err := proc.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s := &system{t: t, js: js, rdb: rdb, keys: task.Keys{Prefix: prefix}, natsURL: ns.ClientURL(), redisURL: redisURL, port: port}
	s.startRelay()
	t.Cleanup(s.stopRelay)
	return s
}

func (s *system) relayURL() string { return "http://127.0.0.1:" + strconv.Itoa(s.port) }

func (s *system) startRelay() {
	s.t.Helper()
	cmd := exec.Command(relayBinary(s.t), "--addr", "127.0.0.1:"+strconv.Itoa(s.port),
		"--nats-url", s.natsURL, "--redis-url", s.redisURL, "--key-prefix", s.keys.Prefix, "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.relay = cmd
	testenv.Eventually(s.t, 20*time.Second, func() bool {
		res, err := httpClient.Get(s.relayURL() + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	}, "relay not ready")
}

// stopRelay kills the relay at once, as a crash would.
func (s *system) stopRelay() {
	if s.relay == nil {
		return
	}
	s.relay.Process.Kill()
	s.relay.Wait()
	s.relay = nil
}

// accept does what the receiver does for one new task: count it in Redis,
// then publish it to the stream.
func (s *system) accept(n int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range n {
		tk := task.Task{BatchID: batchA, ID: int64(s.n), Owner: "Owner " + strconv.Itoa(s.n), Priority: task.Priorities[s.n*7%4]}
		s.n++
		pipe := s.rdb.TxPipeline()
		pipe.HIncrBy(ctx, s.keys.Counts(), tk.Priority.String(), 1)
		pipe.HIncrBy(ctx, s.keys.Batch(tk.BatchID), tk.Priority.String(), 1)
		pipe.ZAdd(ctx, s.keys.Batches(), redis.Z{Score: float64(time.Now().UnixMilli()), Member: tk.BatchID})
		if _, err := pipe.Exec(ctx); err != nil {
			s.t.Fatal(err)
		}
		if _, err := s.js.Publish(ctx, tk.Priority.Subject(), tk.Encode(), jetstream.WithMsgID("t-"+strconv.Itoa(s.n))); err != nil {
			s.t.Fatal(err)
		}
	}
}

// truth returns the stream's last sequence and the counts in Redis.
func (s *system) truth() (uint64, task.Counts) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, task.StreamName)
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	m, err := s.rdb.HGetAll(ctx, s.keys.Counts()).Result()
	if err != nil {
		s.t.Fatal(err)
	}
	var c task.Counts
	for i, p := range task.Priorities {
		c[i], _ = strconv.ParseInt(m[p.String()], 10, 64)
	}
	return info.State.LastSeq, c
}

// TestRealRelayRestart runs the page against the real relay, NATS and
// Redis: the page shows what Redis and the stream hold, goes on showing it
// while tasks arrive, and matches them again after the relay crashed and
// came back while tasks kept arriving.
func TestRealRelayRestart(t *testing.T) {
	sys := newSystem(t)
	sys.accept(30)
	_, url := startDashboard(t, sys.relayURL())
	ctx := newBrowser(t)
	run(t, ctx, 60*time.Second, chromedp.Navigate(url))
	seq, counts := sys.truth()
	waitJS(t, ctx, 60*time.Second, shows(seq, counts), "page does not show what Redis holds")
	waitJS(t, ctx, 5*time.Second, fmt.Sprintf(connIs, "live"), "connection not live")

	sys.accept(40)
	seq, counts = sys.truth()
	waitJS(t, ctx, 15*time.Second, shows(seq, counts), "live updates do not reach the page")

	sys.stopRelay()
	waitJS(t, ctx, 15*time.Second, fmt.Sprintf(connIs, "reconnecting"), "page did not notice the relay died")
	sys.accept(25)
	sys.startRelay()
	sys.accept(5)
	seq, counts = sys.truth()
	waitJS(t, ctx, 30*time.Second, shows(seq, counts), "page does not match Redis after the relay restarted")
	waitJS(t, ctx, 5*time.Second, fmt.Sprintf(connIs, "live"), "connection not live again")
	items := eval[int](t, ctx, `document.querySelectorAll('#messages li').length`)
	first := eval[string](t, ctx, `document.querySelector('#messages li').dataset.seq`)
	if first != strconv.FormatUint(seq, 10) || items < 30 {
		t.Errorf("list has %d items, newest seq %s; want at least the 30 since the restart, newest %d", items, first, seq)
	}
	waitJS(t, ctx, 15*time.Second, fmt.Sprintf(
		`document.querySelector('#batch') && document.querySelector('#batch').dataset.done === '%d'`, counts.Total()),
		"batch view does not show the batch's count from Redis")
}
