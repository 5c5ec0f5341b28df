package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp/reuseport"

	"github.com/hookpipe/hookpipe/plumbing/access"
	"github.com/hookpipe/hookpipe/plumbing/natsconn"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/receiver/internal/fold"
	"github.com/hookpipe/hookpipe/receiver/internal/ingest"
	"github.com/hookpipe/hookpipe/receiver/internal/publish"
	"github.com/hookpipe/hookpipe/receiver/internal/seen"
	"github.com/hookpipe/hookpipe/receiver/internal/webhook"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
)

// Main is the running receiver. Tests use it to run the real wiring on a
// free port.
type Main struct {
	Config Config
	// Log is where the receiver logs; ParseFlags sets it from the config
	// when nil.
	Log *slog.Logger

	// Metrics counts requests, failures and the fold's work; it is served
	// at /metrics. Run sets it.
	Metrics *webhook.Metrics
	// Fold is the receiver's fold of the stream into Redis; Run sets it.
	Fold *fold.Fold

	rdb    redis.UniversalClient
	pub    *publish.Publisher
	foldNC *nats.Conn
	srv    *fasthttp.Server
	ln     net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main { return &Main{Config: DefaultConfig()} }

// ParseFlags reads the configuration from args and the environment.
func (m *Main) ParseFlags(_ context.Context, args []string) error {
	if err := m.Config.Parse(args, os.LookupEnv, os.Stderr); err != nil {
		return err
	}
	if m.Log == nil {
		m.Log = m.Config.Log.New(os.Stderr)
	}
	return nil
}

// GCPercent is the garbage collector's target the receiver runs with
// unless GOGC is set. Its live heap is a few MiB, so collecting at four
// times that rather than twice costs little memory and saves a few per
// cent of the CPU per request (the README gives make bench-receiver's
// figures).
const GCPercent = 400

// Run connects to Redis and NATS, listens, and serves in the background. It
// does not wait for Redis or NATS to answer: until they do, webhooks get 503
// and /readyz says why.
func (m *Main) Run(ctx context.Context) error {
	c := m.Config
	if m.Log == nil {
		m.Log = c.Log.New(os.Stderr)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	secrets, err := task.ParseSecrets(c.WebhookSecret)
	if err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	m.rdb, err = redisconn.New(c.Redis, redisconn.Tuning{
		DialTimeout: min(c.Timeout, time.Second), ReadTimeout: c.Timeout, WriteTimeout: c.Timeout,
		// A retried pipeline could run a count twice for requests without an
		// id; failures go back to the sender as 503 instead.
		MaxRetries: -1, PoolSize: 32, Name: "hookpipe-receiver",
	})
	if err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	// go-redis logs every failed dial; those failures reach the metrics and
	// the 503 answers already.
	redisconn.Quiet()

	m.pub, err = publish.Connect(c.NATS, c.Stream, c.Timeout, m.Log)
	if err != nil {
		m.rdb.Close()
		return fmt.Errorf("receiver: %w", err)
	}

	m.ln, err = listen(c.Addr, c.ReusePort)
	if err != nil {
		m.rdb.Close()
		m.pub.Close(ctx)
		return fmt.Errorf("receiver: listen: %w", err)
	}

	// The fold reads the stream on a connection of its own, so that its
	// deliveries never queue behind the publishes of requests.
	m.foldNC, err = natsconn.Connect(c.NATS, nats.Name("hookpipe-receiver-fold"), nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		m.ln.Close()
		m.rdb.Close()
		m.pub.Close(ctx)
		return fmt.Errorf("receiver: fold: %w", err)
	}
	foldJS, err := jetstream.New(m.foldNC)
	if err != nil {
		m.foldNC.Close()
		m.ln.Close()
		m.rdb.Close()
		m.pub.Close(ctx)
		return fmt.Errorf("receiver: fold: %w", err)
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	keys := task.Keys{Prefix: c.KeyPrefix}
	m.Metrics = webhook.NewMetrics()
	m.Fold = fold.New(foldJS, m.rdb, fold.Options{
		Keys: keys, Stream: c.Stream, SeenTTL: c.DedupeTTL, KeepBatches: c.KeepBatches,
		Timeout: c.Timeout, Log: m.Log, Metrics: fold.NewMetrics(m.Metrics.Registry),
	})
	seenStore := seen.New(m.rdb, seen.Options{Keys: keys, Timeout: c.Timeout})
	m.wg.Go(func() { m.Fold.Run(runCtx) })
	m.wg.Go(func() { m.checkRedisMemory(runCtx) })
	m.Metrics.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hookpipe_fold_batches", Help: "Batches the fold keeps, in Redis and checkpoints."},
			func() float64 { return float64(m.Fold.Batches()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hookpipe_redis_keys", Help: "Keys in the whole Redis database (DBSIZE, summed over a cluster's masters), other key prefixes' and applications' included; hookpipe's are its counts, its batches and one seen key per webhook id remembered."},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				n, _ := m.rdb.DBSize(ctx).Result()
				return float64(n)
			}))
	m.wg.Go(func() { seenStore.Run(runCtx) })
	m.wg.Go(func() { m.ensureStream(runCtx) })

	h := &webhook.Handler{
		Acceptor:   &ingest.Acceptor{Seen: seenStore, Stream: m.pub, Backlogged: m.Fold.Backlogged},
		Path:       c.Path,
		Timeout:    c.Timeout,
		RetryAfter: c.RetryAfter,
		Ready:      m.ready,
		Metrics:    m.Metrics,
		Log:        m.Log,
	}
	h.Gate = access.NewGate(c.Access.Token)
	if len(secrets) > 0 {
		h.Verifier = &task.Verifier{Secrets: secrets, Tolerance: c.Tolerance}
		m.Log.Info("webhook signatures required", "secrets", len(secrets))
	} else {
		// Unsigned webhooks come from anywhere that can reach the port,
		// browsers included: only from names it was told it has.
		h.Hosts = access.NewHosts(c.Access.Hosts)
		m.Log.Warn("webhook signing is off: unsigned requests are accepted; set HOOKPIPE_WEBHOOK_SECRET to require signatures")
	}
	m.srv = &fasthttp.Server{
		Handler:               h.ServeFastHTTP,
		ErrorHandler:          h.ErrorHandler,
		Name:                  "hookpipe-receiver",
		MaxRequestBodySize:    c.MaxBodySize,
		Concurrency:           c.Concurrency,
		ReadTimeout:           c.ReadTimeout,
		WriteTimeout:          c.Timeout + 5*time.Second,
		IdleTimeout:           c.IdleTimeout,
		NoDefaultServerHeader: false,
		NoDefaultDate:         true,
		CloseOnShutdown:       true,
		// Connection errors (a client gone, a body over the limit) are
		// answered or counted already; fasthttp's own lines go to debug.
		Logger: fasthttpLogger{m.Log},
	}
	m.wg.Go(func() {
		if err := m.srv.Serve(m.ln); err != nil {
			m.Log.Error("serve", "err", err)
		}
	})
	m.Log.Info("receiver listening", "addr", m.ln.Addr().String(), "path", c.Path,
		"nats", c.NATS.Redacted(), "redis", c.Redis.Redacted(), "key_prefix", c.KeyPrefix)
	return nil
}

// checkRedisMemory reads, once Redis answers, whether its memory is
// bounded and what it evicts when full, and says what that means for
// hookpipe's keys.
func (m *Main) checkRedisMemory(ctx context.Context) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		vals, err := m.rdb.ConfigGet(cctx, "maxmemory*").Result()
		cancel()
		if err == nil {
			max, policy := vals["maxmemory"], vals["maxmemory-policy"]
			switch {
			case max == "0" || max == "":
				m.Log.Warn("redis memory is unbounded (maxmemory 0): set maxmemory so that a flood of webhook ids cannot exhaust the host; hookpipe's keys are bounded by --keep-batches and --dedupe-ttl")
			case strings.HasPrefix(policy, "allkeys-"):
				m.Log.Warn("redis may evict any key when full (maxmemory-policy "+policy+"): the counts would be evicted and restored from the stream again and again; use noeviction", "maxmemory", max)
			case strings.HasPrefix(policy, "volatile-"):
				m.Log.Warn("redis may evict keys with a TTL when full (maxmemory-policy "+policy+"): seen webhook ids would be forgotten early, narrowing the dedupe window to the stream's; use noeviction", "maxmemory", max)
			default:
				m.Log.Info("redis memory bounded", "maxmemory", max, "policy", policy)
			}
			return
		}
		if strings.Contains(err.Error(), "NOPERM") || strings.Contains(err.Error(), "unknown command") {
			m.Log.Info("redis memory settings not readable by this user: make sure maxmemory is set and maxmemory-policy is noeviction")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// ensureStream creates the stream as soon as NATS answers.
func (m *Main) ensureStream(ctx context.Context) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := m.pub.EnsureStream(sctx)
		cancel()
		if err == nil {
			return
		}
		m.Log.Debug("stream not ready", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (m *Main) ready(ctx context.Context) error {
	if err := m.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return m.pub.Ping(ctx)
}

// Addr returns the address the receiver listens on.
func (m *Main) Addr() string { return m.ln.Addr().String() }

// URL returns the webhook URL of the receiver, with 127.0.0.1 for an
// unspecified host.
func (m *Main) URL() string {
	_, port, _ := net.SplitHostPort(m.Addr())
	return "http://127.0.0.1:" + port + m.Config.Path
}

// Close stops accepting, lets in-flight requests finish, waits for
// outstanding stream acknowledgements and drains NATS, all within the
// configured shutdown timeout.
func (m *Main) Close() error {
	if m.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	errSrv := m.srv.ShutdownWithContext(ctx)
	errPub := m.pub.Close(ctx)
	m.cancel()
	m.wg.Wait()
	m.foldNC.Close()
	errRedis := m.rdb.Close()
	return errors.Join(errSrv, errPub, errRedis)
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, v ...any) {
	l.log.Debug("http: " + fmt.Sprintf(format, v...))
}

// listen listens on addr, sharing the port with other processes that ask
// for the same when reusePort is set.
func listen(addr string, reusePort bool) (net.Listener, error) {
	if !reusePort {
		return net.Listen("tcp", addr)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	network := "tcp4"
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		network = "tcp6"
	}
	return reuseport.Listen(network, addr)
}
