package relay

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

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
	// Origins are the browser origins allowed besides the relay's own host
	// (any port of the host the request was addressed to); "*" allows all.
	// Default "http://localhost:8080 http://127.0.0.1:8080", the dashboard
	// (--origins, HOOKPIPE_RELAY_ORIGINS, space or comma separated).
	Origins []string
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
		Origins:         []string{"http://localhost:8080", "http://127.0.0.1:8080"},
		Config:          fanout.DefaultConfig(),
		CountsInterval:  time.Second,
		ShutdownTimeout: 10 * time.Second,
		Log:             logging.DefaultConfig(),
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	var errs []error
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
	fs.Var((*listValue)(&c.Origins), "origins", "HOOKPIPE_RELAY_ORIGINS", "browser origins allowed besides the relay's own host, space or comma separated; * allows all")
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

// listValue is a flag of space or comma separated words.
type listValue []string

func (l *listValue) String() string { return strings.Join(*l, " ") }

func (l *listValue) Set(s string) error {
	*l = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	return nil
}
