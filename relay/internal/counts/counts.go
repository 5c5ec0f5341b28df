// Package counts reads what Redis holds as the stream's fold, the totals
// and the watermark they are exact as of, in one read: for the stream
// reader's start, and then every interval, so that the hub takes Redis's
// counts again when Redis was repaired.
package counts

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/relay/internal/fanout"
	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

// Sink takes the base; the hub is one.
type Sink interface {
	Rebase(fanout.Base)
}

// Poller reads the base from Redis.
type Poller struct {
	rdb     redis.Cmdable
	keys    task.Keys
	sink    Sink
	every   time.Duration
	log     *slog.Logger
	healthy atomic.Bool
	errors  atomic.Int64
}

// NewPoller returns a Poller of keys' counts into sink, every interval.
func NewPoller(rdb redis.Cmdable, keys task.Keys, sink Sink, every time.Duration, log *slog.Logger) *Poller {
	return &Poller{rdb: rdb, keys: keys, sink: sink, every: every, log: log}
}

// Read reads the base once: ok is false when Redis holds no watermark. A
// read cut short because ctx ended says nothing of Redis's health, so it is
// neither counted as an error nor marks the poller unhealthy.
func (p *Poller) Read(ctx context.Context) (fanout.Base, bool, error) {
	readCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, w, ok, err := redisconn.ReadCounts(readCtx, p.rdb, p.keys)
	if err != nil && ctx.Err() != nil {
		return fanout.Base{}, false, ctx.Err()
	}
	if err != nil {
		p.errors.Add(1)
		p.healthy.Store(false)
		return fanout.Base{}, false, err
	}
	p.healthy.Store(true)
	return fanout.Base{Counts: c, Watermark: w}, ok, nil
}

// Healthy reports whether the last read succeeded.
func (p *Poller) Healthy() bool { return p.healthy.Load() }

// Errors returns how many reads failed so far.
func (p *Poller) Errors() int64 { return p.errors.Load() }

// Run reads until ctx ends. A failing Redis is logged once per outage; the
// hub keeps counting from the stream meanwhile.
func (p *Poller) Run(ctx context.Context) error {
	t := time.NewTicker(p.every)
	defer t.Stop()
	failing := false
	for {
		b, ok, err := p.Read(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if !failing {
				p.log.Warn("counts reader failing; counting from the stream alone meanwhile", "err", err)
				failing = true
			}
		default:
			if failing {
				p.log.Info("counts reader recovered")
				failing = false
			}
			if ok {
				p.sink.Rebase(b)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
