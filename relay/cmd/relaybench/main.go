// Command relaybench measures the relay under load: it opens many
// WebSocket clients, sends tasks at a fixed rate and reports frames per
// second delivered, latency from acceptance to receipt (p50, p99), CPU, and
// memory per idle connection.
//
// By default it needs nothing running but Redis (REDIS_URL): it starts an
// embedded NATS server, runs the relay as a child process (itself, in relay
// mode, so that the relay's memory and CPU are measured apart from the load
// client's), writes tasks as the receiver does (count in Redis, publish to
// the stream with the webhook id) and cleans up its keys afterwards. With
// -receiver-bin it runs that receiver binary as a child process too and
// posts webhooks to it, timing each task from the receiver's 200 (which
// says the task's stream sequence); -receiver posts to a running receiver
// instead, and -relay connects to a running relay.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookpipe/hookpipe/plumbing/taskstream"
	"github.com/hookpipe/hookpipe/relay/internal/relay"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// serveEnv marks the child process that runs the relay.
const serveEnv = "HOOKPIPE_RELAYBENCH_SERVE"

// profileEnv, when set, names a file for the child relay's CPU profile.
const profileEnv = "HOOKPIPE_RELAYBENCH_CPUPROFILE"

type options struct {
	clients   int
	rate      int
	duration  time.Duration
	relayURL  string
	receiver  string
	recvBin   string
	natsURL   string
	redisURL  string
	prefix    string
	settle    time.Duration
	ownerSize int
}

// natsEnv marks the child process that runs NATS, as "port dir".
const natsEnv = "HOOKPIPE_RELAYBENCH_NATS"

func main() {
	if os.Getenv(serveEnv) != "" {
		serveRelay()
		return
	}
	if v := os.Getenv(natsEnv); v != "" {
		serveNATS(v)
		return
	}
	var o options
	flag.IntVar(&o.clients, "clients", 1000, "WebSocket clients to open")
	flag.IntVar(&o.rate, "rate", 2000, "tasks sent per second")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send")
	flag.StringVar(&o.relayURL, "relay", "", "base URL of a running relay (default: start one as a child process)")
	flag.StringVar(&o.receiver, "receiver", "", "URL of a running receiver's /consumetasks to post webhooks to (default: write to Redis and the stream as the receiver does)")
	flag.StringVar(&o.recvBin, "receiver-bin", "", "run this receiver binary as a child process, on the bench's NATS and Redis, and post webhooks to it")
	flag.StringVar(&o.natsURL, "nats-url", "", "NATS to use (default: start an embedded one; env NATS_URL is not read so that a bench never writes to a shared stream by accident)")
	flag.StringVar(&o.redisURL, "redis-url", envOr("REDIS_URL", "redis://127.0.0.1:6379"), "Redis to use (env REDIS_URL)")
	flag.StringVar(&o.prefix, "key-prefix", fmt.Sprintf("bench:%d:", os.Getpid()), "Redis key prefix (a fresh one by default, deleted afterwards)")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "pause before measuring idle memory")
	flag.BoolVar(&exactLatency, "exact-latency", false, "time every event on its own (up to 64 per frame, evenly spread, each standing for its share) instead of charging it the latency of the oldest event its frame accounts for")
	flag.IntVar(&o.ownerSize, "owner-size", 0, "pad owner names to this many bytes, for larger events")
	cpuprofile := flag.String("cpuprofile", "", "write the load client's own CPU profile to this file (the relay's: env "+profileEnv+")")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "relaybench:", err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "relaybench:", err)
			os.Exit(2)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "relaybench:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// serveRelay runs the relay with its usual configuration from the
// environment, as the child process.
func serveRelay() {
	cfg, err := relay.ParseConfig(nil, os.Getenv, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	raiseFileLimit()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGUSR1 collects garbage and returns it to the OS, so that the
	// bench reads the memory the relay holds rather than what it has not
	// collected yet.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			debug.FreeOSMemory()
		}
	}()
	s, err := relay.Open(cfg, cfg.Log.New(os.Stderr))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if path := os.Getenv(profileEnv); path != "" {
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// serveNATS runs a nats-server with JetStream, as the child process: in a
// process of its own it competes fairly for the CPU with the thousands of
// client goroutines of the load client.
func serveNATS(spec string) {
	port, dir, _ := strings.Cut(spec, " ")
	p, err := strconv.Atoi(port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad", natsEnv, spec)
		os.Exit(2)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: p, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "nats not ready")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	ns.Shutdown()
}

// startChild runs this program again with env added, dying with its parent.
func startChild(env ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, cmd.Start()
}

func stopChild(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// raiseFileLimit lifts the soft limit of open files to the hard one: each
// client is a file descriptor.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func run(ctx context.Context, o options) error {
	raiseFileLimit()
	ropt, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return fmt.Errorf("redis url: %w", err)
	}
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", o.redisURL, err)
	}
	keys := task.Keys{Prefix: o.prefix}
	defer cleanKeys(rdb, o.prefix)

	var natsCmd *exec.Cmd
	if o.natsURL == "" {
		dir, err := os.MkdirTemp("", "relaybench-nats")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		port, err := freePort()
		if err != nil {
			return err
		}
		natsCmd, err = startChild(natsEnv + "=" + strconv.Itoa(port) + " " + dir)
		if err != nil {
			return fmt.Errorf("start nats: %w", err)
		}
		defer stopChild(natsCmd)
		o.natsURL = "nats://127.0.0.1:" + strconv.Itoa(port)
	}
	nc, err := nats.Connect(o.natsURL, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	var st jetstream.Stream
	for deadline := time.Now().Add(20 * time.Second); ; {
		if st, err = js.CreateOrUpdateStream(ctx, taskstream.Config(task.DefaultStreamSettings())); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stream: %w", err)
		}
		time.Sleep(100 * time.Millisecond) // polling for NATS to come up
	}

	var child *exec.Cmd
	if o.relayURL == "" {
		child, o.relayURL, err = startRelay(ctx, o)
		if err != nil {
			return err
		}
		defer stopChild(child)
	}
	var recv *exec.Cmd
	if o.recvBin != "" {
		recv, o.receiver, err = startReceiver(ctx, o)
		if err != nil {
			return err
		}
		defer stopChild(recv)
	}
	via := "writing as the receiver does"
	if o.receiver != "" {
		via = "through the receiver at " + o.receiver
	}
	fmt.Printf("relaybench: %d clients, %d tasks/s for %v, %s, relay %s\n", o.clients, o.rate, o.duration, via, o.relayURL)

	// Idle connections.
	rss0 := rssOf(child)
	lat := newHistogram()
	clients, err := connect(ctx, o, lat)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range clients {
			c.conn.Close()
		}
	}()
	time.Sleep(o.settle) // let the relay's memory settle before reading it, a pause not a condition
	rss1 := rssOf(child)
	if child != nil {
		fmt.Printf("idle: relay RSS after GC %.1f MiB -> %.1f MiB, %.1f KiB per connection\n",
			mib(rss0), mib(rss1), float64(rss1-rss0)/1024/float64(o.clients))
	}

	// Traffic.
	for _, c := range clients {
		c.frames.Store(0)
	}
	ackTimes = &acks{at: make([]atomic.Int64, int(float64(o.rate)*o.duration.Seconds()*1.2)+10000)}
	lat.on.Store(true)
	cpu0, self0, recv0, nats0 := cpuOf(child), selfCPU(), cpuOf(recv), cpuOf(natsCmd)
	start := time.Now()
	sent, err := send(ctx, o, rdb, keys, js)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	cpu1, self1, recv1, nats1 := cpuOf(child), selfCPU(), cpuOf(recv), cpuOf(natsCmd)
	var frames int64
	for _, c := range clients {
		frames += c.frames.Load()
	}
	time.Sleep(500 * time.Millisecond) // the last frames in flight, a pause not a condition
	lat.on.Store(false)
	lat.merge(clients)
	fmt.Printf("sent %d tasks in %v (%.0f/s)\n", sent, elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds())
	fmt.Printf("delivered %d frames, %.0f frames/s, %.1f frames/s per client\n",
		frames, float64(frames)/elapsed.Seconds(), float64(frames)/elapsed.Seconds()/float64(o.clients))
	how := "each charged the latency of the oldest event its frame accounts for, an upper bound"
	if exactLatency {
		how = "each timed on its own"
	}
	fmt.Printf("latency from accept to receipt, every event at every client (%s): p50 %v p99 %v max %v (%d samples)\n", how,
		lat.quantile(0.50), lat.quantile(0.99), lat.quantile(1), lat.count())
	if child != nil {
		cores := func(d time.Duration) float64 { return d.Seconds() / elapsed.Seconds() }
		fmt.Printf("cpu: relay %.2f cores (%.1f µs/s per client), load client (clients, senders) %.2f cores",
			cores(cpu1-cpu0), cores(cpu1-cpu0)/float64(o.clients)*1e6, cores(self1-self0))
		if natsCmd != nil {
			fmt.Printf(", NATS %.2f cores", cores(nats1-nats0))
		}
		if recv != nil {
			fmt.Printf(", receiver %.2f cores", cores(recv1-recv0))
		}
		fmt.Printf("\nrelay RSS after load %.1f MiB\n", mib(rssOf(child)))
	}

	if m := scrape(o.relayURL); m != "" {
		fmt.Printf("relay metrics: %s\n", m)
	}

	// Every client must end with the stream's last sequence and Redis's
	// counts.
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	want, err := readCounts(ctx, rdb, keys)
	if err != nil {
		return err
	}
	t0 := time.Now()
	deadline := t0.Add(15 * time.Second)
	for {
		current := 0
		for _, c := range clients {
			if c.current(last, want) {
				current++
			}
		}
		if current == len(clients) {
			fmt.Printf("all %d clients current (seq %d, counts %s) %v after the last task\n",
				current, last, string(want.AppendJSON(nil)), time.Since(t0).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d clients current 15s after the last task", current, len(clients))
		}
		time.Sleep(50 * time.Millisecond) // polling for the clients to converge
	}
	return nil
}

// scrape returns the relay's metrics that explain a run.
func scrape(base string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	var out []string
	for _, line := range strings.Split(b.String(), "\n") {
		for _, name := range []string{"interval_seconds", "frames_built_total", "slow_disconnects_total", "stream_lag", "fanout_seconds_sum", "fanout_seconds_count"} {
			if strings.HasPrefix(line, "hookpipe_relay_"+name+" ") {
				out = append(out, strings.TrimPrefix(line, "hookpipe_relay_"))
			}
		}
	}
	return strings.Join(out, ", ")
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func startRelay(ctx context.Context, o options) (*exec.Cmd, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd, err := startChild(
		serveEnv+"=1",
		"NATS_URL="+o.natsURL,
		"REDIS_URL="+o.redisURL,
		"HOOKPIPE_KEY_PREFIX="+o.prefix,
		"HOOKPIPE_RELAY_ADDR="+addr,
		"HOOKPIPE_RELAY_MAX_CONNS="+strconv.Itoa(o.clients+100),
		"HOOKPIPE_LOG_LEVEL=warn",
	)
	if err != nil {
		return nil, "", fmt.Errorf("start relay: %w", err)
	}
	base := "http://" + addr
	if err := waitReady(ctx, cmd, base, "relay"); err != nil {
		return nil, "", err
	}
	return cmd, base, nil
}

// client is one load-client connection. It reads frames, keeps the newest,
// and times the oldest event of each from the stream's timestamp without
// decoding the whole frame.
type client struct {
	conn   *websocket.Conn
	frames atomic.Int64
	mu     sync.Mutex
	seq    uint64 // newest sequence the client has; under mu
	last   []byte
	err    error
	hist   []uint32 // latencies of this client's events, by bucketOf; under mu
}

var seqKey = []byte(`"seq":`)

// acks holds, per stream sequence, when the task was accepted (the stream
// acknowledged it): the moment the receiver answers 200.
type acks struct{ at []atomic.Int64 }

func (a *acks) set(seq uint64, t time.Time) {
	if seq < uint64(len(a.at)) {
		a.at[seq].Store(t.UnixNano())
	}
}

func (a *acks) get(seq uint64) int64 {
	if seq < uint64(len(a.at)) {
		return a.at[seq].Load()
	}
	return 0
}

var ackTimes *acks

func (c *client) read(lat *histogram, first chan<- error) {
	// Two buffers, swapped with c.last, so that keeping the newest frame
	// costs no copy: the load client should cost little.
	var spare []byte
	for {
		buf := bytes.NewBuffer(spare[:0])
		_, r, err := c.conn.NextReader()
		if err == nil {
			_, err = buf.ReadFrom(r)
		}
		data := buf.Bytes()
		if first != nil {
			first <- err
			first = nil
		}
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		now := time.Now()
		c.frames.Add(1)
		c.mu.Lock()
		c.record(data, now, lat.on.Load())
		c.last, spare = data, c.last
		c.mu.Unlock()
	}
}

// record notes the latency of every event in frame data, from the time
// its task was accepted: when the stream acknowledged it to the bench, or
// when the receiver answered 200 with its sequence.
//
// A frame accounts for every event after the client's previous frame up to
// its own seq, whether it carries the event or only counts it
// (--max-update-events): that is when the client has the event.
func (c *client) record(data []byte, now time.Time, on bool) {
	last, ok := seqAfter(data, 0)
	if !ok {
		return
	}
	prev := c.seq
	c.seq = max(c.seq, last)
	if !on || prev == 0 {
		return // off, or the client's first frame: where it starts from
	}
	first := prev + 1
	if first > last {
		return // no events
	}
	if !exactLatency {
		// Every event is charged the latency of the oldest: an upper
		// bound that costs one lookup per frame.
		c.addN(sinceAck(first, now), uint32(last-first+1))
		return
	}
	// Up to maxTimed events spread evenly over the range, each standing
	// for its share of it: exact for the usual frame, and a fair sample of
	// a wide one at a bounded cost per frame.
	n := last - first + 1
	k := min(n, maxTimed)
	b := -1
	for j := range k {
		lo, hi := first+n*j/k, first+n*(j+1)/k
		b = bucketNear(sinceAck(lo, now), b)
		c.addBucket(b, uint32(hi-lo))
	}
}

// exactLatency charges each event its own latency, at a cost per event
// in the load client.
var exactLatency bool

// maxTimed is the most events of one frame timed one by one.
const maxTimed = 64

// sinceAck returns how long ago the event of sequence seq was accepted; 0
// when it arrived before the publisher saw its acknowledgement.
func sinceAck(seq uint64, now time.Time) time.Duration {
	if at := ackTimes.get(seq); at != 0 {
		return time.Duration(now.UnixNano() - at)
	}
	return 0
}

func (c *client) addN(d time.Duration, n uint32) { c.addBucket(bucketOf(d), n) }

func (c *client) addBucket(b int, n uint32) {
	if c.hist == nil {
		c.hist = make([]uint32, numBuckets)
	}
	c.hist[b] += n
}

// seqAfter parses the first "seq": number in data from offset from.
func seqAfter(data []byte, from int) (uint64, bool) {
	i := bytes.Index(data[from:], seqKey)
	if i < 0 {
		return 0, false
	}
	rest := data[from+i+len(seqKey):]
	j := bytes.IndexAny(rest, ",}")
	if j < 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(rest[:j]), 10, 64)
	return n, err == nil
}

// current reports whether the client's newest frame is at seq with counts.
func (c *client) current(seq uint64, counts task.Counts) bool {
	c.mu.Lock()
	defer c.mu.Unlock() // the reader reuses the bytes of older frames
	data := c.last
	i := bytes.Index(data, seqKey)
	if i < 0 {
		return false
	}
	rest := data[i+len(seqKey):]
	j := bytes.IndexByte(rest, ',')
	if j < 0 {
		return false
	}
	if n, err := strconv.ParseUint(string(rest[:j]), 10, 64); err != nil || n != seq {
		return false
	}
	var f task.Frame
	return json.Unmarshal(data, &f) == nil && f.Counts == counts
}

func connect(ctx context.Context, o options, lat *histogram) ([]*client, error) {
	wsURL := "ws" + strings.TrimPrefix(o.relayURL, "http") + "/ws"
	clients := make([]*client, o.clients)
	d := &websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 32 << 10, WriteBufferSize: 256}
	t0 := time.Now()
	sem := make(chan struct{}, 64)
	errs := make(chan error, o.clients)
	var wg sync.WaitGroup
	for i := range clients {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conn, _, err := d.DialContext(ctx, wsURL, nil)
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			c := &client{conn: conn}
			clients[i] = c
			first := make(chan error, 1)
			go c.read(lat, first)
			if err := <-first; err != nil {
				errs <- fmt.Errorf("client %d first frame: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	fmt.Printf("connected %d clients in %v, each with its snapshot\n", o.clients, time.Since(t0).Round(time.Millisecond))
	return clients, nil
}

// send writes tasks at the fixed rate for the duration, spread over a few
// senders that each keep their own schedule.
func send(ctx context.Context, o options, rdb *redis.Client, keys task.Keys, js jetstream.JetStream) (int64, error) {
	senders := max(8, o.rate/10) // each sends 10 a second: a slow answer holds back few tasks
	var sent atomic.Int64
	var firstErr atomic.Value
	per := time.Duration(float64(time.Second) * float64(senders) / float64(o.rate))
	end := time.Now().Add(o.duration)
	// One kept-alive connection per sender, as senders of webhooks keep.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			next := time.Now().Add(time.Duration(s) * per / time.Duration(senders))
			for n := 0; ; n++ {
				if d := time.Until(next); d > 0 {
					time.Sleep(d) // pacing to the fixed rate
				}
				if time.Now().After(end) || ctx.Err() != nil {
					return
				}
				next = next.Add(per)
				id := int64(n*senders + s)
				t := task.Task{
					BatchID:  "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
					ID:       id,
					Owner:    padOwner("bench-"+strconv.FormatInt(id, 10), o.ownerSize),
					Priority: task.Priorities[id%task.NumPriorities],
				}
				webhookID := fmt.Sprintf("bench-%d-%d", os.Getpid(), id)
				var err error
				if o.receiver != "" {
					err = postWebhook(ctx, hc, o.receiver, webhookID, t)
				} else {
					err = deliver(ctx, rdb, keys, js, webhookID, t)
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return sent.Load(), fmt.Errorf("send: %w", err)
	}
	return sent.Load(), nil
}

func padOwner(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return s + strings.Repeat("x", n-len(s))
}

// deliver does what the receiver does for one accepted webhook: count it
// in Redis, then publish it to the stream with its id for deduplication,
// retrying the publish (harmless thanks to the id) as a sender would.
func deliver(ctx context.Context, rdb *redis.Client, keys task.Keys, js jetstream.JetStream, id string, t task.Task) error {
	if err := rdb.HIncrBy(ctx, keys.Counts(), t.Priority.String(), 1).Err(); err != nil {
		return fmt.Errorf("count %s: %w", id, err)
	}
	var err error
	for range 10 {
		var ack *jetstream.PubAck
		ack, err = js.Publish(ctx, t.Priority.Subject(), t.Encode(), jetstream.WithMsgID(id))
		if err == nil {
			if ackTimes != nil {
				ackTimes.set(ack.Sequence, time.Now())
			}
			return nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("publish %s: %w", id, err)
}

func postWebhook(ctx context.Context, hc *http.Client, url, id string, t task.Task) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(t.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(task.HeaderID, id)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", id, err)
	}
	var answer struct {
		Seq uint64 `json:"seq"`
	}
	err = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("post %s: status %d", id, resp.StatusCode)
	}
	// The receiver's 200 says the task's stream sequence: the task is
	// timed from here, as a task the bench publishes itself is from its
	// acknowledgement.
	if err == nil && answer.Seq > 0 && ackTimes != nil {
		ackTimes.set(answer.Seq, time.Now())
	}
	return nil
}

// startReceiver runs the receiver binary o.recvBin on the bench's NATS and
// Redis and returns it with the URL to post webhooks to, once it is ready.
func startReceiver(ctx context.Context, o options) (*exec.Cmd, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(o.recvBin)
	cmd.Env = append(os.Environ(),
		"NATS_URL="+o.natsURL,
		"REDIS_URL="+o.redisURL,
		"HOOKPIPE_KEY_PREFIX="+o.prefix,
		"HOOKPIPE_RECEIVER_ADDR="+addr,
		"HOOKPIPE_LOG_LEVEL=warn",
	)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start receiver %s: %w", o.recvBin, err)
	}
	base := "http://" + addr
	if err := waitReady(ctx, cmd, base, "receiver"); err != nil {
		return nil, "", err
	}
	return cmd, base + "/consumetasks", nil
}

// waitReady waits for the child cmd serving at base to answer /readyz
// with 200, and stops it when it does not within 20 seconds.
func waitReady(ctx context.Context, cmd *exec.Cmd, base, name string) error {
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stopChild(cmd)
			return fmt.Errorf("%s did not become ready", name)
		}
		time.Sleep(50 * time.Millisecond) // polling for readiness
	}
}

func readCounts(ctx context.Context, rdb *redis.Client, keys task.Keys) (task.Counts, error) {
	var c task.Counts
	m, err := rdb.HGetAll(ctx, keys.Counts()).Result()
	if err != nil {
		return c, err
	}
	for k, v := range m {
		if p, err := task.ParsePriority(k); err == nil {
			c[p.Index()], _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return c, nil
}

func cleanKeys(rdb *redis.Client, prefix string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}

// histogram merges the clients' latency counts. Buckets grow by 5% from
// 10 µs, so quantiles are exact to 5% and each client's counts stay small.
type histogram struct {
	on      atomic.Bool
	buckets []int64
	n       int64
}

const (
	bucketBase   = 10 * time.Microsecond
	bucketGrowth = 1.05
	numBuckets   = 360 // up to about 10 minutes
)

// bucketTops holds the upper bound of every bucket, for bucketOf.
var bucketTops = func() []time.Duration {
	tops := make([]time.Duration, numBuckets)
	for i := range tops {
		tops[i] = bucketTop(i)
	}
	return tops
}()

// bucketOf returns the bucket of latency d: the first whose upper bound is
// at least d. A binary search rather than a logarithm, since the load
// client does this for every event it times.
func bucketOf(d time.Duration) int {
	i, _ := slices.BinarySearch(bucketTops, d)
	return min(i, numBuckets-1)
}

// bucketNear returns bucketOf(d), walking from bucket from (-1 for
// none): the events of one frame have latencies close to each other, so
// this takes a step or two where the search takes nine.
func bucketNear(d time.Duration, from int) int {
	if from < 0 {
		return bucketOf(d)
	}
	i := from
	for i < numBuckets-1 && d > bucketTops[i] {
		i++
	}
	for i > 0 && d <= bucketTops[i-1] {
		i--
	}
	return i
}

// bucketTop returns the upper bound of bucket i.
func bucketTop(i int) time.Duration {
	return time.Duration(float64(bucketBase) * math.Pow(bucketGrowth, float64(i)))
}

func newHistogram() *histogram { return &histogram{} }

func (h *histogram) merge(clients []*client) {
	h.buckets = make([]int64, numBuckets)
	h.n = 0
	for _, c := range clients {
		c.mu.Lock()
		for i, v := range c.hist {
			h.buckets[i] += int64(v)
			h.n += int64(v)
		}
		c.mu.Unlock()
	}
}

func (h *histogram) count() int64 { return h.n }

// quantile returns the upper bound of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := min(int64(q*float64(h.n)), h.n-1)
	var seen int64
	i := 0
	for i = range h.buckets {
		seen += h.buckets[i]
		if seen > rank {
			break
		}
	}
	return bucketTop(i).Round(10 * time.Microsecond)
}

// rssOf returns the resident memory of the child after a garbage
// collection, in bytes; 0 without one.
func rssOf(cmd *exec.Cmd) int64 {
	if cmd == nil {
		return 0
	}
	cmd.Process.Signal(syscall.SIGUSR1)
	time.Sleep(time.Second) // time for the collection, a pause not a condition
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuOf returns the CPU time the child used so far.
func cpuOf(cmd *exec.Cmd) time.Duration {
	if cmd == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
