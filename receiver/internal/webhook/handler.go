// Package webhook is the receiver's HTTP side: it takes task webhooks on
// fasthttp, checks method, content type, signature and body, and answers 200
// only once the stream acknowledged the task (the fold counts it from
// there).
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/access"
	"github.com/hookpipe/hookpipe/receiver/internal/ingest"
	"github.com/hookpipe/hookpipe/task"
	"github.com/valyala/fasthttp"
)

// Acceptor takes a verified, decoded task in; *ingest.Acceptor is one.
type Acceptor interface {
	Accept(ctx context.Context, id string, t task.Task, encoded []byte) (ingest.Outcome, error)
}

var _ Acceptor = (*ingest.Acceptor)(nil)

// Handler answers webhook requests. Its fields must be set before the first
// request and not changed after.
type Handler struct {
	Acceptor Acceptor
	// Verifier checks signatures; nil accepts unsigned requests.
	Verifier *task.Verifier
	// Path is where webhooks are posted; default "/consumetasks".
	Path string
	// Timeout bounds the Redis lookup and the stream's acknowledgement of
	// one request; default 2s.
	Timeout time.Duration
	// RetryAfter is sent with every 503; default 1s.
	RetryAfter time.Duration
	// Ready reports whether Redis and NATS answer, for /readyz.
	Ready func(ctx context.Context) error
	// Metrics is where the handler counts what it does; required.
	Metrics *Metrics
	// Gate guards /metrics; nil leaves it open.
	Gate *access.Gate
	// Hosts, when set, is the Host allow-list of the webhook path: a
	// receiver that takes unsigned webhooks must not take them from a page
	// whose name was rebound to it.
	Hosts *access.Hosts
	// Log receives one line per failure that matters, never one per request.
	Log *slog.Logger
	// Now returns the time; default time.Now. Tests move it.
	Now func() time.Time

	// Whether Redis, NATS and the fold failed last time, so that an outage
	// is logged when it starts and when it ends rather than once per
	// request.
	redisDown, natsDown, foldDown atomic.Bool
}

// Errors of the request itself. Each maps to one status in status().
var (
	errNotFound    = errors.New("no such path")
	errMethod      = errors.New("method not allowed: use POST")
	errContentType = errors.New("content type must be application/json")
	errTooLarge    = errors.New("body too large")
	errBadID       = &task.FieldError{Field: task.HeaderID, Problem: "must be 1 to 64 printable ASCII characters"}
	errHost        = errors.New("host not allowed: start the receiver with --allowed-hosts naming it")
	errAccess      = errors.New("access token required")
	errTimeout     = errors.New("request not received in time")
	errHeaders     = errors.New("request headers too large")
)

var (
	bodyOK      = []byte(`{"status":"ok"}`)
	contentJSON = []byte("application/json")
)

// ServeFastHTTP routes a request.
func (h *Handler) ServeFastHTTP(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch {
	case string(path) == h.path():
		h.ingest(ctx)
	case string(path) == "/healthz":
		h.json(ctx, fasthttp.StatusOK, bodyOK)
	case string(path) == "/readyz":
		h.readyz(ctx)
	case string(path) == "/metrics":
		if h.Gate != nil && !h.Gate.Bearer(string(ctx.Request.Header.Peek("Authorization"))) && !h.Gate.Open() {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="hookpipe"`)
			h.fail(ctx, errAccess)
			return
		}
		h.Metrics.serve(ctx)
	default:
		h.fail(ctx, errNotFound)
	}
}

func (h *Handler) path() string {
	if h.Path == "" {
		return task.ReceiverPath
	}
	return h.Path
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) ingest(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	h.Metrics.inFlight.Inc()
	defer func() {
		h.Metrics.inFlight.Dec()
		h.Metrics.observe(ctx.Response.StatusCode(), time.Since(start))
	}()

	if h.Hosts != nil && !h.Hosts.Allowed(string(ctx.Host())) {
		h.fail(ctx, errHost)
		return
	}
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		h.fail(ctx, errMethod)
		return
	}
	if !isJSON(ctx.Request.Header.ContentType()) {
		h.fail(ctx, errContentType)
		return
	}
	body := ctx.PostBody()
	hdr := &ctx.Request.Header
	rawID := hdr.Peek(task.HeaderID)
	if len(rawID) > 0 && !task.ValidWebhookID(rawID) {
		h.fail(ctx, errBadID)
		return
	}
	// Copied: the id outlives neither the request nor the handler, but it
	// is handed to other goroutines while the handler waits.
	id := string(rawID)
	now := h.now()
	if h.Verifier != nil {
		err := h.Verifier.Verify(id, string(hdr.Peek(task.HeaderTimestamp)), string(hdr.Peek(task.HeaderSignature)), body, now)
		if err != nil {
			h.fail(ctx, err)
			return
		}
	}
	t, err := task.Decode(body)
	if err != nil {
		h.fail(ctx, err)
		return
	}

	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	rctx := newDeadline(timeout)
	defer rctx.release()

	data := t.AppendJSON(make([]byte, 0, 160))
	out, err := h.Acceptor.Accept(rctx, id, t, data)
	switch {
	case err == nil:
		h.up(&h.redisDown, "redis")
		h.up(&h.natsDown, "nats")
		h.up(&h.foldDown, "fold")
	case errors.Is(err, task.ErrIDReused):
		h.fail(ctx, err)
		return
	case errors.Is(err, ingest.ErrSeenUnavailable):
		h.Metrics.RedisFailures.Inc()
		h.down(&h.redisDown, "redis", err)
		h.fail(ctx, err)
		return
	case errors.Is(err, ingest.ErrBacklog):
		h.Metrics.BacklogRefusals.Inc()
		h.down(&h.foldDown, "fold", err)
		h.fail(ctx, err)
		return
	default:
		h.Metrics.PublishFailures.Inc()
		h.down(&h.natsDown, "nats", err)
		h.fail(ctx, err)
		return
	}
	a := task.Answer{Status: task.StatusAccepted, Seq: out.Seq}
	if out.Duplicate {
		a.Status = task.StatusDuplicate
		h.Metrics.Duplicates.Inc()
	} else {
		h.Metrics.Accepted.Inc()
	}
	var b [64]byte
	h.json(ctx, fasthttp.StatusOK, a.AppendJSON(b[:0]))
}

// down logs the start of an outage of a dependency, once.
func (h *Handler) down(flag *atomic.Bool, name string, err error) {
	if !flag.Load() && flag.CompareAndSwap(false, true) {
		h.Log.Warn(name+" unavailable: answering 503 until it recovers", "err", err)
	}
}

// up logs the end of an outage of a dependency, once.
func (h *Handler) up(flag *atomic.Bool, name string) {
	if flag.Load() && flag.CompareAndSwap(true, false) {
		h.Log.Info(name + " recovered")
	}
}

func (h *Handler) readyz(ctx *fasthttp.RequestCtx) {
	if h.Ready != nil {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := h.Ready(rctx); err != nil {
			b, _ := json.Marshal(map[string]string{"status": "unavailable", "error": err.Error()})
			h.json(ctx, fasthttp.StatusServiceUnavailable, b)
			return
		}
	}
	h.json(ctx, fasthttp.StatusOK, bodyOK)
}

// status maps every error the handler answers with to its HTTP status.
func status(err error) int {
	var fe *task.FieldError
	switch {
	case errors.As(err, &fe):
		return fasthttp.StatusBadRequest
	case errors.Is(err, errNotFound):
		return fasthttp.StatusNotFound
	case errors.Is(err, errMethod):
		return fasthttp.StatusMethodNotAllowed
	case errors.Is(err, errContentType):
		return fasthttp.StatusUnsupportedMediaType
	case errors.Is(err, errTooLarge):
		return fasthttp.StatusRequestEntityTooLarge
	case errors.Is(err, task.ErrNoSignature), errors.Is(err, task.ErrBadTimestamp),
		errors.Is(err, task.ErrStale), errors.Is(err, task.ErrSignature):
		return fasthttp.StatusUnauthorized
	case errors.Is(err, task.ErrIDReused):
		return fasthttp.StatusConflict
	case errors.Is(err, ingest.ErrSeenUnavailable), errors.Is(err, ingest.ErrStreamUnavailable), errors.Is(err, ingest.ErrBacklog):
		return fasthttp.StatusServiceUnavailable
	case errors.Is(err, errHost):
		return fasthttp.StatusMisdirectedRequest
	case errors.Is(err, errAccess):
		return fasthttp.StatusUnauthorized
	case errors.Is(err, errTimeout):
		return fasthttp.StatusRequestTimeout
	case errors.Is(err, errHeaders):
		return fasthttp.StatusRequestHeaderFieldsTooLarge
	}
	return fasthttp.StatusInternalServerError
}

func (h *Handler) fail(ctx *fasthttp.RequestCtx, err error) {
	code := status(err)
	body := task.ErrorAnswer{Error: errorText(err)}
	var fe *task.FieldError
	if errors.As(err, &fe) {
		body.Field = fe.Field
	}
	if code == fasthttp.StatusServiceUnavailable {
		ra := h.RetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(int((ra+time.Second-1)/time.Second)))
	}
	b, _ := json.Marshal(body)
	h.json(ctx, code, b)
}

func (h *Handler) json(ctx *fasthttp.RequestCtx, code int, body []byte) {
	ctx.SetStatusCode(code)
	ctx.Response.Header.SetContentTypeBytes(contentJSON)
	ctx.SetBody(body)
}

// errorText is what an error answer says: for a 503, the reason without
// its causes, which name internals.
func errorText(err error) string {
	for _, e := range []error{ingest.ErrSeenUnavailable, ingest.ErrStreamUnavailable, ingest.ErrBacklog} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return err.Error()
}

// ErrorHandler answers requests fasthttp itself refused, such as bodies
// over the size limit, with the same JSON errors as the handler.
func (h *Handler) ErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		err = errTooLarge
		if c := ctx.Conn(); c != nil {
			drain(c)
		}
	case errors.As(err, &small):
		err = errHeaders
	default:
		var te interface{ Timeout() bool }
		if errors.As(err, &te) && te.Timeout() {
			err = errTimeout
		} else {
			err = &task.FieldError{Problem: "malformed HTTP request"}
		}
	}
	h.fail(ctx, err)
	h.Metrics.observe(ctx.Response.StatusCode(), 0)
}

// Bounds of drain.
const (
	maxDrain   = 1 << 20
	drainFor   = time.Second
	drainPause = 100 * time.Millisecond
)

// drain reads and drops what a sender still sends of a body too large,
// until it pauses, so that it finishes writing and reads the 413: closing
// the connection with its bytes unread would reset it, and the sender
// would see a broken pipe instead of the answer. It gives up after
// maxDrain bytes or drainFor, and a sender that waits for
// "100 Continue" sends nothing more to drain.
func drain(c net.Conn) {
	deadline := time.Now().Add(drainFor)
	buf := make([]byte, 32<<10)
	for n := 0; n < maxDrain; {
		next := time.Now().Add(drainPause)
		if next.After(deadline) {
			next = deadline
		}
		c.SetReadDeadline(next)
		m, err := c.Read(buf)
		n += m
		if err != nil {
			return
		}
	}
}

// isJSON reports whether a Content-Type header names JSON in UTF-8.
func isJSON(ct []byte) bool {
	media, params, _ := bytes.Cut(ct, []byte(";"))
	if !bytes.EqualFold(bytes.TrimSpace(media), contentJSON) {
		return false
	}
	for p := range bytes.SplitSeq(params, []byte(";")) {
		k, v, _ := bytes.Cut(bytes.TrimSpace(p), []byte("="))
		if bytes.EqualFold(k, []byte("charset")) {
			v = bytes.Trim(v, `"`)
			if !bytes.EqualFold(v, []byte("utf-8")) && !bytes.EqualFold(v, []byte("utf8")) {
				return false
			}
		}
	}
	return true
}
