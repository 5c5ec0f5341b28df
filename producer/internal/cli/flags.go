package cli

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// flagGroups says which settings a command takes.
type flagGroups uint

const (
	groupServe flagGroups = 1 << iota
	groupGenerate
	groupSend
	groupRecord
	groupReplay
)

// newFlagSet returns the flags of one command, bound to cfg, with defaults
// from the environment already applied.
func newFlagSet(name, synopsis string, groups flagGroups, cfg *Config, getenv func(string) string, out io.Writer) (*flag.FlagSet, []error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	b := &binder{fs: fs, getenv: getenv, info: make(map[string]flagInfo)}
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: %s\n\n", synopsis)
		fmt.Fprintln(out, "Flags (each also read from the environment variable named):")
		b.printDefaults(out)
	}
	if groups&groupServe != 0 {
		b.str(&cfg.Addr, "addr", "HOOKPIPE_PRODUCER_ADDR", "address the page listens on")
		b.duration(&cfg.ShutdownTimeout, "shutdown-timeout", "HOOKPIPE_SHUTDOWN_TIMEOUT", "how long to drain on exit")
	}
	if groups&(groupGenerate|groupRecord) != 0 {
		b.integer(&cfg.MinTasks, "min-tasks", "MIN_NBR_TASKS", "smallest random batch size")
		b.integer(&cfg.MaxTasks, "max-tasks", "MAX_NBR_TASKS", "largest random batch size")
		b.int64v(&cfg.Seed, "seed", "HOOKPIPE_SEED", "seed for deterministic batches; negative picks a random one")
		b.duration(&cfg.Wait, "wait", "WAIT_TIME", "pause between two sends (a duration, or seconds); 0 for as fast as possible")
	}
	if groups&(groupGenerate|groupRecord) != 0 && groups&groupServe == 0 {
		b.integer(&cfg.Size, "size", "HOOKPIPE_BATCH_SIZE", "fixed batch size; 0 draws one between min-tasks and max-tasks")
		b.integer(&cfg.Batches, "batches", "HOOKPIPE_BATCHES", "number of batches")
	}
	if groups&groupSend != 0 {
		b.str(&cfg.ReceiverURL, "receiver-url", "WEBHOOK_RECEIVER_URL", "receiver endpoint")
		b.str(&cfg.WebhookSecret, "webhook-secret", "HOOKPIPE_WEBHOOK_SECRET", "signing secret whsec_<base64>; empty sends unsigned")
		b.info["webhook-secret"] = flagInfo{kind: "string", env: "HOOKPIPE_WEBHOOK_SECRET", secret: true}
		b.duration(&cfg.Timeout, "timeout", "HOOKPIPE_TIMEOUT", "time limit of one attempt")
		b.integer(&cfg.RetryAttempts, "retry-attempts", "HOOKPIPE_RETRY_ATTEMPTS", "most attempts per task, the first included (1: no retry)")
		b.duration(&cfg.RetryInitial, "retry-initial", "HOOKPIPE_RETRY_INITIAL", "first retry delay, doubled after each retry")
		b.duration(&cfg.RetryMax, "retry-max", "HOOKPIPE_RETRY_MAX", "longest retry delay")
		b.duration(&cfg.RetryMaxElapsed, "retry-max-elapsed", "HOOKPIPE_RETRY_MAX_ELAPSED", "time after which a task's retries stop and it is reported failed")
		b.integer(&cfg.Concurrency, "concurrency", "HOOKPIPE_CONCURRENCY", "most requests in flight")
		b.float(&cfg.Rate, "rate", "HOOKPIPE_RATE", "tasks per second at most; 0 for no limit")
	}
	if groups&groupRecord != 0 {
		b.str(&cfg.Out, "out", "HOOKPIPE_RECORD_OUT", "file to write (default testdata/batches/seed-<seed>.jsonl)")
	}
	if groups&groupReplay != 0 {
		b.boolean(&cfg.SameIDs, "same-ids", "HOOKPIPE_SAME_IDS", "send the recorded webhook ids instead of fresh ones (an idempotency test)")
		b.str(&cfg.Speed, "speed", "HOOKPIPE_SPEED", "pace: recorded, a factor such as 10 (ten times faster), or max")
		b.boolean(&cfg.Counts, "counts", "HOOKPIPE_SHOW_COUNTS", "print the counts in Redis before and after")
		b.str(&cfg.RedisURL, "redis-url", "REDIS_URL", "Redis that --counts reads")
		b.str(&cfg.KeyPrefix, "key-prefix", "HOOKPIPE_KEY_PREFIX", "prefix of the Redis keys --counts reads")
	}
	b.str(&cfg.LogFormat, "log-format", "HOOKPIPE_LOG_FORMAT", "log format: text or json")
	b.str(&cfg.LogLevel, "log-level", "HOOKPIPE_LOG_LEVEL", "log level: debug, info, warn or error")
	return fs, b.errs
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("config: log-level must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
