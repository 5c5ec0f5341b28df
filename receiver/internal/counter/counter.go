// Package counter records accepted tasks in Redis: it deduplicates on the
// webhook id and counts per priority and per batch in one atomic script, and
// batches the scripts of concurrent requests into pipelines so that many
// requests share one round trip.
package counter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
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
// unknown), and "1" when it has a seen key.
//
// It returns one string per task: "" when it counted the task, or the seen
// key's state when the id was counted before: task.SeenCounted (not yet
// known to be in the stream) or task.SeenPublished.
var countScript = redis.NewScript(`
local n = (#KEYS - 2) / 2
local total, batches, order, ids, out = {}, {}, {}, {}, {}
for i = 1, n do
  local bkey, skey = KEYS[2*i+1], KEYS[2*i+2]
  local a = 4 + (i-1)*4
  local prio, bid, size, hasid = ARGV[a+1], ARGV[a+2], ARGV[a+3], ARGV[a+4]
  local state = false
  if hasid == '1' then
    state = redis.call('GET', skey)
    if not state then redis.call('SET', skey, '` + task.SeenCounted + `', 'EX', ARGV[2]) end
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
	// Timeout bounds one pipeline's round trip; default 2s.
	Timeout time.Duration
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
)

type op struct {
	kind opKind
	keys []string // a count's batch and seen keys; a mark's seen key
	args []any    // a count's priority, batch id, batch size, has-id flag
	now  time.Time
	done chan opResult
}

type opResult struct {
	state string
	err   error
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
		return &op{keys: make([]string, 0, 2), args: make([]any, 0, 4), done: make(chan opResult, 1)}
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

// Count deduplicates and counts t. id is the webhook id, "" when the
// request had none (then it counts every time). It returns "" when t was
// counted now, or the state recorded for id by an earlier delivery.
func (c *Counter) Count(ctx context.Context, id string, t task.Task, now time.Time) (prev string, err error) {
	o := c.pool.Get().(*op)
	o.kind = opCount
	k := c.opts.Keys
	batch := k.Batch(t.BatchID)
	hasID := "0"
	seen := batch
	if id != "" {
		hasID, seen = "1", k.Seen(id)
	}
	o.keys = append(o.keys[:0], batch, seen)
	o.args = append(o.args[:0], t.Priority.String(), t.BatchID, t.BatchSize, hasID)
	o.now = now
	return c.do(ctx, o)
}

// MarkPublished records that the stream holds the task of webhook id, so
// that later deliveries of it are answered without publishing again.
func (c *Counter) MarkPublished(ctx context.Context, id string) error {
	o := c.pool.Get().(*op)
	o.kind = opMarkPublished
	o.keys = append(o.keys[:0], c.opts.Keys.Seen(id))
	o.args = o.args[:0]
	_, err := c.do(ctx, o)
	return err
}

func (c *Counter) do(ctx context.Context, o *op) (string, error) {
	select {
	case c.ops <- o:
	case <-ctx.Done():
		c.pool.Put(o)
		return "", fmt.Errorf("%w: queue: %w", ErrUnavailable, ctx.Err())
	}
	select {
	case r := <-o.done:
		c.pool.Put(o)
		return r.state, r.err
	case <-ctx.Done():
		// The pipeline still owns o and will answer into its buffered
		// channel; o is left to the garbage collector.
		return "", fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

func (c *Counter) loop(ctx context.Context) {
	batch := make([]*op, 0, c.opts.MaxBatch)
	var bufs buffers
	for {
		batch = batch[:0]
		select {
		case o := <-c.ops:
			batch = append(batch, o)
		case <-ctx.Done():
			return
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
		c.exec(ctx, batch, &bufs)
	}
}

// exec runs one batch. An op belongs to its caller again as soon as its
// result is sent (the caller may recycle it at once), so exec reads every
// op before it sends the first result.
func (c *Counter) exec(ctx context.Context, batch []*op, b *buffers) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
	defer cancel()
	k := c.opts.Keys
	b.counts, b.marks, b.markKeys = b.counts[:0], b.marks[:0], b.markKeys[:0]
	b.keys = append(b.keys[:0], k.Counts(), k.Batches())
	b.args = b.args[:0]
	for _, o := range batch {
		switch o.kind {
		case opCount:
			if len(b.counts) == 0 {
				b.args = append(b.args, o.now.UnixMilli(), c.seenTTL, c.keep, c.batchTTL)
			}
			b.counts = append(b.counts, o.done)
			b.keys = append(b.keys, o.keys...)
			b.args = append(b.args, o.args...)
		case opMarkPublished:
			b.marks = append(b.marks, o.done)
			b.markKeys = append(b.markKeys, o.keys[0])
		}
	}
	var script *redis.Cmd
	run := func(useSHA bool) {
		b.cmds = b.cmds[:0]
		pipe := c.rdb.Pipeline()
		if len(b.counts) > 0 {
			if useSHA {
				script = countScript.EvalSha(ctx, pipe, b.keys, b.args...)
			} else {
				script = countScript.Eval(ctx, pipe, b.keys, b.args...)
			}
		}
		for _, key := range b.markKeys {
			b.cmds = append(b.cmds, pipe.SetArgs(ctx, key, task.SeenPublished, redis.SetArgs{Mode: "XX", KeepTTL: true}))
		}
		pipe.Exec(ctx)
	}
	run(true)
	if script != nil && script.Err() != nil && strings.HasPrefix(script.Err().Error(), "NOSCRIPT") {
		// Redis restarted or flushed its script cache: send the script
		// itself once, which also caches it again.
		run(false)
	}
	if len(b.counts) > 0 {
		states, err := script.StringSlice()
		if err == nil && len(states) != len(b.counts) {
			err = fmt.Errorf("count script returned %d states for %d tasks", len(states), len(b.counts))
		}
		for i, done := range b.counts {
			var r opResult
			if err != nil {
				r.err = fmt.Errorf("%w: %w", ErrUnavailable, err)
			} else {
				r.state = states[i]
			}
			done <- r
		}
	}
	for i, done := range b.marks {
		err := b.cmds[i].Err()
		if err == redis.Nil {
			err = nil // the key expired meanwhile: nothing to mark
		} else if err != nil {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		done <- opResult{err: err}
	}
}

// buffers are one pipeline loop's scratch slices, reused batch to batch.
type buffers struct {
	counts, marks  []chan opResult
	keys, markKeys []string
	args           []any
	cmds           []redis.Cmder
}
