package cli

import (
	"io"

	"github.com/hookpipe/hookpipe/plumbing/envflag"
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

// newFlagSet returns the flags of one command, bound to cfg.
func newFlagSet(name, about string, groups flagGroups, cfg *Config, getenv func(string) string, out io.Writer) *envflag.Set {
	s := envflag.New(name, about, getenv, out)
	if groups&groupServe != 0 {
		s.Group("Page")
		s.String(&cfg.Addr, "addr", "HOOKPIPE_PRODUCER_ADDR", "address the page listens on")
		s.Duration(&cfg.ShutdownTimeout, "shutdown-timeout", "HOOKPIPE_SHUTDOWN_TIMEOUT", "how long to drain on exit")
		s.Int(&cfg.MaxBatchSize, "max-batch-size", "HOOKPIPE_MAX_BATCH_SIZE", "largest batch the page may start")
		s.Int(&cfg.MaxRunning, "max-running", "HOOKPIPE_MAX_RUNNING", "most batches the page runs at once")
		s.Int(&cfg.MaxStreams, "max-streams", "HOOKPIPE_MAX_STREAMS", "most pages following the live log at once")
		cfg.Access.Bind(s)
	}
	if groups&(groupGenerate|groupRecord) != 0 {
		s.Group("Batches")
		s.Int(&cfg.MinTasks, "min-tasks", "MIN_NBR_TASKS", "smallest random batch size")
		s.Int(&cfg.MaxTasks, "max-tasks", "MAX_NBR_TASKS", "largest random batch size")
		s.Int64(&cfg.Seed, "seed", "HOOKPIPE_SEED", "seed for deterministic batches; negative picks a random one")
		s.Seconds(&cfg.Wait, "wait", "WAIT_TIME", "pause between two sends (a duration, or seconds); 0 for as fast as possible")
		if groups&groupServe == 0 {
			s.Int(&cfg.Size, "size", "HOOKPIPE_BATCH_SIZE", "fixed batch size; 0 draws one between min-tasks and max-tasks")
			s.Int(&cfg.Batches, "batches", "HOOKPIPE_BATCHES", "number of batches")
		}
	}
	if groups&groupSend != 0 {
		s.Group("Sending")
		s.String(&cfg.ReceiverURL, "receiver-url", "WEBHOOK_RECEIVER_URL", "receiver endpoint")
		s.Secret(&cfg.WebhookSecret, "webhook-secret", "HOOKPIPE_WEBHOOK_SECRET", "signing secret whsec_<base64>; empty sends unsigned")
		s.Duration(&cfg.Timeout, "timeout", "HOOKPIPE_TIMEOUT", "time limit of one attempt")
		s.Int(&cfg.RetryAttempts, "retry-attempts", "HOOKPIPE_RETRY_ATTEMPTS", "most attempts per task, the first included (1: no retry)")
		s.Duration(&cfg.RetryInitial, "retry-initial", "HOOKPIPE_RETRY_INITIAL", "first retry delay, doubled after each retry")
		s.Duration(&cfg.RetryMax, "retry-max", "HOOKPIPE_RETRY_MAX", "longest retry delay")
		s.Duration(&cfg.RetryMaxElapsed, "retry-max-elapsed", "HOOKPIPE_RETRY_MAX_ELAPSED", "time after which a task's retries stop and it is reported failed")
		s.Int(&cfg.Concurrency, "concurrency", "HOOKPIPE_CONCURRENCY", "most requests in flight")
		s.Float64(&cfg.Rate, "rate", "HOOKPIPE_RATE", "tasks per second at most; 0 for no limit")
	}
	if groups&groupRecord != 0 {
		s.Group("Recording")
		s.String(&cfg.Out, "out", "HOOKPIPE_RECORD_OUT", "file to write (default testdata/batches/seed-<seed>.jsonl)")
	}
	if groups&groupReplay != 0 {
		s.Group("Replay")
		s.Bool(&cfg.SameIDs, "same-ids", "HOOKPIPE_SAME_IDS", "send the recorded webhook ids instead of fresh ones (an idempotency test)")
		s.String(&cfg.Speed, "speed", "HOOKPIPE_SPEED", "pace: recorded, a factor such as 10 (ten times faster), or max")
		s.Bool(&cfg.Counts, "counts", "HOOKPIPE_SHOW_COUNTS", "print the counts in Redis before and after")
		cfg.Redis.Bind(s)
		s.String(&cfg.KeyPrefix, "key-prefix", "HOOKPIPE_KEY_PREFIX", "prefix of the Redis keys --counts reads")
	}
	s.Group("Logging")
	cfg.Log.Bind(s)
	return s
}
