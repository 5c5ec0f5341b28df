package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookpipe/hookpipe/producer/internal/record"
	"github.com/hookpipe/hookpipe/producer/internal/send"
	"github.com/hookpipe/hookpipe/task"
)

func (m *Main) replay(ctx context.Context, args []string) error {
	cfg, fs, err := m.parse("replay", "producer replay [flags] FILE...", groupSend|groupReplay, args)
	if err != nil {
		return helpOK(err)
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(m.Stderr, "replay: name at least one recording")
		fs.Usage()
		return ErrUsage
	}
	speed, _ := record.ParseSpeed(cfg.Speed)
	log := newLogger(cfg, m.Stderr)

	// Read every file before sending anything, so that a bad recording
	// changes nothing.
	files := make([][]record.Line, fs.NArg())
	for i, name := range fs.Args() {
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
		if counts, err = newCountReader(cfg.RedisURL, cfg.KeyPrefix); err != nil {
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
	for i, lines := range files {
		log.Info("replaying", "file", fs.Arg(i), "tasks", len(lines), "speed", speed, "same_ids", cfg.SameIDs)
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
			sum := sender.SendBatch(ctx, batch[0].Task.BatchID, ds, gap, p.result(len(ds)))
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
		after, err := counts.read(context.WithoutCancel(ctx))
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
	c    *redis.Client
	keys task.Keys
}

func newCountReader(url, prefix string) (*countReader, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("counts: redis url: %w", err)
	}
	return &countReader{c: redis.NewClient(opt), keys: task.Keys{Prefix: prefix}}, nil
}

func (r *countReader) Close() error { return r.c.Close() }

func (r *countReader) read(ctx context.Context) (task.Counts, error) {
	var c task.Counts
	m, err := r.c.HGetAll(ctx, r.keys.Counts()).Result()
	if err != nil {
		return c, fmt.Errorf("counts: read %s: %w", r.keys.Counts(), err)
	}
	for _, p := range task.Priorities {
		if v, ok := m[p.String()]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return c, fmt.Errorf("counts: %s is %q: %w", p, v, err)
			}
			c[p.Index()] = n
		}
	}
	return c, nil
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
