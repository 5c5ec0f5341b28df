// Package cluster starts hookpipe as it runs beyond one machine, on one
// machine: a NATS cluster of three nodes with JetStream, each its own
// nats-server process; a Redis Cluster of three masters with a replica
// each, redis-server processes with a low cluster-node-timeout; two
// receivers sharing one port (SO_REUSEPORT); two relays; the dashboard,
// given both relays; and the producer's page. `make run-cluster` runs it,
// and the cluster tests kill its nodes under load.
//
// Everything listens on 127.0.0.1, and the servers take no credentials:
// it is a development topology, not a deployment.
package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hookpipe/hookpipe/devenv/proc"
	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

// Options configures a Cluster. Zero fields take the defaults given.
type Options struct {
	// BinDir holds the hookpipe binaries and nats-server; default "bin".
	BinDir string
	// DataDir holds every server's files; default ".data/cluster".
	DataDir string
	// WebDir is the dashboard's folder of static files; default
	// "dashboard/web".
	WebDir string
	// ReceiverPort, the port both receivers share; RelayPorts; the
	// dashboard's and the producer's: 0 takes 5001, 5002 and 5003, 8080
	// and 5000, -1 a free port. The NATS and Redis nodes always take free
	// ports, so that they never meet a server already running.
	ReceiverPort  int
	RelayPorts    [2]int
	DashboardPort int
	ProducerPort  int
	// NoDashboard leaves out the dashboard and the producer, as the
	// cluster tests do.
	NoDashboard bool
	// Single runs one NATS node and one Redis server (no cluster, no
	// replica, the stream on one replica) under the same receivers and
	// relays: the baseline that make bench-cluster measures the cluster
	// against.
	Single bool
	// FixedPorts puts the NATS nodes on 4231-4233 (routes 6231-6233,
	// monitoring 8231-8233) and the Redis nodes on 7001-7006, so that a
	// cluster started again finds its data; otherwise every node takes a
	// free port.
	FixedPorts bool
	// NodeTimeout is Redis's cluster-node-timeout: how long a master may
	// be unreachable before its replica takes over; default 2s.
	NodeTimeout time.Duration
	// Out receives every process's log lines, prefixed; default stderr.
	Out io.Writer
	// Log receives the cluster's own lines; default text to Out.
	Log *slog.Logger
}

// Node is one process of the cluster.
type Node struct {
	// Name says what it is: nats-1, redis-7001, receiver-1, relay-2, ...
	Name string
	// Addr is host:port of its main listener; Health the URL that says it
	// is ready, when it has one.
	Addr, Health string

	bin  string
	args []string
	env  []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Cluster is a running topology.
type Cluster struct {
	opts Options
	log  *slog.Logger

	NATS, Redis, Receivers, Relays []*Node
	Others                         []*Node // the dashboard and the producer
	// NATSURL lists every NATS node; RedisURL is the Redis Cluster in
	// go-redis's form, with every node as a seed.
	NATSURL, RedisURL string
	// ReceiverURL is where webhooks go; RelayURLs the relays' base URLs.
	ReceiverURL                string
	RelayURLs                  []string
	DashboardURL, ProducerURL  string
	closeOnce                  sync.Once
	natsRoutes, natsClusterURL []string
}

const host = task.LoopbackHost

func (o *Options) setDefaults() {
	if o.BinDir == "" {
		o.BinDir = "bin"
	}
	if o.DataDir == "" {
		o.DataDir = filepath.Join(".data", "cluster")
	}
	if o.WebDir == "" {
		o.WebDir = filepath.Join("dashboard", "web")
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = 2 * time.Second
	}
	if o.Out == nil {
		o.Out = os.Stderr
	}
	def := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	def(&o.ReceiverPort, task.ReceiverPort)
	def(&o.RelayPorts[0], task.RelayPort)
	def(&o.RelayPorts[1], task.RelayPort+1)
	def(&o.DashboardPort, task.DashboardPort)
	def(&o.ProducerPort, task.ProducerPort)
}

// Start brings the topology up and returns once every process is ready.
// A missing redis-server or nats-server is an error that says how to get
// it. Close stops everything.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	opts.setDefaults()
	c := &Cluster{opts: opts, log: opts.Log}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(&proc.LineWriter{Name: "cluster", Out: opts.Out}, nil))
	}
	if err := c.start(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Need returns an error saying how to install what the cluster runs and
// this machine lacks, or nil.
func Need(binDir string) error {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return errors.New("cluster: redis-server is not on PATH: install it (Debian: apt-get install -y redis-server)")
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return errors.New("cluster: redis-cli is not on PATH: install it (Debian: apt-get install -y redis-tools)")
	}
	if _, err := os.Stat(filepath.Join(binDir, "nats-server")); err != nil {
		return fmt.Errorf("cluster: no nats-server in %s: build it with make build-cluster (go build -o %s/ github.com/nats-io/nats-server/v2)", binDir, binDir)
	}
	return nil
}

func (c *Cluster) start(ctx context.Context) error {
	o := &c.opts
	if err := Need(o.BinDir); err != nil {
		return err
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := c.startNATS(ctx); err != nil {
		return err
	}
	if err := c.startRedis(ctx); err != nil {
		return err
	}
	return c.startServices(ctx)
}

func freePort() (int, error) { return proc.FreePort(host) }

func addr(port int) string { return host + ":" + strconv.Itoa(port) }

// startNATS starts three nats-server processes routed to each other, with
// JetStream on disk under DataDir.
func (c *Cluster) startNATS(ctx context.Context) error {
	type ports struct{ client, route, monitor int }
	ps := make([]ports, 3)
	if c.opts.Single {
		ps = ps[:1]
	}
	for i := range ps {
		if c.opts.FixedPorts {
			ps[i] = ports{4231 + i, 6231 + i, 8231 + i}
			continue
		}
		for _, p := range []*int{&ps[i].client, &ps[i].route, &ps[i].monitor} {
			port, err := freePort()
			if err != nil {
				return err
			}
			*p = port
		}
	}
	var routes, urls []string
	for _, p := range ps {
		routes = append(routes, "nats://"+addr(p.route))
		urls = append(urls, "nats://"+addr(p.client))
	}
	c.NATSURL = strings.Join(urls, ",")
	for i, p := range ps {
		name := "nats-" + strconv.Itoa(i+1)
		n := &Node{Name: name, Addr: addr(p.client), Health: "http://" + addr(p.monitor) + "/healthz",
			bin: filepath.Join(c.opts.BinDir, "nats-server"),
			args: []string{"-a", host, "-p", strconv.Itoa(p.client), "-m", strconv.Itoa(p.monitor), "-n", name,
				"-js", "-sd", filepath.Join(c.opts.DataDir, name)}}
		if !c.opts.Single {
			n.args = append(n.args, "--cluster_name", "hookpipe",
				"--cluster", "nats://"+addr(p.route), "--routes", strings.Join(routes, ","))
		}
		c.NATS = append(c.NATS, n)
		if err := c.spawn(n, nil); err != nil {
			return err
		}
	}
	for _, n := range c.NATS {
		if err := c.waitHealthy(ctx, n, 60*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// startRedis starts six redis-server processes in cluster mode and, the
// first time, makes them a cluster of three masters with a replica each.
func (c *Cluster) startRedis(ctx context.Context) error {
	if c.opts.Single {
		return c.startOneRedis(ctx)
	}
	var addrs []string
	for i := range 6 {
		port, err := freePort()
		if c.opts.FixedPorts {
			port, err = 7001+i, nil
		}
		if err != nil {
			return err
		}
		a := addr(port)
		dir := filepath.Join(c.opts.DataDir, "redis-"+strconv.Itoa(port))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		n := &Node{Name: "redis-" + strconv.Itoa(port), Addr: a, bin: "redis-server",
			args: []string{"--bind", host, "--port", strconv.Itoa(port), "--dir", dir,
				"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", strconv.FormatInt(c.opts.NodeTimeout.Milliseconds(), 10),
				"--appendonly", "yes", "--save", "", "--protected-mode", "yes"}}
		c.Redis = append(c.Redis, n)
		addrs = append(addrs, a)
		if err := c.spawn(n, nil); err != nil {
			return err
		}
	}
	for _, n := range c.Redis {
		if err := c.waitRedis(ctx, n.Addr); err != nil {
			return err
		}
	}
	if !c.redisFormed(ctx) {
		out, err := exec.CommandContext(ctx, "redis-cli", append(append([]string{"--cluster", "create"}, addrs...),
			"--cluster-replicas", "1", "--cluster-yes")...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("cluster: redis-cli --cluster create: %v\n%s", err, out)
		}
	}
	c.RedisURL = "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
	// Every node must agree that the cluster is whole before clients use it.
	for _, a := range addrs {
		if err := c.waitClusterOK(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// startOneRedis starts the one redis-server of a Single topology.
func (c *Cluster) startOneRedis(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	dir := filepath.Join(c.opts.DataDir, "redis-"+strconv.Itoa(port))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n := &Node{Name: "redis-" + strconv.Itoa(port), Addr: addr(port), bin: "redis-server",
		args: []string{"--bind", host, "--port", strconv.Itoa(port), "--dir", dir,
			"--appendonly", "yes", "--save", "", "--protected-mode", "yes"}}
	c.Redis = []*Node{n}
	if err := c.spawn(n, nil); err != nil {
		return err
	}
	c.RedisURL = "redis://" + n.Addr
	return c.waitRedis(ctx, n.Addr)
}

// redisFormed reports whether the Redis nodes already form the cluster,
// from a run before on the same ports and data.
func (c *Cluster) redisFormed(ctx context.Context) bool {
	rdb := redis.NewClient(&redis.Options{Addr: c.Redis[0].Addr})
	defer rdb.Close()
	info, err := rdb.ClusterInfo(ctx).Result()
	return err == nil && strings.Contains(info, "cluster_known_nodes:6")
}

func (c *Cluster) waitRedis(ctx context.Context, a string) error {
	rdb := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
	defer rdb.Close()
	return poll(ctx, 30*time.Second, "redis "+a+" does not answer", func() bool { return rdb.Ping(ctx).Err() == nil })
}

func (c *Cluster) waitClusterOK(ctx context.Context, a string) error {
	rdb := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
	defer rdb.Close()
	return poll(ctx, 60*time.Second, "redis "+a+" does not see the cluster whole", func() bool {
		info, err := rdb.ClusterInfo(ctx).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:6")
	})
}

// startServices starts the receivers, the relays, and unless told not to
// the dashboard and the producer.
func (c *Cluster) startServices(ctx context.Context) error {
	o := &c.opts
	for _, p := range []*int{&o.ReceiverPort, &o.RelayPorts[0], &o.RelayPorts[1], &o.DashboardPort, &o.ProducerPort} {
		if *p < 0 {
			port, err := freePort()
			if err != nil {
				return err
			}
			*p = port
		}
	}
	c.ReceiverURL = "http://" + addr(o.ReceiverPort) + task.ReceiverPath
	for _, p := range o.RelayPorts {
		c.RelayURLs = append(c.RelayURLs, "http://"+addr(p))
	}
	c.DashboardURL = "http://" + addr(o.DashboardPort)
	c.ProducerURL = "http://" + addr(o.ProducerPort)
	mode, replicas := "cluster", "3"
	if o.Single {
		mode, replicas = "single", "1"
	}
	env := []string{
		"NATS_URL=" + c.NATSURL,
		"REDIS_URL=" + c.RedisURL,
		"HOOKPIPE_REDIS_MODE=" + mode,
		"HOOKPIPE_STREAM_REPLICAS=" + replicas,
		"HOOKPIPE_RELAY_ORIGINS=" + c.DashboardURL + " http://localhost:" + strconv.Itoa(o.DashboardPort),
	}
	for i := range 2 {
		n := &Node{Name: "receiver-" + strconv.Itoa(i+1), Addr: addr(o.ReceiverPort), Health: "http://" + addr(o.ReceiverPort) + "/readyz",
			bin: filepath.Join(o.BinDir, "receiver"), args: []string{"--addr", addr(o.ReceiverPort), "--reuseport"}}
		c.Receivers = append(c.Receivers, n)
		if err := c.spawnReady(ctx, n, env, "receiver listening"); err != nil {
			return err
		}
	}
	// Every client of a cluster on one machine comes from 127.0.0.1: the
	// per-address limits, the same on both relays, make room for them.
	relayEnv := append(slices.Clone(env), "HOOKPIPE_RELAY_MAX_CONNS_PER_IP=2000",
		"HOOKPIPE_RELAY_JOIN_RATE=1000", "HOOKPIPE_RELAY_JOIN_BURST=1000")
	for i, p := range o.RelayPorts {
		n := &Node{Name: "relay-" + strconv.Itoa(i+1), Addr: addr(p), Health: "http://" + addr(p) + "/readyz",
			bin: filepath.Join(o.BinDir, "relay"), args: []string{"--addr", addr(p)}}
		c.Relays = append(c.Relays, n)
		if err := c.spawn(n, relayEnv); err != nil {
			return err
		}
	}
	for _, n := range c.Relays {
		if err := c.waitHealthy(ctx, n, 60*time.Second); err != nil {
			return err
		}
	}
	if o.NoDashboard {
		return nil
	}
	c.Others = []*Node{
		{Name: "dashboard", Addr: addr(o.DashboardPort), Health: c.DashboardURL + "/healthz", bin: filepath.Join(o.BinDir, "dashboard"),
			args: []string{"--addr", addr(o.DashboardPort), "--web-dir", o.WebDir, "--relay-url", strings.Join(c.RelayURLs, " ")}},
		{Name: "producer", Addr: addr(o.ProducerPort), Health: c.ProducerURL + "/healthz", bin: filepath.Join(o.BinDir, "producer"),
			args: []string{"serve", "--addr", addr(o.ProducerPort), "--receiver-url", c.ReceiverURL}},
	}
	for _, n := range c.Others {
		if err := c.spawn(n, env); err != nil {
			return err
		}
	}
	for _, n := range c.Others {
		if err := c.waitHealthy(ctx, n, 60*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// spawn starts n's process with env added to this one's.
func (c *Cluster) spawn(n *Node, env []string) error { return c.spawnWatch(n, env, "", nil) }

// spawnReady starts n and waits until it logs ready and its health URL
// answers: receivers share a port, so only the log says which one is up.
func (c *Cluster) spawnReady(ctx context.Context, n *Node, env []string, ready string) error {
	seen := make(chan struct{})
	if err := c.spawnWatch(n, env, ready, seen); err != nil {
		return err
	}
	select {
	case <-seen:
	case <-n.done:
		return fmt.Errorf("cluster: %s exited: %v", n.Name, n.err)
	case <-time.After(60 * time.Second):
		return fmt.Errorf("cluster: %s did not say %q within 60s", n.Name, ready)
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.waitHealthy(ctx, n, 60*time.Second)
}

func (c *Cluster) spawnWatch(n *Node, env []string, ready string, seen chan struct{}) error {
	n.env = env
	cmd := exec.Command(n.bin, n.args...)
	cmd.Env = append(os.Environ(), env...)
	w := &proc.LineWriter{Name: n.Name, Out: c.opts.Out}
	var out io.Writer = w
	var pw *io.PipeWriter
	if seen != nil {
		pr, p := io.Pipe()
		pw = p
		out = io.MultiWriter(w, pw)
		go func() {
			sc := bufio.NewScanner(pr)
			once := false
			for sc.Scan() {
				if !once && strings.Contains(sc.Text(), ready) {
					once = true
					close(seen)
				}
			}
			io.Copy(io.Discard, pr)
		}()
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = proc.ChildAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cluster: start %s: %w", n.Name, err)
	}
	done := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.done, n.err = cmd, done, nil
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		w.Flush()
		if pw != nil {
			pw.Close()
		}
		n.mu.Lock()
		n.err = err
		n.mu.Unlock()
		close(done)
	}()
	return nil
}

func (c *Cluster) waitHealthy(ctx context.Context, n *Node, d time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	deadline := time.Now().Add(d)
	for {
		if res, err := client.Get(n.Health); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("cluster: %s exited: %v", n.Name, n.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: %s not ready at %s after %v", n.Name, n.Health, d)
		}
	}
}

// poll calls ok every 50 ms until it is true, for at most d.
func poll(ctx context.Context, d time.Duration, msg string, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: %s after %v", msg, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// Kill ends n at once, as a crash would (SIGKILL), and waits for it.
func (n *Node) Kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Running reports whether n's process is alive.
func (n *Node) Running() bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Restart starts a node again that was killed, with the same arguments and
// data, and waits until it is ready.
func (c *Cluster) Restart(ctx context.Context, n *Node) error {
	if n.Running() {
		return fmt.Errorf("cluster: %s is running", n.Name)
	}
	env := n.env
	if strings.HasPrefix(n.Name, "receiver") {
		return c.spawnReady(ctx, n, env, "receiver listening")
	}
	if err := c.spawn(n, env); err != nil {
		return err
	}
	if strings.HasPrefix(n.Name, "redis") {
		return c.waitRedis(ctx, n.Addr)
	}
	return c.waitHealthy(ctx, n, 60*time.Second)
}

// Describe returns the topology and the URLs to open, for people.
func (c *Cluster) Describe() string {
	var b strings.Builder
	line := func(what string, ns []*Node) {
		fmt.Fprintf(&b, "  %-10s", what)
		for i, n := range ns {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(n.Name + " " + n.Addr)
		}
		b.WriteByte('\n')
	}
	b.WriteString("hookpipe cluster, data under " + c.opts.DataDir + "\n")
	line("NATS", c.NATS)
	line("Redis", c.Redis)
	line("receivers", c.Receivers)
	line("relays", c.Relays)
	line("others", c.Others)
	fmt.Fprintf(&b, "  NATS_URL=%s\n  REDIS_URL=%s (--redis-mode cluster)\n  webhooks: %s\n", c.NATSURL, c.RedisURL, c.ReceiverURL)
	if len(c.Others) > 0 {
		fmt.Fprintf(&b, "  dashboard: %s\n  producer:  %s\n", c.DashboardURL, c.ProducerURL)
	}
	return b.String()
}

// Close stops the services first, then Redis and NATS, and waits for
// each. Calls after the first do nothing.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		for _, group := range [][]*Node{c.Others, c.Relays, c.Receivers, c.Redis, c.NATS} {
			var wg sync.WaitGroup
			for _, n := range group {
				wg.Go(func() { n.stop(10 * time.Second) })
			}
			wg.Wait()
		}
	})
}

func (n *Node) stop(grace time.Duration) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}
