// Command relaybench measures the relay under load: it opens many
// WebSocket clients, sends tasks at a fixed rate and reports frames per
// second delivered, latency from acceptance to receipt (p50, p99), CPU, and
// memory per idle connection.
//
// It needs Redis (REDIS_URL) and a receiver: with -receiver-bin it runs
// that receiver binary as a child process, on a NATS server of its own (a
// child process too) and a key prefix of its own, and posts webhooks to it,
// timing each task from the receiver's 200 (which says the task's stream
// sequence); -receiver posts to a running receiver instead. It runs the
// relay as a child process (itself, in relay mode, so that the relay's
// memory and CPU are measured apart from the load client's); -relay
// connects to a running relay instead.
//
// Absolute figures do not travel between machines, so the same run then
// measures a baseline: a bare broadcast of pre-encoded frames of the
// relay's frame size, at the relay's frame rate, to as many clients, over
// gorilla/websocket alone, with synthetic events at the same rate; and it
// prints the relay's p99 over the baseline's.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/plumbing/taskstream"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// serveEnv marks the child process that runs the relay.
const serveEnv = "HOOKPIPE_RELAYBENCH_SERVE"

// profileEnv, when set, names a file for the child relay's CPU profile.
const profileEnv = "HOOKPIPE_RELAYBENCH_CPUPROFILE"

type options struct {
	clients   int
	rate      int
	duration  time.Duration
	relayURLs []string
	receiver  string
	recvBin   string
	natsURL   string
	redisURL  string
	prefix    string
	settle    time.Duration
	ownerSize int
	// webhookIDs sends every task with a webhook id.
	webhookIDs bool
}

// natsEnv marks the child process that runs NATS, as "port dir".
const natsEnv = "HOOKPIPE_RELAYBENCH_NATS"

func main() {
	if os.Getenv(serveEnv) != "" {
		serveRelay()
		return
	}
	if v := os.Getenv(baselineEnv); v != "" {
		serveBaseline(v)
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
	flag.Func("relay", "base URLs of running relays, separated by spaces or commas, the clients spread evenly over them (default: start one as a child process)", func(v string) error {
		o.relayURLs = strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' })
		return nil
	})
	flag.StringVar(&o.receiver, "receiver", "", "URL of a running receiver's /consumetasks to post webhooks to")
	flag.StringVar(&o.recvBin, "receiver-bin", "", "run this receiver binary as a child process, on the bench's NATS and Redis, and post webhooks to it")
	flag.StringVar(&o.natsURL, "nats-url", "", "NATS to use (default: start an embedded one; env NATS_URL is not read so that a bench never writes to a shared stream by accident)")
	flag.StringVar(&o.redisURL, "redis-url", envOr("REDIS_URL", "redis://127.0.0.1:6379"), "Redis to use (env REDIS_URL)")
	flag.StringVar(&o.prefix, "key-prefix", fmt.Sprintf("bench:%d:", os.Getpid()), "Redis key prefix (a fresh one by default, deleted afterwards)")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "pause before measuring idle memory")
	flag.BoolVar(&exactLatency, "exact-latency", false, "time every event on its own (up to 64 per frame, evenly spread, each standing for its share) instead of charging it the latency of the oldest event its frame accounts for")
	flag.IntVar(&o.ownerSize, "owner-size", 0, "pad owner names to this many bytes, for larger events")
	flag.BoolVar(&o.webhookIDs, "webhook-ids", true, "send every task with a webhook id, which its events then carry (false: none, to measure what ids add to frames)")
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

func run(ctx context.Context, o options) error {
	raiseFileLimit()
	if o.receiver == "" && o.recvBin == "" {
		return fmt.Errorf("give -receiver-bin (a receiver binary to run) or -receiver (a running one's URL)")
	}
	rdb, err := redisconn.New(redisconn.Options{URL: o.redisURL}, redisconn.Tuning{})
	if err != nil {
		return err
	}
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
		// An existing stream, a cluster's with its replicas, keeps its
		// settings.
		if st, err = taskstream.Ensure(ctx, js, task.DefaultStreamSettings(), slog.New(slog.DiscardHandler)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stream: %w", err)
		}
		time.Sleep(100 * time.Millisecond) // polling for NATS to come up
	}

	var recv *exec.Cmd
	if o.recvBin != "" {
		recv, o.receiver, err = startReceiver(ctx, o)
		if err != nil {
			return err
		}
		defer stopChild(recv)
	}
	var child *exec.Cmd
	if len(o.relayURLs) == 0 {
		var u string
		child, u, err = startRelay(ctx, o)
		if err != nil {
			return err
		}
		defer stopChild(child)
		o.relayURLs = []string{u}
	}
	fmt.Printf("relaybench: %d clients, %d tasks/s for %v, through the receiver at %s, relay %s\n", o.clients, o.rate, o.duration, o.receiver, strings.Join(o.relayURLs, " "))

	// Idle connections.
	rss0 := rssOf(child)
	lat := newHistogram()
	var clients []*client
	for i, u := range o.relayURLs {
		share := o.clients / len(o.relayURLs)
		if i < o.clients%len(o.relayURLs) {
			share++
		}
		cs, err := connect(ctx, u, share, false, lat)
		clients = append(clients, cs...)
		if err != nil {
			return err
		}
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
	frames0, bytes0 := relayMetric(o.relayURLs, "frames_sent_total"), relayMetric(o.relayURLs, "bytes_sent_total")
	var from uint64
	if info, err := st.Info(ctx); err == nil {
		from = info.State.LastSeq
	}
	ackTimes = &acks{from: from, at: make([]atomic.Int64, int(float64(o.rate)*o.duration.Seconds()*1.2)+10000)}
	lat.on.Store(true)
	cpu0, self0, recv0, nats0 := cpuOf(child), selfCPU(), cpuOf(recv), cpuOf(natsCmd)
	start := time.Now()
	sent, err := send(ctx, o)
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
	perClient := float64(frames) / elapsed.Seconds() / float64(o.clients)
	fmt.Printf("delivered %d frames, %.0f frames/s, %.1f frames/s per client\n", frames, float64(frames)/elapsed.Seconds(), perClient)
	how := "each charged the latency of the oldest event its frame accounts for, an upper bound"
	if exactLatency {
		how = "each timed on its own"
	}
	relayP50, relayP99 := lat.quantile(0.50), lat.quantile(0.99)
	fmt.Printf("latency from accept to receipt, every event at every client (%s): p50 %v p99 %v max %v (%d samples)\n", how,
		relayP50, relayP99, lat.quantile(1), lat.count())
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
	for _, u := range o.relayURLs {
		if m := scrape(u); m != "" {
			fmt.Printf("relay %s metrics: %s\n", u, m)
		}
	}

	// Every client must end with the stream's last sequence and the counts
	// Redis holds once the fold has reached it.
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	var want task.Counts
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, w, ok, err := redisconn.ReadCounts(ctx, rdb, keys)
		if err == nil && ok && w == last {
			want = c
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the fold did not reach the stream's end (%d) within 15s: %v", last, err)
		}
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
	for _, c := range clients {
		c.conn.Close()
	}
	clients = nil

	// The baseline: the same clients, frame rate and frame size, with
	// events at the same rate, over a bare broadcast.
	size := 200
	if f := relayMetric(o.relayURLs, "frames_sent_total") - frames0; f > 0 {
		size = int((relayMetric(o.relayURLs, "bytes_sent_total") - bytes0) / f)
		// Every client gets every event: bytes per client per second over
		// events per second.
		fmt.Printf("frames: %d bytes on average, %.0f bytes per event, events with webhook ids: %v\n",
			size, float64(size)*perClient/float64(max(o.rate, 1)), o.webhookIDs)
	}
	interval := time.Duration(float64(time.Second) / max(perClient, 1))
	base, baseURL, err := startBaseline(ctx, o.rate, interval, size)
	if err != nil {
		return err
	}
	defer stopChild(base)
	blat := newHistogram()
	bclients, err := connect(ctx, baseURL, o.clients, true, blat)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range bclients {
			c.conn.Close()
		}
	}()
	bcpu0 := cpuOf(base)
	blat.on.Store(true)
	time.Sleep(o.duration) // the baseline makes its own events for as long
	blat.on.Store(false)
	bcpu1 := cpuOf(base)
	blat.merge(bclients)
	bp50, bp99 := blat.quantile(0.50), blat.quantile(0.99)
	fmt.Printf("baseline (bare broadcast of %d-byte frames every %v to %d clients, %d events/s): p50 %v p99 %v (%d samples), %.2f cores\n",
		size, interval.Round(100*time.Microsecond), o.clients, o.rate, bp50, bp99, blat.count(), (bcpu1-bcpu0).Seconds()/o.duration.Seconds())
	if bp99 > 0 {
		fmt.Printf("relay p99 / baseline p99: %.2f (p50: %.2f)\n", float64(relayP99)/float64(bp99), float64(relayP50)/float64(max(bp50, 1)))
	}
	return nil
}

// relayMetric reads one of the relay's metrics, 0 when it has none.
func relayMetric(bases []string, name string) float64 {
	var sum float64
	for _, base := range bases {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			continue
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(b.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "hookpipe_relay_"+name+" "); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				sum += f
			}
		}
	}
	return sum
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
