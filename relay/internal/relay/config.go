package relay

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/access"
	"github.com/hookpipe/hookpipe/plumbing/envflag"
	"github.com/hookpipe/hookpipe/plumbing/logging"
	"github.com/hookpipe/hookpipe/plumbing/natsconn"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/plumbing/taskstream"
	"github.com/hookpipe/hookpipe/relay/internal/fanout"
	"github.com/hookpipe/hookpipe/task"
)

// Config is everything the relay can be told. Each field has one flag and
// one environment variable; a flag wins over the environment, which wins
// over the default.
type Config struct {
	// Addr is where the relay listens; default "127.0.0.1:5002"
	// (--addr, HOOKPIPE_RELAY_ADDR).
	Addr string
	// NATS is where NATS is and how to log in; default
	// nats://127.0.0.1:4222 (--nats-url, NATS_URL; see natsconn.Options).
	NATS natsconn.Options
	// Redis is one server, a cluster or Sentinel; default
	// redis://127.0.0.1:6379 (--redis-url, REDIS_URL; see
	// redisconn.Options).
	Redis redisconn.Options
	// Stream holds the limits the relay creates the TASKS stream with when
	// it starts before any receiver; the receiver's defaults (see
	// taskstream.Bind).
	Stream task.StreamSettings
	// KeyPrefix starts every Redis key; default "hookpipe:"
	// (--key-prefix, HOOKPIPE_KEY_PREFIX).
	KeyPrefix string
	// Origins are the browser origins allowed, the dashboards' (scheme,
	// host and port); "*" allows all. Default "http://localhost:8080
	// http://127.0.0.1:8080" (--origins, HOOKPIPE_RELAY_ORIGINS, space or
	// comma separated). Every relay of a deployment needs the same.
	Origins []string
	// Access holds the access token /metrics requires, and which /ws and
	// /batches take as well (required beyond loopback), and the host
	// names the relay answers to besides loopback ones.
	Access access.Config
	// RelaySecret checks the connection tokens dashboards mint for their
	// pages; default none, which is allowed only on loopback. Every relay
	// and dashboard of a deployment needs the same (--relay-secret,
	// HOOKPIPE_RELAY_SECRET).
	RelaySecret string
	// MaxConnsPerIP bounds the WebSocket connections open at once from one
	// client address; default 64 (--max-conns-per-ip,
	// HOOKPIPE_RELAY_MAX_CONNS_PER_IP).
	MaxConnsPerIP int
	// JoinRate and JoinBurst bound how fast one client address may open
	// connections: JoinRate per second, JoinBurst at once; default 5 and 20
	// (--join-rate, HOOKPIPE_RELAY_JOIN_RATE; --join-burst,
	// HOOKPIPE_RELAY_JOIN_BURST).
	JoinRate  float64
	JoinBurst int
	// TrustedProxies are the addresses (CIDRs) of load balancers in front:
	// a connection from one counts against the client address its
	// X-Forwarded-For names; default none (--trusted-proxies,
	// HOOKPIPE_RELAY_TRUSTED_PROXIES). Every relay needs the same.
	TrustedProxies []string
	// Config is the hub's part: frame interval, snapshot and ring sizes,
	// queues, connection limits, pings and timeouts. Its fields and
	// defaults are documented on fanout.Config; each has a flag and a
	// HOOKPIPE_RELAY_* variable (see ParseConfig). Its CheckOrigin is set
	// from Origins.
	fanout.Config
	// CountsInterval is the longest time between two reads of the counts
	// when no events arrive; default 1s
	// (--counts-interval, HOOKPIPE_RELAY_COUNTS_INTERVAL).
	CountsInterval time.Duration
	// ShutdownTimeout bounds a graceful shutdown; default 10s
	// (--shutdown-timeout, HOOKPIPE_SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration
	// Log says how the relay logs; default text at info
	// (--log-format, HOOKPIPE_LOG_FORMAT; --log-level, HOOKPIPE_LOG_LEVEL).
	Log logging.Config
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Addr:            task.LoopbackAddr(task.RelayPort),
		NATS:            natsconn.DefaultOptions(),
		Redis:           redisconn.DefaultOptions(),
		Stream:          task.DefaultStreamSettings(),
		KeyPrefix:       task.DefaultKeyPrefix,
		Origins:         []string{"http://localhost:" + strconv.Itoa(task.DashboardPort), "http://" + task.LoopbackAddr(task.DashboardPort)},
		MaxConnsPerIP:   64,
		JoinRate:        5,
		JoinBurst:       20,
		Config:          fanout.DefaultConfig(),
		CountsInterval:  time.Second,
		ShutdownTimeout: 10 * time.Second,
		Log:             logging.DefaultConfig(),
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	if _, err := c.proxies(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Access.Validate(c.Addr); err != nil {
		errs = append(errs, err)
	}
	if err := access.CheckSecret("--relay-secret", c.RelaySecret); err != nil {
		errs = append(errs, err)
	}
	if c.RelaySecret == "" && !access.IsLoopback(c.Addr) {
		errs = append(errs, fmt.Errorf("listening on %s, beyond loopback, needs --relay-secret (HOOKPIPE_RELAY_SECRET), shared with the dashboards, so that only their pages connect", c.Addr))
	}
	if c.MaxConnsPerIP <= 0 || c.JoinRate <= 0 || c.JoinBurst <= 0 {
		errs = append(errs, fmt.Errorf("max-conns-per-ip, join-rate and join-burst must be positive"))
	}
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", name, d))
		}
	}
	if c.Addr == "" {
		errs = append(errs, errors.New("addr must not be empty"))
	}
	for _, err := range []error{c.NATS.Validate(), c.Redis.Validate(), taskstream.Validate(c.Stream), c.Log.Validate()} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	positive("interval", c.Interval)
	positive("ping-interval", c.PingInterval)
	positive("pong-timeout", c.PongTimeout)
	positive("write-timeout", c.WriteTimeout)
	positive("counts-interval", c.CountsInterval)
	positive("shutdown-timeout", c.ShutdownTimeout)
	if c.MaxInterval < c.Interval {
		errs = append(errs, fmt.Errorf("max-interval %v must be at least interval %v", c.MaxInterval, c.Interval))
	}
	if c.PongTimeout <= c.PingInterval {
		errs = append(errs, fmt.Errorf("pong-timeout %v must exceed ping-interval %v", c.PongTimeout, c.PingInterval))
	}
	for _, n := range []struct {
		name string
		v    int64
	}{{"snapshot-events", int64(c.SnapshotEvents)}, {"ring-size", int64(c.RingSize)},
		{"queue-size", int64(c.QueueSize)}, {"max-conns", int64(c.MaxConns)}, {"read-limit", c.ReadLimit}} {
		if n.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", n.name, n.v))
		}
	}
	if c.MaxUpdateEvents < 0 {
		errs = append(errs, fmt.Errorf("max-update-events must not be negative, got %d", c.MaxUpdateEvents))
	}
	if c.SendBuffer < 0 {
		errs = append(errs, fmt.Errorf("send-buffer must not be negative, got %d", c.SendBuffer))
	}
	if c.SnapshotEvents > c.RingSize {
		errs = append(errs, fmt.Errorf("snapshot-events %d must not exceed ring-size %d", c.SnapshotEvents, c.RingSize))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("relay config: %w", err)
	}
	return nil
}

// ParseConfig builds a Config from the defaults, then the environment (read
// with getenv), then args, and validates it. --help prints every flag with
// its environment variable to out and returns flag.ErrHelp.
func ParseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	c := DefaultConfig()
	fs := envflag.New("relay", "Pushes accepted tasks from the NATS stream to dashboards over WebSocket.", getenv, out)
	fs.Group("HTTP")
	fs.String(&c.Addr, "addr", "HOOKPIPE_RELAY_ADDR", "listen address for WebSocket, batches, health and metrics")
	fs.Var((*listValue)(&c.Origins), "origins", "HOOKPIPE_RELAY_ORIGINS", "browser origins allowed (the dashboards'), space or comma separated; * allows all")
	fs.Group("Access")
	c.Access.Bind(fs)
	fs.Secret(&c.RelaySecret, "relay-secret", "HOOKPIPE_RELAY_SECRET", "secret that checks the dashboards' connection tokens, the same on every relay and dashboard; required beyond loopback")
	fs.Int(&c.MaxConnsPerIP, "max-conns-per-ip", "HOOKPIPE_RELAY_MAX_CONNS_PER_IP", "most WebSocket connections open at once from one client address")
	fs.Float64(&c.JoinRate, "join-rate", "HOOKPIPE_RELAY_JOIN_RATE", "new connections per second one client address may open")
	fs.Int(&c.JoinBurst, "join-burst", "HOOKPIPE_RELAY_JOIN_BURST", "new connections one client address may open at once")
	fs.Var((*listValue)(&c.TrustedProxies), "trusted-proxies", "HOOKPIPE_RELAY_TRUSTED_PROXIES", "load balancers in front (CIDRs): their X-Forwarded-For names the client")
	fs.Int(&c.MaxResumeEvents, "max-resume-events", "HOOKPIPE_RELAY_MAX_RESUME_EVENTS", "most events a resume carries; further behind gets a snapshot")
	fs.Group("NATS and Redis")
	c.NATS.Bind(fs)
	c.Redis.Bind(fs)
	fs.String(&c.KeyPrefix, "key-prefix", "HOOKPIPE_KEY_PREFIX", "prefix of every Redis key")
	fs.Group("Stream")
	taskstream.Bind(fs, &c.Stream)
	fs.Group("Frames and clients")
	fs.Duration(&c.Interval, "interval", "HOOKPIPE_RELAY_INTERVAL", "shortest time between two frames to a client")
	fs.Duration(&c.MaxInterval, "max-interval", "HOOKPIPE_RELAY_MAX_INTERVAL", "widest the frame interval grows when clients cannot keep up")
	fs.Int(&c.SnapshotEvents, "snapshot-events", "HOOKPIPE_RELAY_SNAPSHOT_EVENTS", "recent events in a snapshot")
	fs.Int(&c.RingSize, "ring-size", "HOOKPIPE_RELAY_RING_SIZE", "recent events kept for resumes")
	fs.Int(&c.QueueSize, "queue-size", "HOOKPIPE_RELAY_QUEUE_SIZE", "frames queued per client before it is cut off as too slow")
	fs.Int(&c.MaxConns, "max-conns", "HOOKPIPE_RELAY_MAX_CONNS", "most WebSocket connections at once")
	fs.Duration(&c.PingInterval, "ping-interval", "HOOKPIPE_RELAY_PING_INTERVAL", "time between pings to each client")
	fs.Duration(&c.PongTimeout, "pong-timeout", "HOOKPIPE_RELAY_PONG_TIMEOUT", "how long a silent client is kept")
	fs.Duration(&c.WriteTimeout, "write-timeout", "HOOKPIPE_RELAY_WRITE_TIMEOUT", "limit of one write to a client")
	fs.Int64(&c.ReadLimit, "read-limit", "HOOKPIPE_RELAY_READ_LIMIT", "largest message a client may send, in bytes")
	fs.Int(&c.MaxUpdateEvents, "max-update-events", "HOOKPIPE_RELAY_MAX_UPDATE_EVENTS", "cap a live update to its newest events (counts and resumes stay exact); 0 sends every event")
	fs.Int(&c.SendBuffer, "send-buffer", "HOOKPIPE_RELAY_SEND_BUFFER", "kernel send buffer of each client socket in bytes; 0 keeps the kernel's autotuning")
	fs.Duration(&c.CountsInterval, "counts-interval", "HOOKPIPE_RELAY_COUNTS_INTERVAL", "longest time between two reads of the counts from Redis")
	fs.Duration(&c.ShutdownTimeout, "shutdown-timeout", "HOOKPIPE_SHUTDOWN_TIMEOUT", "limit of a graceful shutdown")
	fs.Group("Logging")
	c.Log.Bind(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// proxies parses TrustedProxies.
func (c Config) proxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range c.TrustedProxies {
		if !strings.Contains(p, "/") {
			a, err := netip.ParseAddr(p)
			if err != nil {
				return nil, fmt.Errorf("trusted-proxies: %q is not an address or CIDR", p)
			}
			p = netip.PrefixFrom(a, a.BitLen()).String()
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("trusted-proxies: %q is not an address or CIDR", p)
		}
		out = append(out, pfx)
	}
	return out, nil
}

// listValue is a flag of space or comma separated words.
type listValue []string

func (l *listValue) String() string { return strings.Join(*l, " ") }

func (l *listValue) Set(s string) error {
	*l = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	return nil
}
