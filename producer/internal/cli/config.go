// Package cli is the producer's command line: its configuration, read from
// flags and environment variables one to one, and the serve, send, record
// and replay commands.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hookpipe/hookpipe/producer/internal/generate"
	"github.com/hookpipe/hookpipe/producer/internal/record"
	"github.com/hookpipe/hookpipe/producer/internal/send"
	"github.com/hookpipe/hookpipe/task"
)

// Config holds every setting of every command. Flags override environment
// variables, which override the defaults given here.
type Config struct {
	// Addr is where serve listens; default ":5000".
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
	// RedisURL is the Redis that --counts reads; default
	// "redis://127.0.0.1:6379".
	RedisURL string
	// KeyPrefix starts the Redis keys --counts reads; default "hookpipe:".
	KeyPrefix string
	// LogFormat is "text" or "json"; default "text".
	LogFormat string
	// LogLevel is "debug", "info", "warn" or "error"; default "info".
	LogLevel string
	// ShutdownTimeout bounds the drain on exit; default 10s.
	ShutdownTimeout time.Duration
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	r := send.DefaultRetry()
	return Config{
		Addr:            ":5000",
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
		RedisURL:        "redis://127.0.0.1:6379",
		KeyPrefix:       task.DefaultKeyPrefix,
		LogFormat:       "text",
		LogLevel:        "info",
		ShutdownTimeout: 10 * time.Second,
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
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("config: log-format must be text or json, got %q", c.LogFormat)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("config: shutdown-timeout must be above 0")
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

// binder registers flags whose defaults come from the environment.
type binder struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
	info   map[string]flagInfo
}

// flagInfo is what the usage text says of a flag besides its usage.
type flagInfo struct {
	kind, env string
	secret    bool
}

func (b *binder) bind(v flag.Value, kind, name, env, usage string) {
	if s := b.getenv(env); s != "" {
		if err := v.Set(s); err != nil {
			b.errs = append(b.errs, fmt.Errorf("config: %s=%q: %w", env, s, err))
		}
	}
	b.fs.Var(v, name, usage)
	b.info[name] = flagInfo{kind: kind, env: env}
}

func (b *binder) str(p *string, name, env, usage string) {
	b.bind((*stringValue)(p), "string", name, env, usage)
}
func (b *binder) integer(p *int, name, env, usage string) {
	b.bind((*intValue)(p), "int", name, env, usage)
}
func (b *binder) int64v(p *int64, name, env, usage string) {
	b.bind((*int64Value)(p), "int", name, env, usage)
}
func (b *binder) float(p *float64, name, env, usage string) {
	b.bind((*floatValue)(p), "number", name, env, usage)
}
func (b *binder) boolean(p *bool, name, env, usage string) {
	b.bind((*boolValue)(p), "", name, env, usage)
}
func (b *binder) duration(p *time.Duration, name, env, usage string) {
	b.bind((*durationValue)(p), "duration", name, env, usage)
}

// printDefaults lists every flag with its type, environment variable and
// default (the effective one, environment applied).
func (b *binder) printDefaults(w io.Writer) {
	b.fs.VisitAll(func(f *flag.Flag) {
		in := b.info[f.Name]
		head := "  --" + f.Name
		if in.kind != "" {
			head += " " + in.kind
		}
		def := f.DefValue
		if in.kind == "string" {
			def = strconv.Quote(def)
		}
		if in.secret && f.DefValue != "" {
			def = "(set, not shown)"
		}
		fmt.Fprintf(w, "%s\n    \t%s (env %s, default %s)\n", head, f.Usage, in.env, def)
	})
}

type (
	stringValue   string
	intValue      int
	int64Value    int64
	floatValue    float64
	boolValue     bool
	durationValue time.Duration
)

func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) String() string     { return string(*v) }

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not a whole number")
	}
	*v = intValue(n)
	return nil
}
func (v *intValue) String() string { return strconv.Itoa(int(*v)) }

func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errors.New("not a whole number")
	}
	*v = int64Value(n)
	return nil
}
func (v *int64Value) String() string { return strconv.FormatInt(int64(*v), 10) }

func (v *floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("not a number")
	}
	*v = floatValue(f)
	return nil
}
func (v *floatValue) String() string { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("not true or false")
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }

// Set takes a Go duration ("250ms") or, as the tutorial's WAIT_TIME, a
// bare number of seconds ("1", "0.5").
func (v *durationValue) Set(s string) error {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		*v = durationValue(time.Duration(f * float64(time.Second)))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration such as 1s, 250ms or a number of seconds")
	}
	*v = durationValue(d)
	return nil
}
func (v *durationValue) String() string { return time.Duration(*v).String() }
