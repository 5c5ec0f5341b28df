// Package stack runs the whole pipeline on one machine with nothing
// installed but Go: it uses NATS and Redis where they answer, starts an
// embedded NATS server and a local Redis where they do not, then starts
// receiver, relay, dashboard and producer as child processes whose log lines
// it prefixes with their names.
//
// make run-all and the end-to-end test both run through it, so the test
// exercises the wiring people use; Main is run-all itself.
package stack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hookpipe/hookpipe/devenv/proc"
	"github.com/hookpipe/hookpipe/plumbing/logging"
	"github.com/hookpipe/hookpipe/plumbing/natsconn"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/plumbing/taskstream"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/redis/go-redis/v9"
)

// Options configures a Stack. Zero fields take the defaults given, which
// DefaultOptions returns.
type Options struct {
	// BinDir holds the receiver, relay, dashboard and producer binaries;
	// default "bin".
	BinDir string
	// DataDir holds the embedded NATS server's JetStream files and the
	// local Redis's append-only file; default ".data".
	DataDir string
	// NATSURL is tried first; default $NATS_URL, else natsconn.DefaultURL.
	NATSURL string
	// RedisURL is tried first; default $REDIS_URL, else redisconn.DefaultURL.
	RedisURL string
	// NoExternal skips the servers at NATSURL and RedisURL and always starts
	// private ones, as tests do.
	NoExternal bool
	// Host is the interface every component listens on; default 127.0.0.1.
	Host string
	// Ports of the components; 0 takes the defaults 5001, 5002, 8080, 5000.
	// -1 picks a free port.
	ReceiverPort, RelayPort, DashboardPort, ProducerPort int
	// WebDir is the dashboard's folder of static files (app.wasm);
	// default "dashboard/web".
	WebDir string
	// Env is added to every component's environment, after the stack's own
	// variables, so it may override them.
	Env []string
	// Out receives every component's log lines, prefixed; default stderr.
	Out io.Writer
	// Log receives the stack's own lines; default the logging package's
	// default (text at info) to Out, each line prefixed "run-all".
	Log *slog.Logger
}

// Stack is a running pipeline.
type Stack struct {
	opts Options
	log  *slog.Logger

	// NATSURL and RedisURL are the servers the components use.
	NATSURL, RedisURL string
	// ReceiverURL is where webhooks go; RelayURL, DashboardURL and
	// ProducerURL are the base URLs of the other components.
	ReceiverURL, RelayURL, DashboardURL, ProducerURL string

	nats  *server.Server
	creds *Credentials
	// natsCreds and redisCreds say that the stack runs NATS and Redis
	// itself, with a user per role.
	natsCreds, redisCreds bool
	mini                  *miniredis.Miniredis
	redisProc             *exec.Cmd
	mu                    sync.Mutex // guards procs, which Restart changes
	procs                 []*child
	health                map[string]string // component -> health URL
	done                  chan struct{}
	wg                    sync.WaitGroup
	stopOnce              sync.Once
}

type child struct {
	name string
	cmd  *exec.Cmd
	err  error
	done chan struct{}
}

// DefaultOptions returns the defaults documented on Options, all but
// those of NATSURL and RedisURL, which Start looks up in the environment,
// and of Out and Log.
func DefaultOptions() Options {
	return Options{
		BinDir:        "bin",
		DataDir:       ".data",
		Host:          task.LoopbackHost,
		ReceiverPort:  task.ReceiverPort,
		RelayPort:     task.RelayPort,
		DashboardPort: task.DashboardPort,
		ProducerPort:  task.ProducerPort,
		WebDir:        filepath.Join("dashboard", "web"),
	}
}

func (o *Options) setDefaults() {
	d := DefaultOptions()
	if o.BinDir == "" {
		o.BinDir = d.BinDir
	}
	if o.DataDir == "" {
		o.DataDir = d.DataDir
	}
	if o.NATSURL == "" {
		o.NATSURL = envOr("NATS_URL", natsconn.DefaultURL)
	}
	if o.RedisURL == "" {
		o.RedisURL = envOr("REDIS_URL", redisconn.DefaultURL)
	}
	if o.Host == "" {
		o.Host = d.Host
	}
	if o.WebDir == "" {
		o.WebDir = d.WebDir
	}
	if o.Out == nil {
		o.Out = os.Stderr
	}
	for _, p := range []struct {
		port *int
		def  int
	}{{&o.ReceiverPort, d.ReceiverPort}, {&o.RelayPort, d.RelayPort}, {&o.DashboardPort, d.DashboardPort}, {&o.ProducerPort, d.ProducerPort}} {
		if *p.port == 0 {
			*p.port = p.def
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Start brings the pipeline up and returns once every component answers
// its health check. Close stops it.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	opts.setDefaults()
	s := &Stack{opts: opts, log: opts.Log, done: make(chan struct{})}
	if s.log == nil {
		s.log = logging.DefaultConfig().New(&proc.LineWriter{Name: "run-all", Out: opts.Out})
	}
	if err := s.start(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Stack) start(ctx context.Context) error {
	o := &s.opts
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	if err := s.startNATS(); err != nil {
		return err
	}
	if err := s.startRedis(ctx); err != nil {
		return err
	}
	for _, p := range []*int{&o.ReceiverPort, &o.RelayPort, &o.DashboardPort, &o.ProducerPort} {
		if *p < 0 {
			port, err := proc.FreePort(o.Host)
			if err != nil {
				return fmt.Errorf("stack: %w", err)
			}
			*p = port
		}
	}
	base := func(port int) string { return "http://" + net.JoinHostPort(o.Host, strconv.Itoa(port)) }
	s.ReceiverURL = base(o.ReceiverPort) + task.ReceiverPath
	s.RelayURL = base(o.RelayPort)
	s.DashboardURL = base(o.DashboardPort)
	s.ProducerURL = base(o.ProducerPort)

	env := []string{
		"NATS_URL=" + s.NATSURL,
		"REDIS_URL=" + s.RedisURL,
		"WEBHOOK_RECEIVER_URL=" + s.ReceiverURL,
		"HOOKPIPE_RELAY_URL=" + s.RelayURL,
		// The relay takes WebSocket connections from the dashboard's page.
		"HOOKPIPE_RELAY_ORIGINS=" + s.DashboardURL + " http://localhost:" + strconv.Itoa(o.DashboardPort),
	}
	env = append(env, o.Env...)
	addr := func(port int) string { return net.JoinHostPort(o.Host, strconv.Itoa(port)) }
	components := []struct {
		name   string
		args   []string
		health string
		env    []string
	}{
		{"receiver", []string{"--addr", addr(o.ReceiverPort)}, base(o.ReceiverPort) + "/readyz", s.roleEnv(RoleReceiver)},
		{"relay", []string{"--addr", addr(o.RelayPort)}, s.RelayURL + "/readyz", s.roleEnv(RoleRelay)},
		{"dashboard", []string{"--addr", addr(o.DashboardPort), "--web-dir", o.WebDir}, s.DashboardURL + "/healthz", nil},
		{"producer", []string{"serve", "--addr", addr(o.ProducerPort)}, s.ProducerURL + "/healthz", nil},
	}
	if err := s.writeToolEnv(); err != nil {
		return err
	}
	s.health = make(map[string]string)
	for _, c := range components {
		s.health[c.name] = c.health
		if err := s.spawn(c.name, c.args, append(slices.Clone(env), c.env...)); err != nil {
			return err
		}
	}
	for _, c := range components {
		if err := s.waitHealthy(ctx, c.name, c.health); err != nil {
			return err
		}
	}
	return nil
}

func (s *Stack) startNATS() error {
	o := &s.opts
	if !o.NoExternal && natsAnswers(o.NATSURL) {
		s.NATSURL = o.NATSURL
		s.log.Info("using NATS", "url", o.NATSURL)
		return nil
	}
	// The default port when it is free, so that tools run without NATS_URL
	// find the server.
	port := server.DEFAULT_PORT
	if o.NoExternal || !proc.PortFree(o.Host, port) {
		port = -1
	}
	creds, err := s.credentials()
	if err != nil {
		return err
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "hookpipe-dev",
		Host:       o.Host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(o.DataDir, "nats"),
		NoSigs:     true,
		NoLog:      true,
		Users:      creds.natsUsers(taskstream.CheckpointBucket),
	})
	if err != nil {
		return fmt.Errorf("stack: embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return errors.New("stack: embedded nats did not start")
	}
	s.nats = ns
	s.NATSURL = ns.ClientURL()
	s.natsCreds = true
	s.log.Info("started embedded NATS with JetStream, a user per role", "url", s.NATSURL, "store", filepath.Join(o.DataDir, "nats"),
		"credentials", s.CredentialsPath())
	return nil
}

func (s *Stack) startRedis(ctx context.Context) error {
	o := &s.opts
	if !o.NoExternal && redisAnswers(o.RedisURL) {
		s.RedisURL = o.RedisURL
		s.log.Info("using Redis", "url", o.RedisURL)
		return nil
	}
	if bin, err := exec.LookPath("redis-server"); err == nil {
		port, err := proc.FreePort(o.Host)
		if err != nil {
			return fmt.Errorf("stack: %w", err)
		}
		dir, err := filepath.Abs(filepath.Join(o.DataDir, "redis"))
		if err != nil {
			return fmt.Errorf("stack: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("stack: %w", err)
		}
		creds, err := s.credentials()
		if err != nil {
			return err
		}
		// Every write is on disk before the fold moves its watermark, and
		// memory is bounded without evicting anything of hookpipe's.
		args := append([]string{"--bind", o.Host, "--port", strconv.Itoa(port)}, creds.redisUsers(s.keyPrefix())...)
		cmd := exec.Command(bin, append(args,
			"--dir", dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile", "redis.log",
			"--maxmemory", "1gb", "--maxmemory-policy", "noeviction")...)
		cmd.SysProcAttr = proc.ChildAttr()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("stack: redis-server: %w", err)
		}
		s.redisProc = cmd
		s.RedisURL = "redis://" + net.JoinHostPort(o.Host, strconv.Itoa(port))
		s.redisCreds = true
		for deadline := time.Now().Add(10 * time.Second); !redisAnswers(s.RedisURLAs(RoleReceiver)); {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return errors.New("stack: redis-server did not answer")
			}
			time.Sleep(50 * time.Millisecond)
		}
		s.log.Info("started redis-server", "url", s.RedisURL, "dir", dir)
		return nil
	}
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(net.JoinHostPort(o.Host, "0")); err != nil {
		return fmt.Errorf("stack: embedded redis: %w", err)
	}
	s.mini = m
	s.RedisURL = "redis://" + m.Addr()
	// miniredis expires keys only when told that time passed.
	s.wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				m.FastForward(time.Second)
			}
		}
	})
	s.log.Warn("no Redis found and no redis-server on PATH: started an embedded Redis-compatible server; counts are in memory only and are lost when run-all stops (for development only)", "url", s.RedisURL)
	return nil
}

// ToolEnvPath is where the stack leaves, while it runs, the NATS and Redis
// URLs with credentials for the tools run beside it (make verify,
// loadtest, replay), as shell lines that keep a NATS_URL or REDIS_URL
// already set.
func (s *Stack) ToolEnvPath() string { return filepath.Join(s.opts.DataDir, "stack.env") }

// CredentialsPath is the file of the users the stack gives the NATS and
// Redis it starts itself.
func (s *Stack) CredentialsPath() string { return filepath.Join(s.opts.DataDir, "credentials.json") }

func (s *Stack) writeToolEnv() error {
	if !s.natsCreds && !s.redisCreds {
		os.Remove(s.ToolEnvPath())
		return nil
	}
	body := "# Written by run-all while it runs; removed when it stops.\n" +
		": \"${NATS_URL:=" + s.NATSURLAs(RoleVerify) + "}\"; export NATS_URL\n" +
		": \"${REDIS_URL:=" + s.RedisURLAs(RoleReceiver) + "}\"; export REDIS_URL\n"
	if err := os.WriteFile(s.ToolEnvPath(), []byte(body), 0o600); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	return nil
}

// credentials returns the stack's credentials, made once.
func (s *Stack) credentials() (*Credentials, error) {
	if s.creds == nil {
		c, err := loadCredentials(s.opts.DataDir)
		if err != nil {
			return nil, err
		}
		s.creds = c
	}
	return s.creds, nil
}

// keyPrefix is the components' Redis key prefix, which their ACL users are
// limited to.
func (s *Stack) keyPrefix() string {
	for _, kv := range s.opts.Env {
		if v, ok := strings.CutPrefix(kv, "HOOKPIPE_KEY_PREFIX="); ok {
			return v
		}
	}
	return task.DefaultKeyPrefix
}

// RedisURLAs returns the Redis URL with role's user when the stack runs
// Redis itself, else the URL as it is.
func (s *Stack) RedisURLAs(role string) string {
	if !s.redisCreds {
		return s.RedisURL
	}
	return s.creds.redisURL(s.RedisURL, role)
}

// NATSURLAs returns the NATS URL with role's user when the stack runs NATS
// itself, else the URL as it is.
func (s *Stack) NATSURLAs(role string) string {
	if !s.natsCreds {
		return s.NATSURL
	}
	u, err := url.Parse(s.NATSURL)
	if err != nil {
		return s.NATSURL
	}
	u.User = url.UserPassword(role, s.creds.NATS[role])
	return u.String()
}

// roleEnv is the environment that gives a component its role's
// credentials.
func (s *Stack) roleEnv(role string) []string {
	var env []string
	if s.natsCreds {
		env = append(env, "NATS_USER="+role, "NATS_PASSWORD="+s.creds.NATS[role])
	}
	if s.redisCreds {
		env = append(env, "REDIS_URL="+s.RedisURLAs(role))
	}
	return env
}

func (s *Stack) spawn(name string, args, env []string) error {
	bin := filepath.Join(s.opts.BinDir, name)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	w := &proc.LineWriter{Name: name, Out: s.opts.Out}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = proc.ChildAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("stack: start %s: %w", name, err)
	}
	p := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		w.Flush()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return nil
}

func (s *Stack) waitHealthy(ctx context.Context, name, url string) error {
	_, p := s.lookup(name)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := client.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("stack: %s exited: %v", name, p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stack: %s not healthy at %s after 30s", name, url)
		}
	}
}

// lookup returns the index and process of a component, or -1 and nil.
func (s *Stack) lookup(name string) (int, *child) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.procs {
		if p.name == name {
			return i, p
		}
	}
	return -1, nil
}

// Exited returns a channel that receives the name of the first component
// to exit.
func (s *Stack) Exited() <-chan string {
	ch := make(chan string, 1)
	s.mu.Lock()
	procs := slices.Clone(s.procs)
	s.mu.Unlock()
	for _, p := range procs {
		go func() {
			select {
			case <-p.done:
				select {
				case ch <- p.name:
				default:
				}
			case <-s.done:
			}
		}()
	}
	return ch
}

// Stop stops one component with SIGTERM and waits for it to exit.
func (s *Stack) Stop(name string) error {
	if _, p := s.lookup(name); p != nil {
		return stopProc(p, 10*time.Second)
	}
	return fmt.Errorf("stack: no component %s", name)
}

// Restart starts a stopped component again with its original arguments,
// and waits until it is healthy.
func (s *Stack) Restart(ctx context.Context, name string) error {
	i, p := s.lookup(name)
	if p == nil {
		return fmt.Errorf("stack: no component %s", name)
	}
	select {
	case <-p.done:
	default:
		return fmt.Errorf("stack: %s is still running", name)
	}
	old := p.cmd
	cmd := exec.Command(old.Path, old.Args[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr, cmd.SysProcAttr = old.Env, old.Stdout, old.Stderr, old.SysProcAttr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("stack: restart %s: %w", name, err)
	}
	np := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		np.err = cmd.Wait()
		if w, ok := cmd.Stdout.(*proc.LineWriter); ok {
			w.Flush()
		}
		close(np.done)
	}()
	s.mu.Lock()
	s.procs[i] = np
	s.mu.Unlock()
	return s.waitHealthy(ctx, name, s.health[name])
}

func stopProc(p *child, grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("stack: %s did not stop within %v and was killed", p.name, grace)
	}
}

// Close stops the components in reverse order of dependency (producer
// first, receiver last, so that nothing in flight is lost), then the
// servers the stack started.
func (s *Stack) Close() error {
	var errs []error
	s.stopOnce.Do(func() {
		close(s.done)
		s.mu.Lock()
		procs := slices.Clone(s.procs)
		s.mu.Unlock()
		for i := len(procs) - 1; i >= 0; i-- {
			if err := stopProc(procs[i], 15*time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		if s.redisProc != nil {
			s.redisProc.Process.Signal(syscall.SIGTERM)
			s.redisProc.Wait()
		}
		if s.mini != nil {
			s.mini.Close()
		}
		if s.nats != nil {
			s.nats.Shutdown()
			s.nats.WaitForShutdown()
		}
		os.Remove(s.ToolEnvPath())
		s.wg.Wait()
	})
	return errors.Join(errs...)
}

func natsAnswers(rawURL string) bool {
	// The first server of a comma-separated list is enough to tell.
	first, _, _ := strings.Cut(rawURL, ",")
	if !strings.Contains(first, "://") {
		first = "nats://" + first
	}
	u, err := url.Parse(first)
	if err != nil || u.Hostname() == "" {
		return false
	}
	port := u.Port()
	if port == "" {
		port = strconv.Itoa(server.DEFAULT_PORT)
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(u.Hostname(), port), 500*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	if u.Scheme == "tls" {
		return true // a TLS server may wait for the handshake before it says anything
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "INFO ")
}

// quietRedis drops go-redis's own log lines: a probe that finds no Redis
// is expected here, and the stack says what it does instead.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(quietRedis{}) }

func redisAnswers(url string) bool {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return false
	}
	opt.DialTimeout = 500 * time.Millisecond
	opt.MaxRetries = -1
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Ping(ctx).Err() == nil
}
