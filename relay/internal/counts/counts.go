// Package counts reads hookpipe's totals per priority from Redis, the
// source of truth, for the relay's frames: right after new events arrive
// and at least once per interval regardless, so that once traffic stops
// every frame carries exactly what Redis holds.
package counts

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

// Sink takes the counts; the hub is one.
type Sink interface {
	// SetCounts hands over the newest counts.
	SetCounts(task.Counts)
	// CountsWanted yields when new events make a fresh read worthwhile.
	CountsWanted() <-chan struct{}
}

// Read returns the totals stored in the hash key. Fields other than the
// four priority names are ignored; a total that is not an integer is an
// error.
func Read(ctx context.Context, rdb redis.Cmdable, key string) (task.Counts, error) {
	var c task.Counts
	m, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return c, fmt.Errorf("counts: hgetall %s: %w", key, err)
	}
	for name, v := range m {
		p, err := task.ParsePriority(name)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return c, fmt.Errorf("counts: %s field %s: %q is not an integer", key, name, v)
		}
		c[p.Index()] = n
	}
	return c, nil
}

// Poller keeps a Sink's counts equal to Redis.
type Poller struct {
	rdb     redis.Cmdable
	key     string
	sink    Sink
	every   time.Duration
	gap     time.Duration
	log     *slog.Logger
	healthy atomic.Bool
	errors  atomic.Int64
}

// NewPoller returns a Poller of the hash key into sink, reading at least
// every interval, and when the sink wants counts, at most once per gap (the
// hub's frame interval: one read per frame is all a frame can show).
func NewPoller(rdb redis.Cmdable, key string, sink Sink, every, gap time.Duration, log *slog.Logger) *Poller {
	return &Poller{rdb: rdb, key: key, sink: sink, every: every, gap: gap, log: log}
}

// Healthy reports whether the last read succeeded.
func (p *Poller) Healthy() bool { return p.healthy.Load() }

// Errors returns how many reads failed so far.
func (p *Poller) Errors() int64 { return p.errors.Load() }

// Run reads until ctx ends. A failing Redis is logged once per outage; the
// sink keeps the last counts read until Redis answers again.
func (p *Poller) Run(ctx context.Context) error {
	t := time.NewTicker(p.every)
	defer t.Stop()
	failing := false
	var last time.Time
	for {
		if wait := time.Until(last.Add(p.gap)); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		last = time.Now()
		c, err := Read(ctx, p.rdb, p.key)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			p.errors.Add(1)
			p.healthy.Store(false)
			if !failing {
				p.log.Warn("counts reader failing, keeping the last counts", "err", err)
				failing = true
			}
		default:
			if failing {
				p.log.Info("counts reader recovered")
				failing = false
			}
			p.healthy.Store(true)
			p.sink.SetCounts(c)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-p.sink.CountsWanted():
		}
	}
}
