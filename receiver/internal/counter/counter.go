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

// countScript deduplicates and counts one task atomically.
//
// KEYS: counts hash, batch hash, batches zset, and the seen key when the
// webhook has an id. ARGV: priority, batch id, now in ms, batch size (0 for
// unknown), seen TTL in seconds, batches to keep in the zset.
//
// It returns "" when it counted the task, or the seen key's state when the
// id was counted before: task.SeenCounted (not yet known to be in the
// stream) or task.SeenPublished.
var countScript = redis.NewScript(`
if KEYS[4] then
  local state = redis.call('GET', KEYS[4])
  if state then return state end
  redis.call('SET', KEYS[4], '` + task.SeenCounted + `', 'EX', ARGV[5])
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
if ARGV[4] ~= '0' then redis.call('HSET', KEYS[2], '` + task.BatchSizeField + `', ARGV[4]) end
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -1 - tonumber(ARGV[6]))
return ''
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
	// Pipelines is how many pipelines may be in flight at once; default 4.
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
		o.Pipelines = 4
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
	keys []string
	args []any
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
		return &op{keys: make([]string, 0, 4), args: make([]any, 0, 7), done: make(chan opResult, 1)}
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
	o.keys = append(o.keys[:0], k.Counts(), k.Batch(t.BatchID), k.Batches())
	if id != "" {
		o.keys = append(o.keys, k.Seen(id))
	}
	o.args = append(o.args[:0], t.Priority.String(), t.BatchID, now.UnixMilli(), t.BatchSize, c.seenTTL, c.keep, c.batchTTL)
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
	cmds := make([]redis.Cmder, 0, c.opts.MaxBatch)
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
		cmds = c.exec(ctx, batch, cmds[:0])
	}
}

func (c *Counter) exec(ctx context.Context, batch []*op, cmds []redis.Cmder) []redis.Cmder {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
	defer cancel()
	run := func(useSHA bool) {
		cmds = cmds[:0]
		pipe := c.rdb.Pipeline()
		for _, o := range batch {
			switch o.kind {
			case opCount:
				if useSHA {
					cmds = append(cmds, countScript.EvalSha(ctx, pipe, o.keys, o.args...))
				} else {
					cmds = append(cmds, countScript.Eval(ctx, pipe, o.keys, o.args...))
				}
			case opMarkPublished:
				cmds = append(cmds, pipe.SetArgs(ctx, o.keys[0], task.SeenPublished, redis.SetArgs{Mode: "XX", KeepTTL: true}))
			}
		}
		pipe.Exec(ctx)
	}
	run(true)
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			// Redis restarted or flushed its script cache: send the script
			// itself once, which also caches it again.
			run(false)
			break
		}
	}
	for i, o := range batch {
		var r opResult
		switch cmd := cmds[i].(type) {
		case *redis.Cmd:
			r.state, r.err = cmd.Text()
		case *redis.StatusCmd:
			r.err = cmd.Err()
		}
		if r.err == redis.Nil {
			r.err = nil // SET XX on an expired key: nothing to mark
		}
		if r.err != nil {
			r.err = fmt.Errorf("%w: %w", ErrUnavailable, r.err)
		}
		o.done <- r
	}
	return cmds
}
