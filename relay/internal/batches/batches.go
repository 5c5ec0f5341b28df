// Package batches reads what Redis holds about each batch of tasks: its
// totals per priority, its announced size and when its latest task came.
package batches

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

// ErrNotFound is returned by Get for a batch Redis knows nothing of.
var ErrNotFound = errors.New("batches: no such batch")

// Store reads batch summaries under one key prefix.
type Store struct {
	rdb  redis.Cmdable
	keys task.Keys
}

// NewStore returns a Store reading keys from rdb.
func NewStore(rdb redis.Cmdable, keys task.Keys) *Store { return &Store{rdb: rdb, keys: keys} }

// List returns up to limit batches, the one with the latest task first.
func (s *Store) List(ctx context.Context, limit int) ([]task.BatchSummary, error) {
	zs, err := s.rdb.ZRevRangeWithScores(ctx, s.keys.Batches(), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("batches: list: %w", err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(zs))
	for i, z := range zs {
		id, _ := z.Member.(string)
		cmds[i] = pipe.HGetAll(ctx, s.keys.Batch(id))
	}
	if len(zs) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("batches: read: %w", err)
		}
	}
	out := make([]task.BatchSummary, 0, len(zs))
	for i, z := range zs {
		id, _ := z.Member.(string)
		b, err := summary(id, cmds[i].Val(), z.Score)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Get returns one batch, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (task.BatchSummary, error) {
	pipe := s.rdb.Pipeline()
	h := pipe.HGetAll(ctx, s.keys.Batch(id))
	score := pipe.ZScore(ctx, s.keys.Batches(), id)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return task.BatchSummary{}, fmt.Errorf("batches: get %s: %w", id, err)
	}
	if len(h.Val()) == 0 {
		return task.BatchSummary{}, ErrNotFound
	}
	return summary(id, h.Val(), score.Val())
}

func summary(id string, fields map[string]string, score float64) (task.BatchSummary, error) {
	b := task.BatchSummary{BatchID: id}
	if score > 0 {
		b.Updated = time.UnixMilli(int64(score)).UTC()
	}
	for name, v := range fields {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return b, fmt.Errorf("batches: %s field %s: %q is not an integer", id, name, v)
		}
		if name == task.BatchSizeField {
			b.Size = n
			continue
		}
		if p, err := task.ParsePriority(name); err == nil {
			b.Counts[p.Index()] = n
		}
	}
	return b, nil
}
