package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/producer/internal/record"
	"github.com/hookpipe/hookpipe/producer/internal/send"
	"github.com/hookpipe/hookpipe/task"
)

func (m *Main) replay(ctx context.Context) error {
	cfg, log := m.cfg, m.log
	speed, _ := record.ParseSpeed(cfg.Speed)

	// Read every file before sending anything, so that a bad recording
	// changes nothing.
	files := make([][]record.Line, len(m.args))
	for i, name := range m.args {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		files[i], err = record.Read(f, name)
		f.Close()
		if err != nil {
			return err
		}
	}

	var counts *countReader
	var before task.Counts
	if cfg.Counts {
		var err error
		if counts, err = newCountReader(cfg.Redis, cfg.KeyPrefix); err != nil {
			return err
		}
		defer counts.Close()
		if before, err = counts.read(ctx); err != nil {
			return err
		}
		fmt.Fprintln(m.Stdout, "counts before:", formatCounts(before))
	}

	sender, err := send.New(cfg.senderConfig())
	if err != nil {
		return err
	}
	defer sender.Close()
	p := printer{w: m.Stdout}
	sender.OnRetry = p.retry
	var total send.Summary
	var maxSeq uint64 // the newest stream sequence answered
	for i, lines := range files {
		log.Info("replaying", "file", m.args[i], "tasks", len(lines), "speed", speed, "same_ids", cfg.SameIDs)
		for _, b := range splitBatches(lines) {
			if ctx.Err() != nil {
				break
			}
			if b.gapBefore && speed != record.Max {
				if !sleepCtx(ctx, speed.Gap(lines, b.from)) {
					break
				}
			}
			batch := lines[b.from:b.to]
			ds := make([]send.Delivery, len(batch))
			for j, l := range batch {
				id := l.WebhookID
				if !cfg.SameIDs {
					id = send.NewWebhookID()
				}
				ds[j] = send.Delivery{WebhookID: id, Task: l.Task}
			}
			gap := func(j int) time.Duration { return speed.Gap(batch, j) }
			show := p.result(len(ds))
			sum := sender.SendBatch(ctx, batch[0].Task.BatchID, ds, gap, func(i int, r send.Result) {
				maxSeq = max(maxSeq, r.Seq) // one result at a time
				show(i, r)
			})
			fmt.Fprintln(m.Stdout, sum)
			total.Size += sum.Size
			total.Sent += sum.Sent
			total.Accepted += sum.Accepted
			total.Duplicates += sum.Duplicates
			total.Failed += sum.Failed
			total.Cancelled += sum.Cancelled
			total.Retries += sum.Retries
			total.Duration += sum.Duration
		}
	}
	fmt.Fprintf(m.Stdout, "replayed %d tasks: %d accepted, %d duplicates, %d failed, %d cancelled, %d retries\n",
		total.Size, total.Accepted, total.Duplicates, total.Failed, total.Cancelled, total.Retries)
	if counts != nil {
		// Counts follow the stream within milliseconds: wait until they
		// include the last task answered.
		after, err := counts.readAt(context.WithoutCancel(ctx), maxSeq)
		if err != nil {
			return err
		}
		fmt.Fprintln(m.Stdout, "counts after: ", formatCounts(after))
		fmt.Fprintln(m.Stdout, "change:       ", formatChange(before, after))
	}
	if n := total.Failed + total.Cancelled; n > 0 {
		return fmt.Errorf("replay: %d tasks not delivered: %w", n, ErrFailed)
	}
	return ctx.Err()
}

// span is one batch of a recording: lines[from:to], and whether the
// recording paused before it.
type span struct {
	from, to  int
	gapBefore bool
}

// splitBatches cuts a recording where the batch id changes.
func splitBatches(lines []record.Line) []span {
	var out []span
	for i := range lines {
		if i == 0 || lines[i].Task.BatchID != lines[i-1].Task.BatchID {
			if len(out) > 0 {
				out[len(out)-1].to = i
			}
			out = append(out, span{from: i, gapBefore: i > 0 && lines[i].Offset > lines[i-1].Offset})
		}
	}
	if len(out) > 0 {
		out[len(out)-1].to = len(lines)
	}
	return out
}

// countReader reads the receiver's totals from Redis.
type countReader struct {
	c    redis.UniversalClient
	keys task.Keys
}

func newCountReader(o redisconn.Options, prefix string) (*countReader, error) {
	c, err := redisconn.New(o, redisconn.Tuning{Name: "hookpipe-producer"})
	if err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	return &countReader{c: c, keys: task.Keys{Prefix: prefix}}, nil
}

func (r *countReader) Close() error { return r.c.Close() }

func (r *countReader) read(ctx context.Context) (task.Counts, error) {
	c, _, _, err := redisconn.ReadCounts(ctx, r.c, r.keys)
	return c, err
}

// readAt reads the counts once they account for stream sequence seq, for
// 30 seconds at most.
func (r *countReader) readAt(ctx context.Context, seq uint64) (task.Counts, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		c, w, ok, err := redisconn.ReadCounts(ctx, r.c, r.keys)
		if err == nil && ok && w >= seq {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return c, fmt.Errorf("counts: still at sequence %d, not %d: %w", w, seq, errors.Join(err, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func formatCounts(c task.Counts) string {
	var b strings.Builder
	for _, p := range task.Priorities {
		fmt.Fprintf(&b, "%s=%d ", p, c.Of(p))
	}
	fmt.Fprintf(&b, "total=%d", c.Total())
	return b.String()
}

func formatChange(before, after task.Counts) string {
	var b strings.Builder
	for _, p := range task.Priorities {
		fmt.Fprintf(&b, "%s%+d ", p, after.Of(p)-before.Of(p))
	}
	d := after.Total() - before.Total()
	fmt.Fprintf(&b, "total%+d", d)
	if d == 0 {
		b.WriteString(" (unchanged)")
	}
	return b.String()
}
