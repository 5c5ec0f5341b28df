package cluster

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hookpipe/hookpipe/devenv/browser"
	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// binDir is where make test-cluster built the binaries and nats-server.
func binDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HOOKPIPE_CLUSTER_BIN")
	if dir == "" {
		t.Skip("cluster tests run with make test-cluster, which builds nats-server and sets HOOKPIPE_CLUSTER_BIN")
	}
	if err := Need(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestNodeLossUnderLoad runs the cluster under about 1,000 webhooks a
// second and kills, one after the other, the NATS node leading the stream,
// the Redis master holding the fold's keys, a receiver and a relay, each
// with SIGKILL, and brings each back. After each, with the load paused,
// every task that was answered 200 is in the stream once and counted once,
// and every dashboard, 200 WebSocket clients and a Chromium page, those of
// the killed relay moved to the other, saw every event once, in order, and
// shows the stream's counts.
func TestNodeLossUnderLoad(t *testing.T) {
	bin := binDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	var log bytes.Buffer
	var logMu sync.Mutex
	out := writerFunc(func(p []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return log.Write(p) })
	opts := Options{BinDir: bin, DataDir: t.TempDir(),
		ReceiverPort: -1, RelayPorts: [2]int{-1, -1}, DashboardPort: -1, ProducerPort: -1, Out: out}
	// The dashboard's files, built by make test-cluster; from this
	// package's folder when run by hand.
	opts.WebDir = filepath.Join("..", "..", "dashboard", "web")
	if dir := os.Getenv("HOOKPIPE_TEST_WEB_DIR"); dir != "" {
		opts.WebDir = dir
	}
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Cleanup(func() {
		if t.Failed() {
			logMu.Lock()
			defer logMu.Unlock()
			path := filepath.Join(artifactsDir(t), "cluster-test.log")
			if os.WriteFile(path, log.Bytes(), 0o644) == nil {
				t.Logf("the cluster's whole log: %s", path)
			}
			lines := strings.Split(log.String(), "\n")
			t.Logf("last lines of the cluster's log:\n%s", strings.Join(lines[max(len(lines)-80, 0):], "\n"))
		}
	})

	nc, err := nats.Connect(c.NATSURL, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := redisconn.New(redisconn.Options{URL: c.RedisURL, Mode: redisconn.ModeCluster}, redisconn.Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	keys := task.Keys{Prefix: task.DefaultKeyPrefix}

	// The page connects to the first relay, the one that will be killed.
	page := browser.New(t)
	if err := chromedp.Do(page, chromedp.Navigate(c.DashboardURL)); err != nil {
		t.Fatal(err)
	}
	waitPage(t, page, "the dashboard to connect", func(v pageView) bool { return v.Conn == "live" })

	var clients []*wsClient
	for i := range 200 {
		clients = append(clients, startWSClient(c.RelayURLs, i%2))
	}
	defer func() {
		for _, w := range clients {
			close(w.stop)
			<-w.done
		}
	}()
	// Every dashboard shows the stream's end once the load pauses.
	dashboards := func(last uint64, want task.Counts) {
		t.Helper()
		caughtUp(t, clients, last, want)
		waitPage(t, page, "the dashboard to show the stream's counts", func(v pageView) bool {
			return v.Seq == strconv.FormatUint(last, 10) && v.counts() == want
		})
	}
	load := startSender(c.ReceiverURL, 100, 100*time.Millisecond) // about 1,000 a second, when the machine keeps up
	t0 := time.Now()
	load.progress(t, "before any loss", 1000)
	t.Logf("before any loss: %.0f webhooks acknowledged a second", float64(load.total())/time.Since(t0).Seconds())

	// The NATS node leading the stream.
	leader := streamLeader(t, ctx, js)
	var node *Node
	for _, n := range c.NATS {
		if n.Name == leader {
			node = n
		}
	}
	if node == nil {
		t.Fatalf("stream leader %q is none of the NATS nodes", leader)
	}
	f := load.mark("NATS stream leader " + node.Name)
	node.Kill()
	load.progress(t, "after the stream leader died", 1000)
	if err := c.Restart(ctx, node); err != nil {
		t.Fatal(err)
	}
	dashboards(load.settle(t, ctx, f, js, rdb, keys))
	load.resume()

	// The Redis master of the fold's keys.
	master := slotMaster(t, ctx, rdb, keys.Counts())
	for _, n := range c.Redis {
		if n.Addr == master {
			node = n
		}
	}
	f = load.mark("Redis master of " + keys.Counts() + " " + node.Name)
	node.Kill()
	load.progress(t, "after the fold's Redis master died", 1000)
	if err := c.Restart(ctx, node); err != nil {
		t.Fatal(err)
	}
	dashboards(load.settle(t, ctx, f, js, rdb, keys))
	load.resume()

	// A receiver: the other one on the port takes the retries.
	f = load.mark(c.Receivers[0].Name)
	c.Receivers[0].Kill()
	load.progress(t, "after a receiver died", 1000)
	if err := c.Restart(ctx, c.Receivers[0]); err != nil {
		t.Fatal(err)
	}
	dashboards(load.settle(t, ctx, f, js, rdb, keys))
	load.resume()

	// A relay: its clients, the page among them, move to the other and
	// resume.
	f = load.mark(c.Relays[0].Name)
	c.Relays[0].Kill()
	killed := time.Now()
	waitPage(t, page, "the dashboard to move to the other relay", func(v pageView) bool { return v.Conn == "live" && v.Reconnects > 0 })
	pageBack := time.Since(killed)
	load.progress(t, "after a relay died", 500)
	shot := filepath.Join(artifactsDir(t), "cluster-relay-kill.png")
	if png, err := chromedp.Run(page, chromedp.FullScreenshot(100)); err == nil {
		if os.WriteFile(shot, png, 0o644) == nil {
			t.Logf("the dashboard with %s down: %s", c.Relays[0].Name, shot)
		}
	}
	if err := c.Restart(ctx, c.Relays[0]); err != nil {
		t.Fatal(err)
	}
	last, want := load.settle(t, ctx, f, js, rdb, keys)
	dashboards(last, want)
	var outage time.Duration
	moved := 0
	for _, w := range clients {
		if _, _, _, moves := w.state(); moves > 0 {
			moved++
		}
		outage = max(outage, w.outage())
	}
	t.Logf("relay loss: %d of %d WebSocket clients moved relays, each back within %v; the page was live again after %v",
		moved, len(clients), outage.Round(time.Millisecond), pageBack.Round(time.Millisecond))
	if moved < len(clients)/2 {
		t.Errorf("%d of %d clients moved relays, want at least those of the killed one", moved, len(clients))
	}
	load.resume()
	load.progress(t, "with every node back", 500)
	f = load.mark("none, every node back")
	last, want = load.settle(t, ctx, f, js, rdb, keys)
	dashboards(last, want)
	load.resume()
	want = load.close()
	t.Logf("acknowledged %d tasks (%v)", want.Total(), want)
}

// pageView is what the Chromium dashboard shows.
type pageView struct {
	Conn       string           `json:"conn"`
	Seq        string           `json:"seq"`
	Bars       map[string]int64 `json:"bars"`
	Reconnects int              `json:"reconnects"`
}

func (v pageView) counts() task.Counts {
	var c task.Counts
	for _, p := range task.Priorities {
		c[p.Index()] = v.Bars[p.String()]
	}
	return c
}

const readPage = `(() => {
	const c = document.querySelector('#conn'), d = document.querySelector('#dashboard');
	const bars = {};
	for (const b of document.querySelectorAll('rect.bar')) bars[b.dataset.priority] = Number(b.dataset.count);
	const s = window.hookpipeStats || {};
	return {conn: c ? c.dataset.state : '', seq: d ? d.dataset.seq : '', bars, reconnects: s.reconnects || 0};
})()`

// waitPage polls the page until cond holds, for up to a minute.
func waitPage(t *testing.T, page context.Context, what string, cond func(pageView) bool) {
	t.Helper()
	var v pageView
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if v, err = browser.Eval[pageView](page, readPage); err == nil && cond(v) {
			return
		}
	}
	t.Fatalf("waited a minute for %s; the page shows %+v (last error %v)", what, v, err)
}

// artifactsDir is where failure logs and screenshots go:
// $HOOKPIPE_ARTIFACTS_DIR, else the system's temporary folder.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("HOOKPIPE_ARTIFACTS_DIR")
	if dir == "" {
		return os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// streamLeader returns the name of the NATS node leading the TASKS stream.
func streamLeader(t *testing.T, ctx context.Context, js jetstream.JetStream) string {
	t.Helper()
	var leader string
	testenv.Eventually(t, 30*time.Second, func() bool {
		st, err := js.Stream(ctx, task.StreamName)
		if err != nil {
			return false
		}
		info, err := st.Info(ctx)
		if err != nil || info.Cluster == nil {
			return false
		}
		leader = info.Cluster.Leader
		return leader != "" && len(info.Cluster.Replicas) == 2
	}, "the stream has no leader with two replicas")
	return leader
}

// slotMaster returns the address of the master serving key's slot.
func slotMaster(t *testing.T, ctx context.Context, rdb redis.UniversalClient, key string) string {
	t.Helper()
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("not a cluster client: %T", rdb)
	}
	slot, err := cc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
			return s.Nodes[0].Addr
		}
	}
	t.Fatalf("no master serves slot %d", slot)
	return ""
}
