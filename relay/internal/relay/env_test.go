package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/plumbing/taskstream"
	"github.com/hookpipe/hookpipe/relay/internal/relay"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// env is one test's NATS and Redis, and a real receiver (the binary) that
// takes the tasks the test sends and folds the stream into Redis.
type env struct {
	recv     *testenv.ReceiverProcess
	ns       *server.Server
	natsURL  string
	redisURL string
	prefix   string
	keys     task.Keys
	rdb      *redis.Client
	nc       *nats.Conn
	js       jetstream.JetStream
	next     atomic.Int64
}

func newEnv(t testing.TB) *env {
	t.Helper()
	url, prefix := testenv.Redis(t)
	return newEnvOn(t, url, prefix)
}

// newEnvOn is newEnv on the Redis at redisURL, under prefix.
func newEnvOn(t testing.TB, redisURL, prefix string) *env {
	t.Helper()
	e := &env{ns: testenv.NATS(t)}
	e.natsURL = e.ns.ClientURL()
	e.redisURL, e.prefix = redisURL, prefix
	e.keys = task.Keys{Prefix: e.prefix}
	opt, err := redis.ParseURL(e.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	e.rdb = redis.NewClient(opt)
	t.Cleanup(func() { e.rdb.Close() })
	e.nc, err = nats.Connect(e.natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nc.Close)
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.js.CreateOrUpdateStream(ctx, taskstream.Config(task.DefaultStreamSettings())); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	e.recv = testenv.Receiver(t, e.natsURL, e.redisURL, e.prefix)
	return e
}

// makeTask returns the next test task, with an owner of ownerLen bytes
// (at least a short name).
func (e *env) makeTask(ownerLen int) (task.Task, string) {
	n := e.next.Add(1)
	owner := "owner-" + strconv.FormatInt(n, 10)
	if len(owner) < ownerLen {
		owner += strings.Repeat("x", ownerLen-len(owner))
	}
	t := task.Task{
		BatchID:  "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
		ID:       n,
		Owner:    owner,
		Priority: task.Priorities[n%task.NumPriorities],
	}
	h := fnv.New32a()
	h.Write([]byte(e.prefix))
	return t, fmt.Sprintf("wh-%x-%d", h.Sum32(), n)
}

// publish sends n tasks to the receiver, retrying each until it is
// answered 200; the webhook id makes retries harmless.
func (e *env) publish(t testing.TB, n, ownerLen int) {
	t.Helper()
	for range n {
		tk, id := e.makeTask(ownerLen)
		e.deliver(t, tk, id)
	}
}

var hc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}

func (e *env) deliver(t testing.TB, tk task.Task, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, e.recv.URL, strings.NewReader(string(tk.Encode())))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(task.HeaderID, id)
		res, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %d", res.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliver %s: %v", id, err)
		}
		time.Sleep(20 * time.Millisecond) // backoff between retries, not a wait for a condition
	}
}

// redisCounts returns the counts in Redis once the receiver's fold has
// reached the stream's end.
func (e *env) redisCounts(t testing.TB) task.Counts {
	t.Helper()
	var c task.Counts
	testenv.Eventually(t, 20*time.Second, func() bool {
		var w uint64
		var ok bool
		var err error
		c, w, ok, err = redisconn.ReadCounts(context.Background(), e.rdb, e.keys)
		return err == nil && ok && w == e.streamLast(t)
	}, "the fold did not reach the stream's end")
	return c
}

func (e *env) streamLast(t testing.TB) uint64 {
	t.Helper()
	st, err := e.js.Stream(context.Background(), task.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

func (e *env) config() relay.Config {
	c := relay.DefaultConfig()
	c.Addr = "127.0.0.1:0"
	c.NATS.URL = e.natsURL
	c.Redis.URL = e.redisURL
	c.KeyPrefix = e.prefix
	c.CountsInterval = 200 * time.Millisecond
	c.ShutdownTimeout = 5 * time.Second
	return c
}

type running struct {
	*relay.Server
	cancel  context.CancelFunc
	done    chan error
	stopped atomic.Bool
}

// stop shuts the relay down and waits for Run to return.
func (r *running) stop(t testing.TB) {
	t.Helper()
	if r.stopped.Swap(true) {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("relay run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not stop")
	}
}

// startRelay runs a relay with cfg until the test ends and waits until it
// is ready.
func startRelay(t testing.TB, cfg relay.Config) *running {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := relay.Open(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Server: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	testenv.Eventually(t, 10*time.Second, func() bool { ok, _ := s.Ready(); return ok }, "relay not ready")
	return r
}

// view is what a dashboard holds: the newest sequence and counts, and the
// sequences of the events it was shown, checked as frames arrive.
type view struct {
	mu        sync.Mutex
	seq       uint64
	counts    task.Counts
	events    []uint64
	frames    int
	snapshots int
	capped    int // events the updates said they left out
	unsent    int // frames without the relay's send time
	problems  []string
	lat       []time.Duration
	closeErr  error
	// each frame's sequence and counts, in order
	frameSeqs   []uint64
	frameCounts []task.Counts
}

// apply takes one frame as the dashboard does, noting any gap or
// duplicate: an update's events must follow the held sequence with no
// hole, and end at the frame's sequence.
func (v *view) apply(f task.Frame) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.frames++
	now := time.Now()
	if f.Health != nil {
		v.capped += f.Health.Capped
	}
	if f.Sent.IsZero() {
		v.unsent++
	}
	for _, ev := range f.Events {
		v.lat = append(v.lat, now.Sub(ev.Time))
	}
	v.frameSeqs = append(v.frameSeqs, f.Seq)
	v.frameCounts = append(v.frameCounts, f.Counts)
	if f.Type == task.FrameSnapshot {
		v.snapshots++
		v.events = v.events[:0]
		for _, ev := range f.Events {
			v.events = append(v.events, ev.Seq)
		}
		v.seq, v.counts = f.Seq, f.Counts
		return
	}
	want := v.seq + 1
	for _, ev := range f.Events {
		if ev.Seq != want {
			v.problems = append(v.problems, fmt.Sprintf("update after seq %d: event seq %d, want %d", v.seq, ev.Seq, want))
		}
		want = ev.Seq + 1
		v.events = append(v.events, ev.Seq)
	}
	if f.Seq != want-1 {
		v.problems = append(v.problems, fmt.Sprintf("update seq %d after events up to %d", f.Seq, want-1))
	}
	v.seq, v.counts = f.Seq, f.Counts
}

func (v *view) state() (uint64, task.Counts) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.seq, v.counts
}

func (v *view) check(t testing.TB) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, p := range v.problems {
		t.Error(p)
	}
}

// wsClient is a dashboard over a real WebSocket.
type wsClient struct {
	conn *websocket.Conn
	v    *view
	done chan struct{}
	// first is the first frame received.
	first chan task.Frame
}

func wsURL(r *running, since string) string {
	u := "ws://" + r.Addr() + "/ws"
	if since != "" {
		u += "?since=" + since
	}
	return u
}

// dial connects a client that decodes every frame into the dashboard's
// types and applies it to v (a fresh view when nil).
func dial(t testing.TB, url string, v *view) *wsClient {
	t.Helper()
	return dialWith(t, websocket.DefaultDialer, url, v, nil)
}

// dialWith is dial through d; after applying its n-th frame the client
// calls pause(n) when pause is not nil, to read slowly.
func dialWith(t testing.TB, d *websocket.Dialer, url string, v *view, pause func(n int)) *wsClient {
	t.Helper()
	conn, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	if v == nil {
		v = &view{}
	}
	c := &wsClient{conn: conn, v: v, done: make(chan struct{}), first: make(chan task.Frame, 1)}
	t.Cleanup(func() { conn.Close(); <-c.done })
	go func() {
		defer close(c.done)
		first := true
		for n := 0; ; n++ {
			_, data, err := conn.ReadMessage()
			if err != nil {
				v.mu.Lock()
				v.closeErr = err
				v.mu.Unlock()
				return
			}
			var f task.Frame
			if err := json.Unmarshal(data, &f); err != nil {
				v.mu.Lock()
				v.problems = append(v.problems, fmt.Sprintf("frame does not decode: %v: %.200s", err, data))
				v.mu.Unlock()
				continue
			}
			if first {
				c.first <- f
				first = false
			}
			v.apply(f)
			if pause != nil {
				pause(n)
			}
		}
	}()
	return c
}

// smallReceiveDialer dials with a kernel receive buffer of size bytes, so
// that the relay's side of the socket fills as soon as the client reads
// slowly.
func smallReceiveDialer(size int) *websocket.Dialer {
	return &websocket.Dialer{
		HandshakeTimeout: 5 * time.Second,
		NetDial: (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
			})
			return errors.Join(err, serr)
		}}).Dial,
	}
}

func (c *wsClient) firstFrame(t testing.TB) task.Frame {
	t.Helper()
	select {
	case f := <-c.first:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no first frame")
		return task.Frame{}
	}
}

// waitFor polls until the client's view reaches seq with counts equal to
// Redis.
func (c *wsClient) waitCurrent(t testing.TB, e *env, seq uint64) {
	t.Helper()
	var want task.Counts
	testenv.Eventually(t, 20*time.Second, func() bool {
		want = e.redisCounts(t)
		s, got := c.v.state()
		return s == seq && got == want
	}, "client not current: want seq %d counts %v, have %v", seq, &want, c.v)
}

func (v *view) String() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return fmt.Sprintf("seq %d counts %v after %d frames, connection error %v, problems %v", v.seq, v.counts, v.frames, v.closeErr, v.problems)
}

// closeCode waits for the connection to end and returns its close code
// and reason.
func (c *wsClient) closed(t testing.TB) (int, string) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		t.Fatal("connection not closed")
	}
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if ce, ok := c.v.closeErr.(*websocket.CloseError); ok {
		return ce.Code, ce.Text
	}
	return 0, fmt.Sprint(c.v.closeErr)
}

func httpGet(t testing.TB, url string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func dialer() *websocket.Dialer { return &websocket.Dialer{HandshakeTimeout: 5 * time.Second} }

// dialStalled connects a client that never reads, with a tiny socket
// receive buffer, so that frames pile up at the relay.
func dialStalled(t testing.TB, r *running) *wsClient {
	t.Helper()
	conn, _, err := smallReceiveDialer(1024).Dial(wsURL(r, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	v := &view{}
	c := &wsClient{conn: conn, v: v, done: make(chan struct{}), first: make(chan task.Frame, 1)}
	t.Cleanup(func() { conn.Close() })
	go func() {
		// Stall until the relay has given up on us, then read what is left
		// to find the close frame.
		testenv.Eventually(t, 30*time.Second, func() bool { return r.Stats().SlowCuts > 0 }, "slow client not cut off")
		defer close(c.done)
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				v.mu.Lock()
				v.closeErr = err
				v.mu.Unlock()
				return
			}
		}
	}()
	return c
}

func streamConfig() jetstream.StreamConfig { return taskstream.Config(task.DefaultStreamSettings()) }

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

func redisClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}
