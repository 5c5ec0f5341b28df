// Package service wires the receiver together: configuration from flags and
// environment, the Redis counter, the stream publisher and the fasthttp
// server, started by Main.Run and stopped by Main.Close.
package service

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hookpipe/hookpipe/task"
	"github.com/hookpipe/hookpipe/task/envflag"
)

// Config is every setting of the receiver. Each field has a flag and an
// environment variable; a flag wins over the variable, the variable over the
// default.
type Config struct {
	// Addr is the listen address; default ":5001". HOOKPIPE_RECEIVER_ADDR.
	Addr string
	// Path is where webhooks are posted; default "/consumetasks".
	// HOOKPIPE_RECEIVER_PATH.
	Path string
	// NATSURL is the NATS server; default "nats://127.0.0.1:4222". NATS_URL.
	NATSURL string
	// RedisURL is the Redis server; default "redis://127.0.0.1:6379". REDIS_URL.
	RedisURL string
	// KeyPrefix starts every Redis key; default "hookpipe:". HOOKPIPE_KEY_PREFIX.
	KeyPrefix string
	// WebhookSecret holds the signing secrets, "whsec_<base64>", separated by
	// spaces; default none, which accepts unsigned requests.
	// HOOKPIPE_WEBHOOK_SECRET.
	WebhookSecret string
	// Tolerance is how far a signed request's timestamp may be from now;
	// default 5m. HOOKPIPE_WEBHOOK_TOLERANCE.
	Tolerance time.Duration
	// MaxBodySize is the largest body accepted, in bytes; default 65536.
	// HOOKPIPE_MAX_BODY_SIZE.
	MaxBodySize int
	// Timeout bounds the Redis and NATS work of one request, after which it
	// is answered 503; default 2s. HOOKPIPE_RECEIVER_TIMEOUT.
	Timeout time.Duration
	// RetryAfter is what a 503 asks the sender to wait; default 1s.
	// HOOKPIPE_RETRY_AFTER.
	RetryAfter time.Duration
	// DedupeTTL is how long a webhook id is remembered; default 24h.
	// HOOKPIPE_DEDUPE_TTL.
	DedupeTTL time.Duration
	// StreamMaxAge drops events older than this from the stream; default 24h.
	// HOOKPIPE_STREAM_MAX_AGE.
	StreamMaxAge time.Duration
	// StreamMaxBytes bounds the stream; default 1 GiB. HOOKPIPE_STREAM_MAX_BYTES.
	StreamMaxBytes int64
	// DuplicateWindow is how long the stream drops a repeated message id;
	// default 10m. A retry whose earlier publish landed unacknowledged is
	// kept out of the stream only within it, so it must be wider than the
	// senders' retry schedules. HOOKPIPE_DUPLICATE_WINDOW.
	DuplicateWindow time.Duration
	// StreamReplicas is the stream's number of copies in a NATS cluster;
	// default 1. HOOKPIPE_STREAM_REPLICAS.
	StreamReplicas int
	// Concurrency is the most connections served at once; default 262144.
	// HOOKPIPE_RECEIVER_CONCURRENCY.
	Concurrency int
	// ReadTimeout bounds reading one request; default 10s.
	// HOOKPIPE_READ_TIMEOUT.
	ReadTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long; default 60s.
	// HOOKPIPE_IDLE_TIMEOUT.
	IdleTimeout time.Duration
	// ShutdownTimeout bounds a graceful shutdown; default 10s.
	// HOOKPIPE_SHUTDOWN_TIMEOUT.
	ShutdownTimeout time.Duration
	// LogFormat is "text" or "json"; default "text". HOOKPIPE_LOG_FORMAT.
	LogFormat string
	// LogLevel is "debug", "info", "warn" or "error"; default "info".
	// HOOKPIPE_LOG_LEVEL.
	LogLevel string
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Addr:            ":5001",
		Path:            "/consumetasks",
		NATSURL:         "nats://127.0.0.1:4222",
		RedisURL:        "redis://127.0.0.1:6379",
		KeyPrefix:       task.DefaultKeyPrefix,
		Tolerance:       task.DefaultTolerance,
		MaxBodySize:     64 << 10,
		Timeout:         2 * time.Second,
		RetryAfter:      time.Second,
		DedupeTTL:       24 * time.Hour,
		StreamMaxAge:    24 * time.Hour,
		StreamMaxBytes:  1 << 30,
		DuplicateWindow: 10 * time.Minute,
		StreamReplicas:  1,
		Concurrency:     256 * 1024,
		ReadTimeout:     10 * time.Second,
		IdleTimeout:     60 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		LogFormat:       "text",
		LogLevel:        "info",
	}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Addr == "":
		return errors.New("receiver: --addr is empty")
	case !strings.HasPrefix(c.Path, "/"):
		return fmt.Errorf("receiver: --path %q must start with /", c.Path)
	case c.MaxBodySize < 64:
		return fmt.Errorf("receiver: --max-body-size %d is below 64 bytes", c.MaxBodySize)
	case c.Timeout <= 0, c.RetryAfter <= 0, c.DedupeTTL < time.Second, c.Tolerance <= 0,
		c.ReadTimeout <= 0, c.IdleTimeout <= 0, c.ShutdownTimeout <= 0:
		return errors.New("receiver: every duration must be positive (dedupe TTL at least 1s)")
	case c.DuplicateWindow > c.StreamMaxAge:
		return errors.New("receiver: --duplicate-window must not exceed --stream-max-age")
	case c.DedupeTTL < c.DuplicateWindow:
		// Past the dedupe TTL a retry is counted again while the stream
		// would still drop it.
		return errors.New("receiver: --dedupe-ttl must be at least --duplicate-window")
	case c.StreamReplicas < 1 || c.StreamReplicas > 5:
		return fmt.Errorf("receiver: --stream-replicas %d must be 1 to 5", c.StreamReplicas)
	case c.Concurrency < 1:
		return errors.New("receiver: --concurrency must be positive")
	case c.LogFormat != "text" && c.LogFormat != "json":
		return fmt.Errorf("receiver: --log-format %q must be text or json", c.LogFormat)
	}
	if _, err := task.ParseSecrets(c.WebhookSecret); err != nil {
		return fmt.Errorf("receiver: --webhook-secret: %w", err)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	return nil
}

// Parse fills c from args and the environment (looked up with getenv) over
// its current values, then validates it. Usage and errors go to out.
func (c *Config) Parse(args []string, getenv func(string) string, out io.Writer) error {
	fs := envflag.New("receiver", "Takes task webhooks, counts them in Redis and publishes them to NATS JetStream.", getenv, out)
	fs.String(&c.Addr, "addr", "HOOKPIPE_RECEIVER_ADDR", "listen address")
	fs.String(&c.Path, "path", "HOOKPIPE_RECEIVER_PATH", "path webhooks are posted to")
	fs.String(&c.NATSURL, "nats-url", "NATS_URL", "NATS server URL")
	fs.String(&c.RedisURL, "redis-url", "REDIS_URL", "Redis server URL")
	fs.String(&c.KeyPrefix, "key-prefix", "HOOKPIPE_KEY_PREFIX", "prefix of every Redis key")
	fs.String(&c.WebhookSecret, "webhook-secret", "HOOKPIPE_WEBHOOK_SECRET", "signing secrets whsec_<base64>, space separated; empty accepts unsigned requests")
	fs.Duration(&c.Tolerance, "webhook-tolerance", "HOOKPIPE_WEBHOOK_TOLERANCE", "largest accepted distance of a signed timestamp from now")
	fs.Int(&c.MaxBodySize, "max-body-size", "HOOKPIPE_MAX_BODY_SIZE", "largest request body in bytes, else 413")
	fs.Duration(&c.Timeout, "timeout", "HOOKPIPE_RECEIVER_TIMEOUT", "deadline for the Redis and NATS work of one request, else 503")
	fs.Duration(&c.RetryAfter, "retry-after", "HOOKPIPE_RETRY_AFTER", "wait a 503 asks for")
	fs.Duration(&c.DedupeTTL, "dedupe-ttl", "HOOKPIPE_DEDUPE_TTL", "how long a webhook id is remembered; at least --duplicate-window")
	fs.Duration(&c.StreamMaxAge, "stream-max-age", "HOOKPIPE_STREAM_MAX_AGE", "age after which the stream drops events (when the receiver creates it)")
	fs.Int64(&c.StreamMaxBytes, "stream-max-bytes", "HOOKPIPE_STREAM_MAX_BYTES", "size bound of the stream (when the receiver creates it)")
	fs.Duration(&c.DuplicateWindow, "duplicate-window", "HOOKPIPE_DUPLICATE_WINDOW", "how long the stream drops a repeated message id; wider than senders' retry schedules")
	fs.Int(&c.StreamReplicas, "stream-replicas", "HOOKPIPE_STREAM_REPLICAS", "copies of the stream in a NATS cluster (when the receiver creates it)")
	fs.Int(&c.Concurrency, "concurrency", "HOOKPIPE_RECEIVER_CONCURRENCY", "most connections served at once")
	fs.Duration(&c.ReadTimeout, "read-timeout", "HOOKPIPE_READ_TIMEOUT", "deadline for reading one request")
	fs.Duration(&c.IdleTimeout, "idle-timeout", "HOOKPIPE_IDLE_TIMEOUT", "idle keep-alive connections are closed after this")
	fs.Duration(&c.ShutdownTimeout, "shutdown-timeout", "HOOKPIPE_SHUTDOWN_TIMEOUT", "deadline of a graceful shutdown")
	fs.String(&c.LogFormat, "log-format", "HOOKPIPE_LOG_FORMAT", "log format: text or json")
	fs.String(&c.LogLevel, "log-level", "HOOKPIPE_LOG_LEVEL", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return c.Validate()
}
