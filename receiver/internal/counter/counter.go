// Package counter records accepted tasks in Redis: it deduplicates on the
// webhook id and counts per priority and per batch in one atomic script, and
// batches the scripts of concurrent requests into pipelines so that many
// requests share one round trip. As soon as Redis answers, the pipeline
// starts the publishes of the tasks it counted (CountThenStart), so that
// a batch's tasks also share one write to the stream's connection.
package counter

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

// countScript deduplicates and counts a batch of tasks atomically, with
// one HINCRBY per priority and per batch however many tasks it holds.
//
// KEYS: the counts hash, the batches zset, then for each task its batch
// hash and its seen key (the batch hash again when the webhook had no id,
// so that every key is declared and all share one cluster slot).
// ARGV: now in ms, seen TTL in seconds, batches to keep in the zset, batch
// TTL in seconds, then for each task: priority, batch id, batch size (0 for
// unknown), "1" when it has a seen key, and the task's fingerprint.
//
// A seen key holds its state (SeenCounted or SeenPublished)
// followed by the fingerprint of the task it was first counted for. The
// script returns one string per task: "" when it counted the task, the
// state when the id was counted before for the same task, or "x" when the
// id was counted for a different task.
var countScript = redis.NewScript(`
local n = (#KEYS - 2) / 2
local total, batches, order, ids, out = {}, {}, {}, {}, {}
for i = 1, n do
  local bkey, skey = KEYS[2*i+1], KEYS[2*i+2]
  local a = 4 + (i-1)*5
  local prio, bid, size, hasid, fp = ARGV[a+1], ARGV[a+2], ARGV[a+3], ARGV[a+4], ARGV[a+5]
  local state = false
  if hasid == '1' then
    local v = redis.call('GET', skey)
    if v then
      if string.sub(v, 2) == fp then state = string.sub(v, 1, 1) else state = 'x' end
    else
      redis.call('SET', skey, '` + SeenCounted + `' .. fp, 'EX', ARGV[2])
    end
  end
  if state then
    out[i] = state
  else
    out[i] = ''
    total[prio] = (total[prio] or 0) + 1
    local b = batches[bkey]
    if not b then
      b = {}
      batches[bkey] = b
      order[#order+1] = bkey
      ids[bkey] = bid
    end
    b[prio] = (b[prio] or 0) + 1
    if size ~= '0' then b[0] = size end
  end
end
for prio, inc in pairs(total) do redis.call('HINCRBY', KEYS[1], prio, inc) end
for _, bkey in ipairs(order) do
  for f, v in pairs(batches[bkey]) do
    if f == 0 then
      redis.call('HSET', bkey, '` + task.BatchSizeField + `', v)
    else
      redis.call('HINCRBY', bkey, f, v)
    end
  end
  redis.call('EXPIRE', bkey, ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[1], ids[bkey])
end
if #order > 0 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[3])) end
return out
`)

// uncountScript takes back one count of a task without an id whose
// request failed after it was counted. KEYS: counts hash, batch hash.
// ARGV: priority.
var uncountScript = redis.NewScript(`
redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
return 1
`)

// States of a seen key. Its value is the state followed by a fingerprint
// of the task, so that an id reused for another task is told from a retry
// of the same one.
const (
	SeenCounted   = "c"
	SeenPublished = "p"
)

// conflict is what the script answers for an id reused for another task.
const conflict = "x"

// ErrUnavailable wraps every failure to reach Redis or to get an answer in
// time: the caller should ask the sender to retry.
var ErrUnavailable = errors.New("counter: redis unavailable")

// Options configures a Counter. Zero fields take the defaults given.
type Options struct {
	// Keys names the Redis keys; default prefix task.DefaultKeyPrefix.
	Keys task.Keys
	// SeenTTL is how long a webhook id is remembered; default 24h. A
	// delivery repeated within it changes nothing.
	SeenTTL time.Duration
	// BatchTTL is how long a batch's counts are kept after its latest task;
	// default 7 days.
	BatchTTL time.Duration
	// KeepBatches bounds the index of recent batches; default 10,000.
	KeepBatches int
	// MaxBatch is the most operations sent in one pipeline; default 256.
	MaxBatch int
	// Pipelines is how many pipelines may be in flight at once; default 1.
	// One pipeline batches the most: while it is in flight the next batch
	// grows, so batches size themselves to the load (measured with
	// loadtest bench: 1 pipeline beat 2 and 8).
	Pipelines int
	// Linger is how long a pipeline waits for more operations before it
	// sends a batch, when the previous batch showed concurrent load (four
	// operations or more); default 200µs, negative for never. Bigger
	// batches cost Redis and the receiver less per task: loadtest bench
	// measured Redis CPU per task 13.5µs without, 9.7µs at 100µs and 7.4µs
	// at 300µs. A lone request never waits.
	Linger time.Duration
	// Timeout bounds one pipeline's round trip; default 2s.
	Timeout time.Duration
	// Log receives the rare lines the counter writes itself; default none.
	Log *slog.Logger
	// Start starts the publish of a task for CountThenStart, without
	// waiting: the pipeline calls it for every task of a batch that needs
	// publishing, in a row, and then Flush, once it answered the batch's
	// callers (Flush may wait on the network, the callers' waits end with
	// their contexts), so that the batch reaches the stream's connection
	// together.
	Start func(id, subject string, encoded []byte) Started
	Flush func()
}

// Started is a publish on its way.
type Started interface {
	// Wait returns the task's stream sequence once the stream
	// acknowledged it, or why not: the stream failed it, or ctx ended.
	Wait(ctx context.Context) (seq uint64, err error)
}

func (o *Options) setDefaults() {
	if o.SeenTTL <= 0 {
		o.SeenTTL = 24 * time.Hour
	}
	if o.BatchTTL <= 0 {
		o.BatchTTL = 7 * 24 * time.Hour
	}
	if o.KeepBatches <= 0 {
		o.KeepBatches = 10000
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.Pipelines <= 0 {
		o.Pipelines = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Linger == 0 {
		o.Linger = 200 * time.Microsecond
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Counter runs count scripts and published marks against Redis, several
// requests to a pipeline.
type Counter struct {
	rdb  redis.UniversalClient
	opts Options
	ops  chan *op

	seenTTL, batchTTL, keep string
	pool                    sync.Pool
}

type opKind uint8

const (
	opCount opKind = iota
	opMarkPublished
	opUncount
)

// States of an op, so that a caller that gives up and the pipeline that
// answers agree on who owns the op.
const (
	opWaiting int32 = iota
	opAbandoned
	opAnswered
)

type op struct {
	kind  opKind
	state atomic.Int32
	keys  []string // count: batch and seen keys; mark: seen key; uncount: batch key
	args  []any    // count: priority, batch id, batch size, has-id flag, fingerprint; mark: value; uncount: priority
	noID  bool     // a count whose webhook had no id
	now   time.Time
	done  chan opResult
	// For CountThenStart: what to publish once counted.
	start   bool
	id      string
	subject string
	encoded []byte
}

type opResult struct {
	state string
	err   error
	pub   Started // the publish started for CountThenStart
}

// New returns a Counter over rdb. Call Run to start its pipelines.
func New(rdb redis.UniversalClient, opts Options) *Counter {
	opts.setDefaults()
	c := &Counter{
		rdb:      rdb,
		opts:     opts,
		ops:      make(chan *op, opts.MaxBatch*opts.Pipelines),
		seenTTL:  strconv.FormatInt(int64(opts.SeenTTL/time.Second), 10),
		batchTTL: strconv.FormatInt(int64(opts.BatchTTL/time.Second), 10),
		keep:     strconv.Itoa(opts.KeepBatches),
	}
	c.pool.New = func() any {
		return &op{keys: make([]string, 0, 2), args: make([]any, 0, 5), done: make(chan opResult, 1)}
	}
	return c
}

// Run sends queued operations until ctx ends. It returns nil then.
func (c *Counter) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range c.opts.Pipelines {
		wg.Go(func() { c.loop(ctx) })
	}
	wg.Wait()
	return nil
}

// Fingerprint identifies a task's content in its seen key, so that an id
// reused for another task is told from a retry of the same one.
func Fingerprint(encoded []byte) string {
	h := fnv.New64a()
	h.Write(encoded)
	return strconv.FormatUint(h.Sum64(), 36)
}

// Count deduplicates and counts t, whose canonical encoding is encoded. id
// is the webhook id, "" when the request had none (then it counts every
// time). It returns "" when t was counted now, or the state recorded for id
// by an earlier delivery of the same task; task.ErrIDReused when id was
// counted for another task.
func (c *Counter) Count(ctx context.Context, id string, t task.Task, encoded []byte, now time.Time) (prev string, err error) {
	prev, _, err = c.count(ctx, id, t, encoded, now, false)
	return prev, err
}

// CountThenStart counts t as Count does and, when the stream must get it
// (counted now, or counted by an earlier delivery whose publish was not
// acknowledged), starts its publish with Options.Start from the pipeline,
// right after Redis answered: the caller waits for the returned publish.
// pub is nil when nothing is to be published. It needs Options.Start and
// Options.Flush.
func (c *Counter) CountThenStart(ctx context.Context, id string, t task.Task, encoded []byte, now time.Time) (prev string, pub Started, err error) {
	if c.opts.Start == nil || c.opts.Flush == nil {
		return "", nil, errors.New("counter: CountThenStart without Options.Start and Flush")
	}
	return c.count(ctx, id, t, encoded, now, true)
}

func (c *Counter) count(ctx context.Context, id string, t task.Task, encoded []byte, now time.Time, start bool) (prev string, pub Started, err error) {
	o := c.get(opCount)
	if start {
		o.start, o.id, o.subject, o.encoded = true, id, t.Priority.Subject(), encoded
	}
	k := c.opts.Keys
	batch := k.Batch(t.BatchID)
	hasID, seen, fp := "0", batch, ""
	if id != "" {
		hasID, seen, fp = "1", k.Seen(id), Fingerprint(encoded)
	}
	o.keys = append(o.keys, batch, seen)
	o.args = append(o.args, t.Priority.String(), t.BatchID, t.BatchSize, hasID, fp)
	o.noID = id == ""
	o.now = now
	r := c.do(ctx, o)
	if r.state == conflict {
		return "", nil, task.ErrIDReused
	}
	return r.state, r.pub, r.err
}

// MarkPublished records that the stream holds the task of webhook id, so
// that later deliveries of it are answered without publishing again.
func (c *Counter) MarkPublished(ctx context.Context, id string, encoded []byte) error {
	o := c.get(opMarkPublished)
	o.keys = append(o.keys, c.opts.Keys.Seen(id))
	o.args = append(o.args, SeenPublished+Fingerprint(encoded))
	return c.do(ctx, o).err
}

// Uncount takes back the count of a task without a webhook id whose
// request failed after Count: without an id the sender's retry counts it
// again, so the failed attempt must leave nothing behind. Once queued, the
// uncount is done even if ctx ends first (a failure is then logged).
func (c *Counter) Uncount(ctx context.Context, t task.Task) error {
	o := c.get(opUncount)
	o.keys = append(o.keys, c.opts.Keys.Batch(t.BatchID))
	o.args = append(o.args, t.Priority.String())
	return c.do(ctx, o).err
}

func (c *Counter) get(kind opKind) *op {
	o := c.pool.Get().(*op)
	o.kind = kind
	o.state.Store(opWaiting)
	o.keys, o.args = o.keys[:0], o.args[:0]
	o.noID = false
	o.start, o.id, o.subject, o.encoded = false, "", "", nil
	return o
}

func (c *Counter) do(ctx context.Context, o *op) opResult {
	select {
	case c.ops <- o:
	case <-ctx.Done():
		c.pool.Put(o)
		return opResult{err: fmt.Errorf("%w: queue: %w", ErrUnavailable, ctx.Err())}
	}
	select {
	case r := <-o.done:
		c.pool.Put(o)
		return r
	case <-ctx.Done():
		if o.state.CompareAndSwap(opWaiting, opAbandoned) {
			// The pipeline owns o from now on: it skips it if it has not
			// sent it yet, and takes back a count it made for nobody.
			return opResult{err: fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())}
		}
		r := <-o.done // answered just now
		c.pool.Put(o)
		return r
	}
}

func (c *Counter) loop(ctx context.Context) {
	batch := make([]*op, 0, c.opts.MaxBatch)
	var bufs buffers
	loaded := false // the previous batch showed concurrent load
	for {
		batch = batch[:0]
		select {
		case o := <-c.ops:
			batch = append(batch, o)
		case <-ctx.Done():
			return
		}
		if loaded && c.opts.Linger > 0 && len(c.ops) < c.opts.MaxBatch/4 {
			time.Sleep(c.opts.Linger)
		}
	drain:
		for len(batch) < c.opts.MaxBatch {
			select {
			case o := <-c.ops:
				batch = append(batch, o)
			default:
				break drain
			}
		}
		loaded = len(batch) >= 4
		c.exec(ctx, batch, &bufs)
	}
}

// buffers are one pipeline loop's scratch slices, reused batch to batch.
type buffers struct {
	counts, others []*op
	keys           []string
	args           []any
	cmds           []redis.Cmder
}

// exec runs one batch. An answered op belongs to its caller again, who may
// recycle it at once, so exec reads every op before it answers the first,
// and touches an op after that only when its caller abandoned it.
func (c *Counter) exec(ctx context.Context, batch []*op, b *buffers) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
	defer cancel()
	k := c.opts.Keys
	b.counts, b.others = b.counts[:0], b.others[:0]
	b.keys = append(b.keys[:0], k.Counts(), k.Batches())
	b.args = b.args[:0]
	for _, o := range batch {
		if o.state.Load() == opAbandoned && o.kind != opUncount {
			// Its caller has gone: nothing to do for nobody. An uncount is
			// done all the same: its request answered 503, and the count
			// must not outlive it.
			continue
		}
		if o.kind == opCount {
			if len(b.counts) == 0 {
				b.args = append(b.args, o.now.UnixMilli(), c.seenTTL, c.keep, c.batchTTL)
			}
			b.counts = append(b.counts, o)
			b.keys = append(b.keys, o.keys...)
			b.args = append(b.args, o.args...)
		} else {
			b.others = append(b.others, o)
		}
	}
	uncountKeys := func(o *op) []string { return []string{k.Counts(), o.keys[0]} }
	var script *redis.Cmd
	pipe := c.rdb.Pipeline()
	if len(b.counts) > 0 {
		script = countScript.EvalSha(ctx, pipe, b.keys, b.args...)
	}
	b.cmds = b.cmds[:0]
	for _, o := range b.others {
		switch o.kind {
		case opMarkPublished:
			b.cmds = append(b.cmds, pipe.SetArgs(ctx, o.keys[0], o.args[0], redis.SetArgs{Mode: "XX", KeepTTL: true}))
		case opUncount:
			b.cmds = append(b.cmds, uncountScript.EvalSha(ctx, pipe, uncountKeys(o), o.args...))
		}
	}
	pipe.Exec(ctx)
	// Redis restarted or flushed its script cache: send the scripts that
	// it did not know, and only those, which also caches them again.
	if noScript(script) || slices.ContainsFunc(b.cmds, noScript) {
		pipe = c.rdb.Pipeline()
		if noScript(script) {
			script = countScript.Eval(ctx, pipe, b.keys, b.args...)
		}
		for i, cmd := range b.cmds {
			if noScript(cmd) {
				b.cmds[i] = uncountScript.Eval(ctx, pipe, uncountKeys(b.others[i]), b.others[i].args...)
			}
		}
		pipe.Exec(ctx)
	}
	started := false
	if len(b.counts) > 0 {
		states, err := script.StringSlice()
		if err == nil && len(states) != len(b.counts) {
			err = fmt.Errorf("count script returned %d states for %d tasks", len(states), len(b.counts))
		}
		for i, o := range b.counts {
			var r opResult
			if err != nil {
				r.err = fmt.Errorf("%w: %w", ErrUnavailable, err)
			} else {
				r.state = states[i]
			}
			answered := o.state.CompareAndSwap(opWaiting, opAnswered)
			if !answered && o.noID && r.err == nil && r.state == "" {
				// Counted for a caller that gave up and answered 503: the
				// sender will retry, and without an id the retry counts again.
				c.takeBack(o)
				continue
			}
			if answered && o.start && r.err == nil && (r.state == "" || r.state == SeenCounted) {
				// The caller waits for this publish now, whatever happens.
				r.pub = c.opts.Start(o.id, o.subject, o.encoded)
				started = true
			}
			o.done <- r
		}
	}
	if started {
		c.opts.Flush()
	}
	for i, o := range b.others {
		err := b.cmds[i].Err()
		if err == redis.Nil {
			err = nil // the key expired meanwhile: nothing to mark
		} else if err != nil {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if o.state.CompareAndSwap(opWaiting, opAnswered) {
			o.done <- opResult{err: err}
		} else if o.kind == opUncount && err != nil {
			c.opts.Log.Error("count of a failed request without webhook id could not be taken back", "err", err)
		}
	}
}

// takeBack queues an uncount for an abandoned count. It never blocks the
// pipeline: with the queue full, the count stays and is logged.
func (c *Counter) takeBack(abandoned *op) {
	o := c.get(opUncount)
	o.keys = append(o.keys, abandoned.keys[0])
	o.args = append(o.args, abandoned.args[0])
	select {
	case c.ops <- o:
		go func() {
			// Nobody waits for this op; drain its answer and recycle it.
			r := <-o.done
			if r.err != nil {
				c.opts.Log.Error("count of an abandoned request without webhook id could not be taken back", "err", r.err)
			}
			c.pool.Put(o)
		}()
	default:
		c.opts.Log.Error("count of an abandoned request without webhook id could not be taken back: queue full")
	}
}

func noScript(cmd redis.Cmder) bool {
	if c, ok := cmd.(*redis.Cmd); cmd == nil || ok && c == nil {
		return false
	}
	err := cmd.Err()
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
