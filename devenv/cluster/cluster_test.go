package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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

// sender posts tasks with webhook ids of their own to the receivers' port,
// each retried until it is answered 200, as a webhook sender would: what it
// counts as acknowledged must all be in the stream and the counts, once.
type sender struct {
	url   string
	hc    *http.Client
	next  atomic.Int64
	acked [task.NumPriorities]atomic.Int64
	tries atomic.Int64 // attempts that were not answered 200
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startSender(url string, workers int, every time.Duration) *sender {
	s := &sender{url: url, stop: make(chan struct{}),
		hc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}}
	for range workers {
		s.wg.Go(func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-s.stop:
					return
				case <-tick.C:
				}
				s.send(s.next.Add(1))
			}
		})
	}
	return s
}

const clusterBatch = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"

// send delivers task n, retrying with a short pause until it is answered
// 200; a 200 is the acknowledgement that must never be lost.
func (s *sender) send(n int64) {
	tk := task.Task{BatchID: clusterBatch, ID: n, Owner: "Owner " + strconv.FormatInt(n, 10), Priority: task.Priorities[n%task.NumPriorities]}
	body := tk.Encode()
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(task.HeaderID, "cluster-"+strconv.FormatInt(n, 10))
		res, err := s.hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				s.acked[tk.Priority.Index()].Add(1)
				return
			}
		}
		s.tries.Add(1)
		time.Sleep(min(time.Duration(attempt+1)*50*time.Millisecond, time.Second)) // a sender's backoff
	}
}

func (s *sender) close() task.Counts {
	close(s.stop)
	s.wg.Wait()
	var c task.Counts
	for i := range c {
		c[i] = s.acked[i].Load()
	}
	return c
}

// wsClient is a dashboard without a browser: it follows the relays in
// turn, resuming with ?since= when its relay goes away, and checks that
// the events it gets follow each other with no gap and no repeat.
type wsClient struct {
	relays []string
	mu     sync.Mutex
	seq    uint64
	counts task.Counts
	bad    []string
	moves  int
	stop   chan struct{}
	done   chan struct{}
}

func startWSClient(relays []string, first int) *wsClient {
	c := &wsClient{relays: relays, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run(first)
	return c
}

func (c *wsClient) run(at int) {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		c.mu.Lock()
		since := c.seq
		c.mu.Unlock()
		u := strings.Replace(c.relays[at], "http://", "ws://", 1) + "/ws"
		if since > 0 {
			u += "?since=" + strconv.FormatUint(since, 10)
		}
		conn, _, err := websocket.DefaultDialer.Dial(u, nil)
		if err == nil {
			c.read(conn)
		}
		at = (at + 1) % len(c.relays)
		c.mu.Lock()
		c.moves++
		c.mu.Unlock()
		select {
		case <-c.stop:
			return
		case <-time.After(200 * time.Millisecond): // a reconnect delay
		}
	}
}

func (c *wsClient) read(conn *websocket.Conn) {
	defer conn.Close()
	go func() { <-c.stop; conn.Close() }()
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var f task.Frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.mu.Lock()
			c.bad = append(c.bad, "bad frame: "+err.Error())
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		switch f.Type {
		case task.FrameSnapshot:
			if f.Seq < c.seq {
				c.bad = append(c.bad, fmt.Sprintf("snapshot at %d after %d", f.Seq, c.seq))
			}
		case task.FrameUpdate:
			want := c.seq + 1
			for _, e := range f.Events {
				if e.Seq != want {
					c.bad = append(c.bad, fmt.Sprintf("event %d after %d", e.Seq, want-1))
				}
				want = e.Seq + 1
			}
			if f.Seq < c.seq {
				c.bad = append(c.bad, fmt.Sprintf("update at %d after %d", f.Seq, c.seq))
			}
		}
		c.seq, c.counts = max(c.seq, f.Seq), f.Counts
		c.mu.Unlock()
	}
}

func (c *wsClient) state() (uint64, task.Counts, []string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq, c.counts, append([]string(nil), c.bad...), c.moves
}

// TestNodeLossUnderLoad runs the cluster under a steady load of webhooks
// and kills, one after the other, the NATS node leading the stream, the
// Redis master holding the fold's keys, a receiver and a relay, each with
// SIGKILL, and brings each back. Every task that was answered 200 is in
// the stream once and counted once, and the WebSocket clients, moved from
// the killed relay to the other, saw every event once, in order.
func TestNodeLossUnderLoad(t *testing.T) {
	bin := binDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var log bytes.Buffer
	var logMu sync.Mutex
	out := writerFunc(func(p []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return log.Write(p) })
	c, err := Start(ctx, Options{BinDir: bin, DataDir: t.TempDir(), NoDashboard: true,
		ReceiverPort: -1, RelayPorts: [2]int{-1, -1}, DashboardPort: -1, ProducerPort: -1, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Cleanup(func() {
		if t.Failed() {
			logMu.Lock()
			defer logMu.Unlock()
			dir := os.Getenv("HOOKPIPE_ARTIFACTS_DIR")
			if dir == "" {
				dir = os.TempDir()
			}
			path := filepath.Join(dir, "cluster-test.log")
			if os.WriteFile(path, log.Bytes(), 0o644) == nil {
				t.Logf("the cluster's whole log: %s", path)
			}
			lines := strings.Split(log.String(), "\n")
			t.Logf("last lines of the cluster's log:\n%s", strings.Join(lines[max(len(lines)-80, 0):], "\n"))
		}
	})
	t.Log(c.Describe())

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
	load := startSender(c.ReceiverURL, 8, 20*time.Millisecond) // about 400 a second
	acked := func() int64 {
		var n int64
		for i := range load.acked {
			n += load.acked[i].Load()
		}
		return n
	}
	// progress waits until n more tasks are acknowledged: the pipeline
	// goes on through the loss.
	progress := func(what string, n int64) {
		t.Helper()
		from := acked()
		testenv.Eventually(t, 90*time.Second, func() bool { return acked() >= from+n }, "no progress %s (%d acknowledged)", what, acked())
	}
	progress("before any loss", 500)

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
	t.Logf("killing %s, the stream's leader", node.Name)
	node.Kill()
	progress("after the stream leader died", 500)
	if err := c.Restart(ctx, node); err != nil {
		t.Fatal(err)
	}

	// The Redis master of the fold's keys.
	master := slotMaster(t, ctx, rdb, keys.Counts())
	for _, n := range c.Redis {
		if n.Addr == master {
			node = n
		}
	}
	t.Logf("killing %s, the master of %s", node.Name, keys.Counts())
	node.Kill()
	progress("after the fold's Redis master died", 500)
	if err := c.Restart(ctx, node); err != nil {
		t.Fatal(err)
	}

	// A receiver: the other one on the port takes the retries.
	t.Logf("killing %s", c.Receivers[0].Name)
	c.Receivers[0].Kill()
	progress("after a receiver died", 500)
	if err := c.Restart(ctx, c.Receivers[0]); err != nil {
		t.Fatal(err)
	}

	// A relay: its clients move to the other and resume.
	t.Logf("killing %s", c.Relays[0].Name)
	c.Relays[0].Kill()
	progress("after a relay died", 300)
	if err := c.Restart(ctx, c.Relays[0]); err != nil {
		t.Fatal(err)
	}
	progress("with every node back", 300)

	want := load.close()
	t.Logf("acknowledged %d tasks (%v); %d attempts were retried", want.Total(), want, load.tries.Load())

	// Nothing acknowledged is lost, nothing counted twice: the stream holds
	// each task once, and the fold counted exactly those.
	var last uint64
	testenv.Eventually(t, 120*time.Second, func() bool {
		st, err := js.Stream(ctx, task.StreamName)
		if err != nil {
			return false
		}
		info, err := st.Info(ctx)
		if err != nil {
			return false
		}
		last = info.State.LastSeq
		got, w, ok, err := redisconn.ReadCounts(ctx, rdb, keys)
		return err == nil && ok && w == last && info.State.Msgs == uint64(want.Total()) && got == want
	}, "stream and counts do not match what was acknowledged (%v)", want)

	// Every client ends at the stream's end with the exact counts, having
	// seen every event once and in order.
	moved := 0
	for i, w := range clients {
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			seq, counts, _, _ := w.state()
			if seq == last && counts == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("client %d does not reach the stream's end within 60s: at %d with %v, want %d with %v", i, seq, counts, last, want)
			}
		}
		_, _, bad, moves := w.state()
		if len(bad) > 0 {
			t.Errorf("client %d: %v", i, bad[:min(len(bad), 5)])
		}
		if moves > 0 {
			moved++
		}
	}
	if moved < len(clients)/2 {
		t.Errorf("%d of %d clients moved relays, want at least those of the killed one", moved, len(clients))
	}
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
