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

	"github.com/hookpipe/hookpipe/plumbing/access"
	"github.com/hookpipe/hookpipe/plumbing/envflag"
	"github.com/hookpipe/hookpipe/plumbing/logging"
	"github.com/hookpipe/hookpipe/plumbing/natsconn"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/plumbing/taskstream"
	"github.com/hookpipe/hookpipe/task"
)

// Config is every setting of the receiver. Each field has a flag and an
// environment variable; a flag wins over the variable, the variable over the
// default.
type Config struct {
	// Addr is the listen address; default "127.0.0.1:5001".
	// HOOKPIPE_RECEIVER_ADDR.
	Addr string
	// Path is where webhooks are posted; default "/consumetasks".
	// HOOKPIPE_RECEIVER_PATH.
	Path string
	// ReusePort lets several receivers on one host listen on one port
	// (SO_REUSEPORT), the kernel spreading connections over them; default
	// off, so that a stale receiver never takes traffic by surprise.
	// HOOKPIPE_REUSEPORT.
	ReusePort bool
	// NATS is where NATS is and how to log in; default
	// nats://127.0.0.1:4222. NATS_URL and others: see natsconn.Options.
	NATS natsconn.Options
	// Redis is one server, a cluster or Sentinel; default
	// redis://127.0.0.1:6379. REDIS_URL: see redisconn.Options.
	Redis redisconn.Options
	// KeyPrefix starts every Redis key; default "hookpipe:". HOOKPIPE_KEY_PREFIX.
	KeyPrefix string
	// WebhookSecret holds the signing secrets, "whsec_<base64>", separated by
	// spaces; default none, which accepts unsigned requests. Parse refuses
	// HOOKPIPE_WEBHOOK_SECRET or --webhook-secret set but blank: unset is
	// how to take unsigned webhooks.
	WebhookSecret string
	// AllowUnsigned lets a receiver without a secret listen beyond
	// loopback; default false: anyone who can reach it could then add tasks
	// (--allow-unsigned, HOOKPIPE_ALLOW_UNSIGNED).
	AllowUnsigned bool
	// Access holds the access token /metrics requires (required beyond
	// loopback) and the host names an unsigned receiver answers to.
	Access access.Config
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
	// DedupeTTL is how long after its task was stored a webhook id is
	// remembered in Redis; default 24h, at least the duplicate window and
	// at most the stream's max age (the fold rebuilds the ids from the
	// stream when Redis loses them). HOOKPIPE_DEDUPE_TTL.
	DedupeTTL time.Duration
	// KeepBatches is how many of the most recently active batches Redis
	// and the checkpoints keep; default 10,000. HOOKPIPE_KEEP_BATCHES.
	KeepBatches int
	// Stream holds the limits of the TASKS stream: max age 24h
	// (HOOKPIPE_STREAM_MAX_AGE), max bytes 1 GiB (HOOKPIPE_STREAM_MAX_BYTES),
	// duplicate window 10m (HOOKPIPE_DUPLICATE_WINDOW), which must be wider
	// than the senders' retry schedules, and replicas 1
	// (HOOKPIPE_STREAM_REPLICAS).
	Stream task.StreamSettings
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
	// Log says how the receiver logs; default text at info.
	// HOOKPIPE_LOG_FORMAT, HOOKPIPE_LOG_LEVEL.
	Log logging.Config
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Addr:            task.LoopbackAddr(task.ReceiverPort),
		Path:            task.ReceiverPath,
		NATS:            natsconn.DefaultOptions(),
		Redis:           redisconn.DefaultOptions(),
		KeyPrefix:       task.DefaultKeyPrefix,
		Tolerance:       task.DefaultTolerance,
		MaxBodySize:     64 << 10,
		Timeout:         2 * time.Second,
		RetryAfter:      time.Second,
		DedupeTTL:       24 * time.Hour,
		KeepBatches:     10000,
		Stream:          task.DefaultStreamSettings(),
		Concurrency:     256 * 1024,
		ReadTimeout:     10 * time.Second,
		IdleTimeout:     60 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		Log:             logging.DefaultConfig(),
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
	case c.DedupeTTL < c.Stream.Duplicates:
		// Past the dedupe TTL a retry is counted again while the stream
		// would still drop it.
		return errors.New("receiver: --dedupe-ttl must be at least --duplicate-window")
	case c.DedupeTTL > c.Stream.MaxAge:
		// Ids the stream no longer holds cannot be rebuilt after a Redis
		// loss, and would be remembered beyond their task.
		return errors.New("receiver: --dedupe-ttl must not exceed --stream-max-age")
	case c.KeepBatches < 1000 || c.KeepBatches > 20000:
		return fmt.Errorf("receiver: --keep-batches %d must be 1,000 to 20,000 (a checkpoint must fit one NATS message)", c.KeepBatches)
	case c.Concurrency < 1:
		return errors.New("receiver: --concurrency must be positive")
	}
	if err := taskstream.Validate(c.Stream); err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	if err := c.Log.Validate(); err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	if err := c.NATS.Validate(); err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	if err := c.Redis.Validate(); err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	secrets, err := task.ParseSecrets(c.WebhookSecret)
	if err != nil {
		return fmt.Errorf("receiver: --webhook-secret: %w", err)
	}
	if len(secrets) == 0 && !access.IsLoopback(c.Addr) && !c.AllowUnsigned {
		return fmt.Errorf("receiver: listening on %s, beyond loopback, without --webhook-secret: anyone who can reach it could add tasks; set HOOKPIPE_WEBHOOK_SECRET, or --allow-unsigned to take unsigned webhooks all the same", c.Addr)
	}
	if err := c.Access.Validate(c.Addr); err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	return nil
}

// Parse fills c from args and the environment (looked up with lookupEnv,
// such as os.LookupEnv) over its current values, then validates it. A
// secret set but blank is an error, not none. Usage and errors go to out.
func (c *Config) Parse(args []string, lookupEnv func(string) (string, bool), out io.Writer) error {
	fs := envflag.NewLookup("receiver", "Takes task webhooks, counts them in Redis and publishes them to NATS JetStream.", lookupEnv, out)
	fs.Group("HTTP")
	fs.String(&c.Addr, "addr", "HOOKPIPE_RECEIVER_ADDR", "listen address")
	fs.String(&c.Path, "path", "HOOKPIPE_RECEIVER_PATH", "path webhooks are posted to")
	fs.Bool(&c.ReusePort, "reuseport", "HOOKPIPE_REUSEPORT", "share the port with other receivers on this host (SO_REUSEPORT)")
	fs.Group("NATS and Redis")
	c.NATS.Bind(fs)
	c.Redis.Bind(fs)
	fs.String(&c.KeyPrefix, "key-prefix", "HOOKPIPE_KEY_PREFIX", "prefix of every Redis key")
	fs.Group("Webhooks")
	fs.Secret(&c.WebhookSecret, "webhook-secret", "HOOKPIPE_WEBHOOK_SECRET", "signing secrets whsec_<base64>, space separated; unset accepts unsigned requests, on loopback only unless --allow-unsigned")
	fs.Bool(&c.AllowUnsigned, "allow-unsigned", "HOOKPIPE_ALLOW_UNSIGNED", "take unsigned webhooks on an address beyond loopback")
	fs.Duration(&c.Tolerance, "webhook-tolerance", "HOOKPIPE_WEBHOOK_TOLERANCE", "largest accepted distance of a signed timestamp from now")
	fs.Int(&c.MaxBodySize, "max-body-size", "HOOKPIPE_MAX_BODY_SIZE", "largest request body in bytes, else 413")
	fs.Duration(&c.Timeout, "timeout", "HOOKPIPE_RECEIVER_TIMEOUT", "deadline for the Redis and NATS work of one request, else 503")
	fs.Duration(&c.RetryAfter, "retry-after", "HOOKPIPE_RETRY_AFTER", "wait a 503 asks for")
	fs.Duration(&c.DedupeTTL, "dedupe-ttl", "HOOKPIPE_DEDUPE_TTL", "how long after its task was stored a webhook id is remembered; from --duplicate-window to --stream-max-age")
	fs.Int(&c.KeepBatches, "keep-batches", "HOOKPIPE_KEEP_BATCHES", "how many of the most recently active batches are kept")
	fs.Group("Stream")
	taskstream.Bind(fs, &c.Stream)
	fs.Group("Limits")
	fs.Int(&c.Concurrency, "concurrency", "HOOKPIPE_RECEIVER_CONCURRENCY", "most connections served at once")
	fs.Duration(&c.ReadTimeout, "read-timeout", "HOOKPIPE_READ_TIMEOUT", "deadline for reading one request")
	fs.Duration(&c.IdleTimeout, "idle-timeout", "HOOKPIPE_IDLE_TIMEOUT", "idle keep-alive connections are closed after this")
	fs.Duration(&c.ShutdownTimeout, "shutdown-timeout", "HOOKPIPE_SHUTDOWN_TIMEOUT", "deadline of a graceful shutdown")
	fs.Group("Access")
	c.Access.Bind(fs)
	fs.Group("Logging")
	c.Log.Bind(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return c.Validate()
}
