// Package send delivers tasks as Standard Webhooks: one POST per task, with
// a webhook id that stays the same across retries, a timestamp and, when a
// secret is set, a signature.
//
// Delivery is at-least-once and never silent: connection errors, timeouts,
// 408, 429 and 5xx are retried with exponential backoff and jitter,
// honouring Retry-After, until a bounded schedule runs out; every task ends
// in a Result that says what became of it. The receiver's idempotency on the
// webhook id makes the retries safe.
package send

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"github.com/hookpipe/hookpipe/plumbing/backoff"
	"github.com/hookpipe/hookpipe/task"
)

// Config tunes a Sender. The zero value of each field means its default.
type Config struct {
	// URL is the receiver's endpoint; default DefaultURL.
	URL string
	// Secret signs every request when set; default none (unsigned).
	Secret task.Secret
	// Timeout bounds one attempt, from dialling to the end of the answer;
	// default 5s.
	Timeout time.Duration
	// Retry is the retry schedule; see Retry for its defaults.
	Retry Retry
	// Concurrency is the most requests in flight at once; default 1, as
	// the tutorial sent one task at a time.
	Concurrency int
	// Rate limits deliveries to this many tasks per second across all
	// workers; default 0, no limit.
	Rate float64
	// UserAgent is sent with every request; default "hookpipe-producer".
	UserAgent string
}

// DefaultURL is the tutorial's receiver endpoint.
var DefaultURL = task.DefaultReceiverURL()

// Retry is a bounded schedule of exponential backoff with jitter.
type Retry struct {
	// Attempts is the most attempts per task, the first one included;
	// default 10. 1 disables retries.
	Attempts int
	// Initial is the delay before the first retry; default 200ms. Each
	// further delay doubles, up to Max.
	Initial time.Duration
	// Max caps the delay between two attempts; default 5s. A Retry-After
	// longer than Max is still honoured, within MaxElapsed.
	Max time.Duration
	// MaxElapsed bounds the time from a task's first attempt to its last;
	// default 1m. It must stay below the receiver's duplicate window (10
	// minutes) so that a late retry is still recognised as one.
	MaxElapsed time.Duration
}

// DefaultConfig returns the defaults spelled out on Config and Retry.
func DefaultConfig() Config {
	return Config{
		URL:         DefaultURL,
		Timeout:     5 * time.Second,
		Retry:       DefaultRetry(),
		Concurrency: 1,
		UserAgent:   "hookpipe-producer",
	}
}

// DefaultRetry returns the default schedule: up to 10 attempts, 200ms
// doubling to 5s, within one minute.
func DefaultRetry() Retry {
	return Retry{Attempts: 10, Initial: 200 * time.Millisecond, Max: 5 * time.Second, MaxElapsed: time.Minute}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.URL == "":
		return errors.New("send: receiver URL is empty")
	case c.Timeout < 0:
		return errors.New("send: timeout must not be negative")
	case c.Concurrency < 0:
		return errors.New("send: concurrency must not be negative")
	case c.Rate < 0:
		return errors.New("send: rate must not be negative")
	}
	return c.Retry.Validate()
}

// Validate reports the first setting of the schedule that cannot work.
func (r Retry) Validate() error {
	switch {
	case r.Attempts < 0:
		return errors.New("send: retry attempts must not be negative")
	case r.Initial < 0 || r.Max < 0 || r.MaxElapsed < 0:
		return errors.New("send: retry delays must not be negative")
	case r.MaxElapsed >= 10*time.Minute:
		return errors.New("send: retry max elapsed must stay below the receiver's 10 minute duplicate window")
	}
	return nil
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.URL == "" {
		c.URL = d.URL
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.Concurrency == 0 {
		c.Concurrency = d.Concurrency
	}
	if c.UserAgent == "" {
		c.UserAgent = d.UserAgent
	}
	r := &c.Retry
	if r.Attempts == 0 {
		r.Attempts = d.Retry.Attempts
	}
	if r.Initial == 0 {
		r.Initial = d.Retry.Initial
	}
	if r.Max == 0 {
		r.Max = d.Retry.Max
	}
	if r.MaxElapsed == 0 {
		r.MaxElapsed = d.Retry.MaxElapsed
	}
}

// Delivery is one task to send under one webhook id.
type Delivery struct {
	// WebhookID is the idempotency key, the same for every attempt.
	WebhookID string
	Task      task.Task
}

// Outcome says what became of a delivery.
type Outcome int

// Outcomes of a delivery.
const (
	// Accepted: the receiver stored the task (2xx).
	Accepted Outcome = iota
	// Duplicate: the receiver had the webhook id already (2xx saying so).
	Duplicate
	// Failed: a final refusal (4xx other than 408 and 429) or the retry
	// schedule ran out. The task may not be stored.
	Failed
	// Cancelled: the send was stopped before an answer; the task may or
	// may not be stored.
	Cancelled
)

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Duplicate:
		return "duplicate"
	case Failed:
		return "failed"
	case Cancelled:
		return "cancelled"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// MarshalText encodes the outcome as its name.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// Result is the end of one delivery.
type Result struct {
	Delivery Delivery
	Outcome  Outcome
	// Status is the HTTP status of the last answer, 0 when there was none.
	Status int
	// Seq is the task's stream sequence the receiver answered, 0 when it
	// did not say.
	Seq uint64
	// Attempts counts requests made, the first included.
	Attempts int
	// Err says why a delivery failed or was cancelled; nil otherwise.
	Err error
	// Duration runs from the first attempt to the end.
	Duration time.Duration
}

// Retries is the number of attempts after the first.
func (r Result) Retries() int { return max(0, r.Attempts-1) }

// RetryEvent describes one attempt that will be retried, for live logs.
type RetryEvent struct {
	Delivery Delivery
	// Attempt is the number of the attempt that failed, from 1.
	Attempt int
	// Status is its HTTP status, 0 for a connection error or timeout.
	Status int
	// Err is the connection error or the status as an error.
	Err error
	// Delay is the wait before the next attempt.
	Delay time.Duration
}

// Sender posts deliveries to one receiver. It is safe for concurrent use;
// Concurrency and Rate apply across all callers.
type Sender struct {
	cfg     Config
	client  *http.Client
	slots   chan struct{}
	limiter *rate.Limiter
	// OnRetry, when set before the first Send, is called before each wait
	// between attempts.
	OnRetry func(RetryEvent)
}

// New returns a Sender for cfg, whose zero fields take their defaults.
func New(cfg Config) (*Sender, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Keep one idle connection per worker so that a batch reuses them.
	tr.MaxIdleConnsPerHost = cfg.Concurrency
	tr.MaxIdleConns = max(tr.MaxIdleConns, cfg.Concurrency)
	s := &Sender{
		cfg:    cfg,
		client: &http.Client{Transport: tr, Timeout: cfg.Timeout},
		slots:  make(chan struct{}, cfg.Concurrency),
	}
	if cfg.Rate > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	return s, nil
}

// Config returns the sender's settings with defaults filled in.
func (s *Sender) Config() Config { return s.cfg }

// Close releases idle connections.
func (s *Sender) Close() { s.client.CloseIdleConnections() }

// Acquire waits for a free slot under the concurrency limit and the rate
// limit. Callers that start a goroutine per delivery call it first, so that
// they never hold more goroutines than slots, and pass the slot on to
// SendAcquired.
func (s *Sender) Acquire(ctx context.Context) error {
	if s.limiter != nil {
		if err := s.limiter.Wait(ctx); err != nil {
			return err
		}
	}
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SendAcquired delivers d using a slot taken by Acquire, and frees it.
func (s *Sender) SendAcquired(ctx context.Context, d Delivery) Result {
	defer s.release()
	return s.deliver(ctx, d)
}

// release frees a slot taken by Acquire.
func (s *Sender) release() { <-s.slots }

// Send waits for a slot and delivers d, retrying on the schedule. It
// returns when the task is accepted, refused for good, out of retries or
// ctx is done.
func (s *Sender) Send(ctx context.Context, d Delivery) Result {
	if err := s.Acquire(ctx); err != nil {
		return Result{Delivery: d, Outcome: Cancelled, Err: err}
	}
	return s.SendAcquired(ctx, d)
}

// errStatus reports an answer that is not a 2xx.
type errStatus struct {
	code int
	body string
}

func (e *errStatus) Error() string {
	if e.body == "" {
		return "receiver answered " + strconv.Itoa(e.code) + " " + http.StatusText(e.code)
	}
	return "receiver answered " + strconv.Itoa(e.code) + ": " + e.body
}

// ErrScheduleExhausted wraps the last error of a delivery whose retry
// schedule ran out.
var ErrScheduleExhausted = errors.New("retry schedule exhausted")

func (s *Sender) deliver(ctx context.Context, d Delivery) Result {
	start := time.Now()
	body := d.Task.Encode()
	res := Result{Delivery: d}
	// Each delay lies between half and one and a half times the schedule's,
	// so that senders that failed together do not retry together.
	delays := backoff.Backoff{Min: s.cfg.Retry.Initial, Max: s.cfg.Retry.Max, Jitter: 0.5}
	for {
		res.Attempts++
		status, answer, retryAfter, err := s.attempt(ctx, d.WebhookID, body)
		res.Status = status
		res.Seq = answer.Seq
		res.Err = err
		res.Duration = time.Since(start)
		switch {
		case err == nil && answer.Status == task.StatusDuplicate:
			res.Outcome = Duplicate
			return res
		case err == nil:
			res.Outcome = Accepted
			return res
		case ctx.Err() != nil:
			res.Outcome = Cancelled
			res.Err = fmt.Errorf("send %s: %w", d.WebhookID, context.Cause(ctx))
			return res
		case !retryable(status):
			res.Outcome = Failed
			return res
		}
		wait := delays.Next()
		if retryAfter > wait {
			wait = retryAfter
		}
		if res.Attempts >= s.cfg.Retry.Attempts || time.Since(start)+wait > s.cfg.Retry.MaxElapsed {
			res.Outcome = Failed
			res.Err = fmt.Errorf("%w after %d attempts: %w", ErrScheduleExhausted, res.Attempts, err)
			return res
		}
		if s.OnRetry != nil {
			s.OnRetry(RetryEvent{Delivery: d, Attempt: res.Attempts, Status: status, Err: err, Delay: wait})
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			res.Outcome = Cancelled
			res.Err = fmt.Errorf("send %s: %w", d.WebhookID, context.Cause(ctx))
			res.Duration = time.Since(start)
			return res
		}
	}
}

// retryable reports whether an attempt that ended with status (0: no
// answer) is worth repeating.
func retryable(status int) bool {
	return status == 0 || status == http.StatusRequestTimeout ||
		status == http.StatusTooManyRequests || status >= 500
}

// attempt makes one request. It returns the status (0 without an answer),
// the receiver's answer to a 2xx, the Retry-After delay, and an error for
// anything but a 2xx.
func (s *Sender) attempt(ctx context.Context, id string, body []byte) (status int, answer task.Answer, retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, answer, 0, fmt.Errorf("send %s: %w", id, err)
	}
	now := time.Now()
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", s.cfg.UserAgent)
	h.Set(task.HeaderID, id)
	h.Set(task.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	if len(s.cfg.Secret) > 0 {
		h.Set(task.HeaderSignature, s.cfg.Secret.Sign(id, now, body))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, answer, 0, fmt.Errorf("send %s: %w", id, describe(err))
	}
	defer resp.Body.Close()
	// Read the answer whole so that the connection goes back to the pool.
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, task.ParseAnswer(b), 0, nil
	}
	return resp.StatusCode, answer, parseRetryAfter(resp.Header.Get("Retry-After"), now),
		fmt.Errorf("send %s: %w", id, &errStatus{code: resp.StatusCode, body: short(b)})
}

// describe shortens the errors of a refused or timed-out connection, which
// net/http wraps in several layers of context.
func describe(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("timeout: %w", err)
	}
	return err
}

// parseRetryAfter reads a Retry-After header, in seconds or as an HTTP
// date; 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now))
	}
	return 0
}

func short(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		b = append(b[:200:200], "…"...)
	}
	return string(b)
}

// NewWebhookID returns a fresh random webhook id: "msg_" and 24 base62
// characters from the system's secure random source.
func NewWebhookID() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var raw [24]byte
	cryptorand.Read(raw[:])
	out := make([]byte, 0, 28)
	out = append(out, "msg_"...)
	for _, c := range raw {
		// 62*4 = 248: reject-free mapping would bias slightly; the ids
		// only need to be unique, not uniform.
		out = append(out, alphabet[int(c)%len(alphabet)])
	}
	return string(out)
}
