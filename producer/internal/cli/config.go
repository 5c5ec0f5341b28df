// Package cli is the producer's command line: its configuration, read from
// flags and environment variables one to one, and the serve, send, record
// and replay commands.
package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/access"
	"github.com/hookpipe/hookpipe/plumbing/logging"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/producer/internal/generate"
	"github.com/hookpipe/hookpipe/producer/internal/record"
	"github.com/hookpipe/hookpipe/producer/internal/send"
	"github.com/hookpipe/hookpipe/task"
)

// Config holds every setting of every command. Flags override environment
// variables, which override the defaults given here.
type Config struct {
	// Addr is where serve listens; default "127.0.0.1:5000".
	Addr string
	// ReceiverURL is the webhook endpoint; default
	// "http://localhost:5001/consumetasks".
	ReceiverURL string
	// MinTasks is the smallest random batch size; default 1.
	MinTasks int
	// MaxTasks is the largest random batch size; default 100.
	MaxTasks int
	// Size, when above 0, fixes the batch size instead; default 0.
	Size int
	// Batches is how many batches send and record make; default 1.
	Batches int
	// Wait is the pause between two sends of a batch; default 1s, 0 for as
	// fast as possible. A bare number is seconds, as the tutorial's
	// WAIT_TIME.
	Wait time.Duration
	// Seed makes generation deterministic: the same seed gives the same
	// batches. Default -1: a random seed, logged so that a run can be
	// repeated.
	Seed int64
	// WebhookSecret signs every request ("whsec_<base64>"); default empty,
	// unsigned.
	WebhookSecret string
	// Timeout bounds one attempt; default 5s.
	Timeout time.Duration
	// RetryAttempts is the most attempts per task, the first included;
	// default 10.
	RetryAttempts int
	// RetryInitial is the first backoff delay, doubled after each retry;
	// default 200ms.
	RetryInitial time.Duration
	// RetryMax caps the backoff delay; default 5s.
	RetryMax time.Duration
	// RetryMaxElapsed bounds a task's retries in time; default 1m, below
	// the receiver's 10 minute duplicate window.
	RetryMaxElapsed time.Duration
	// Concurrency is the most requests in flight; default 1.
	Concurrency int
	// Rate limits sends to this many tasks per second; default 0, none.
	Rate float64
	// Out is the file record writes; default
	// "testdata/batches/seed-<seed>.jsonl".
	Out string
	// SameIDs makes replay send the recorded webhook ids instead of fresh
	// ones; default false.
	SameIDs bool
	// Speed is replay's pace: "recorded", a factor such as "10", or "max";
	// default "recorded".
	Speed string
	// Counts makes replay print the receiver's counts in Redis before and
	// after; default false.
	Counts bool
	// Redis is where --counts reads; default redis://127.0.0.1:6379.
	Redis redisconn.Options
	// KeyPrefix starts the Redis keys --counts reads; default "hookpipe:".
	KeyPrefix string
	// Log says how the producer logs; default text at info.
	Log logging.Config
	// ShutdownTimeout bounds the drain on exit; default 10s.
	ShutdownTimeout time.Duration
	// MaxBatchSize bounds a batch the page may start; default 10,000.
	MaxBatchSize int
	// MaxRunning bounds the batches the page runs at once; default 4.
	MaxRunning int
	// MaxStreams bounds the page's open event streams; default 32.
	MaxStreams int
	// Access holds the token the page requires (required beyond loopback)
	// and the host names it answers to.
	Access access.Config
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	r := send.DefaultRetry()
	return Config{
		Addr:            task.LoopbackAddr(task.ProducerPort),
		ReceiverURL:     send.DefaultURL,
		MinTasks:        1,
		MaxTasks:        100,
		Batches:         1,
		Wait:            time.Second,
		Seed:            -1,
		Timeout:         5 * time.Second,
		RetryAttempts:   r.Attempts,
		RetryInitial:    r.Initial,
		RetryMax:        r.Max,
		RetryMaxElapsed: r.MaxElapsed,
		Concurrency:     1,
		Speed:           "recorded",
		Redis:           redisconn.DefaultOptions(),
		KeyPrefix:       task.DefaultKeyPrefix,
		Log:             logging.DefaultConfig(),
		ShutdownTimeout: 10 * time.Second,
		MaxBatchSize:    10000,
		MaxRunning:      4,
		MaxStreams:      32,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if c.MinTasks < 1 || c.MaxTasks < c.MinTasks || c.MaxTasks > generate.MaxBatchSize {
		return fmt.Errorf("config: want 1 <= min-tasks <= max-tasks <= %d, got %d and %d", generate.MaxBatchSize, c.MinTasks, c.MaxTasks)
	}
	if c.Size < 0 || c.Size > generate.MaxBatchSize {
		return fmt.Errorf("config: size must be from 0 to %d, got %d", generate.MaxBatchSize, c.Size)
	}
	if c.Batches < 1 {
		return fmt.Errorf("config: batches must be at least 1, got %d", c.Batches)
	}
	if c.Wait < 0 {
		return errors.New("config: wait must not be negative")
	}
	if c.WebhookSecret != "" {
		if _, err := task.ParseSecret(c.WebhookSecret); err != nil {
			return fmt.Errorf("config: webhook-secret: %w", err)
		}
	}
	if c.Concurrency < 1 {
		return fmt.Errorf("config: concurrency must be at least 1, got %d", c.Concurrency)
	}
	if _, err := record.ParseSpeed(c.Speed); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := c.Log.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := c.Redis.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("config: shutdown-timeout must be above 0")
	}
	if c.MaxBatchSize < 1 || c.MaxBatchSize > generate.MaxBatchSize || c.MaxRunning < 1 || c.MaxStreams < 1 {
		return fmt.Errorf("config: max-batch-size must be from 1 to %d, max-running and max-streams at least 1", generate.MaxBatchSize)
	}
	return c.senderConfig().Validate()
}

func (c Config) senderConfig() send.Config {
	var secret task.Secret
	if c.WebhookSecret != "" {
		secret, _ = task.ParseSecret(c.WebhookSecret)
	}
	return send.Config{
		URL:     c.ReceiverURL,
		Secret:  secret,
		Timeout: c.Timeout,
		Retry: send.Retry{
			Attempts:   c.RetryAttempts,
			Initial:    c.RetryInitial,
			Max:        c.RetryMax,
			MaxElapsed: c.RetryMaxElapsed,
		},
		Concurrency: c.Concurrency,
		Rate:        c.Rate,
	}
}
