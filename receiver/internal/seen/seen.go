// Package seen looks webhook ids up in Redis, where the fold remembers each
// id's task fingerprint and stream sequence: the lookups of concurrent
// requests go to Redis in one pipeline, so that many requests share one
// round trip.
package seen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

// ErrUnavailable wraps every failure to get an answer from Redis in time.
var ErrUnavailable = errors.New("seen: redis unavailable")

// Options configure a Store. Zero fields take the defaults given.
type Options struct {
	// Keys names the seen keys; default prefix task.DefaultKeyPrefix.
	Keys task.Keys
	// MaxBatch is the most lookups in one pipeline; default 256.
	MaxBatch int
	// Timeout bounds one pipeline's round trip; default 2s.
	Timeout time.Duration
}

// Store answers lookups of webhook ids.
type Store struct {
	rdb  redis.UniversalClient
	opts Options
	ops  chan *lookup
	pool sync.Pool
}

type lookup struct {
	key  string
	done chan result // buffered: answering never waits for the caller
}

type result struct {
	v   string
	ok  bool
	err error
}

// New returns a Store over rdb. Run it.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	s := &Store{rdb: rdb, opts: opts, ops: make(chan *lookup, 4*opts.MaxBatch)}
	s.pool.New = func() any { return &lookup{done: make(chan result, 1)} }
	return s
}

// Lookup returns what Redis remembers of webhook id: ok false when
// nothing, an error matching ErrUnavailable when Redis did not answer
// before ctx ended.
func (s *Store) Lookup(ctx context.Context, id string) (seen task.Seen, ok bool, err error) {
	l := s.pool.Get().(*lookup)
	l.key = s.opts.Keys.Seen(id)
	select {
	case s.ops <- l:
	case <-ctx.Done():
		s.pool.Put(l)
		return seen, false, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	var r result
	select {
	case r = <-l.done:
		s.pool.Put(l)
	case <-ctx.Done():
		// The pipeline answers into l.done later; l is left to the
		// garbage collector rather than reused.
		return seen, false, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	if r.err != nil {
		return seen, false, fmt.Errorf("%w: %w", ErrUnavailable, r.err)
	}
	if !r.ok {
		return seen, false, nil
	}
	seen, err = task.ParseSeen(r.v)
	if err != nil {
		// A value nobody understands counts as not seen: the stream's own
		// dedupe still holds within its window.
		return seen, false, nil
	}
	return seen, true, nil
}

// Run answers lookups until ctx ends.
func (s *Store) Run(ctx context.Context) {
	batch := make([]*lookup, 0, s.opts.MaxBatch)
	cmds := make([]*redis.StringCmd, 0, s.opts.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case l := <-s.ops:
			batch = append(batch, l)
		case <-ctx.Done():
			return
		}
	drain:
		for len(batch) < s.opts.MaxBatch {
			select {
			case l := <-s.ops:
				batch = append(batch, l)
			default:
				break drain
			}
		}
		cmds = s.exec(ctx, batch, cmds[:0])
	}
}

func (s *Store) exec(ctx context.Context, batch []*lookup, cmds []*redis.StringCmd) []*redis.StringCmd {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	for _, l := range batch {
		cmds = append(cmds, pipe.Get(ctx, l.key))
	}
	pipe.Exec(ctx)
	for i, l := range batch {
		v, err := cmds[i].Result()
		switch {
		case errors.Is(err, redis.Nil):
			l.done <- result{}
		case err != nil:
			l.done <- result{err: err}
		default:
			l.done <- result{v: v, ok: true}
		}
	}
	clear(cmds)
	return cmds
}
