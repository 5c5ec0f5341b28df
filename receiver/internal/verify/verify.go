// Package verify is "receiver verify": it reads the stream and Redis, and
// prints per priority and per batch what the stream implies and what Redis
// holds, as of Redis's watermark. It fails on any difference; with
// --repair it rebuilds Redis from the latest checkpoint and the stream.
package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/envflag"
	"github.com/hookpipe/hookpipe/plumbing/natsconn"
	"github.com/hookpipe/hookpipe/plumbing/program"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/plumbing/taskstream"
	"github.com/hookpipe/hookpipe/receiver/internal/fold"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// ErrDifferent is returned when Redis does not hold what the stream
// implies.
var ErrDifferent = errors.New("redis differs from the stream")

// Config is what verify is told.
type Config struct {
	NATS      natsconn.Options
	Redis     redisconn.Options
	KeyPrefix string
	// KeepBatches must be the receivers' --keep-batches; default 10,000.
	KeepBatches int
	// DedupeTTL must be the receivers' --dedupe-ttl, for the seen keys a
	// repair rebuilds; default 24h.
	DedupeTTL time.Duration
	// Repair rebuilds Redis from the checkpoint and the stream when it
	// differs.
	Repair bool
	// Timeout bounds the whole run; default 5m.
	Timeout time.Duration
}

// Main is "receiver verify" as a program.
type Main struct {
	Config Config
	// Out receives the report; default stdout.
	Out io.Writer
	// Log receives what went on; default stderr at warn.
	Log *slog.Logger

	done chan struct{}
}

var _ program.Job = (*Main)(nil)

// NewMain returns a Main with the defaults.
func NewMain() *Main {
	return &Main{Config: Config{NATS: natsconn.DefaultOptions(), Redis: redisconn.DefaultOptions(),
		KeyPrefix: task.DefaultKeyPrefix, KeepBatches: 10000, DedupeTTL: 24 * time.Hour, Timeout: 5 * time.Minute}}
}

// ParseFlags reads the settings from args and the environment.
func (m *Main) ParseFlags(_ context.Context, args []string) error {
	fs := envflag.New("receiver verify", "Compares the counts in Redis with what the stream implies, per priority and per batch;\nexits 1 on any difference. --repair rebuilds Redis from the latest checkpoint and the stream.", os.Getenv, os.Stderr)
	c := &m.Config
	c.NATS.Bind(fs)
	c.Redis.Bind(fs)
	fs.String(&c.KeyPrefix, "key-prefix", "HOOKPIPE_KEY_PREFIX", "prefix of every Redis key")
	fs.Int(&c.KeepBatches, "keep-batches", "HOOKPIPE_KEEP_BATCHES", "how many of the most recent batches the receivers keep")
	fs.Duration(&c.DedupeTTL, "dedupe-ttl", "HOOKPIPE_DEDUPE_TTL", "how long the receivers remember a webhook id, for the ids a repair rebuilds")
	fs.Bool(&c.Repair, "repair", "", "rebuild Redis from the checkpoint and the stream when it differs")
	fs.Duration(&c.Timeout, "timeout", "", "limit of the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return errors.Join(c.NATS.Validate(), c.Redis.Validate())
}

// Run verifies, and repairs when asked; it returns ErrDifferent when Redis
// still differs at the end.
func (m *Main) Run(ctx context.Context) error {
	m.done = make(chan struct{})
	defer close(m.done)
	if m.Out == nil {
		m.Out = os.Stdout
	}
	if m.Log == nil {
		m.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithTimeout(ctx, m.Config.Timeout)
	defer cancel()
	nc, err := natsconn.Connect(m.Config.NATS, nats.Name("hookpipe-verify"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	rdb, err := redisconn.New(m.Config.Redis, redisconn.Tuning{Name: "hookpipe-verify"})
	if err != nil {
		return err
	}
	defer rdb.Close()
	v := &verifier{js: js, rdb: rdb, keys: task.Keys{Prefix: m.Config.KeyPrefix}, keep: m.Config.KeepBatches,
		seenTTL: m.Config.DedupeTTL, out: m.Out, log: m.Log}
	same, err := v.check(ctx)
	if err != nil || same || !m.Config.Repair {
		if err == nil && !same {
			err = ErrDifferent
		}
		return err
	}
	if err := v.repair(ctx); err != nil {
		return err
	}
	fmt.Fprintln(m.Out, "\nafter the repair:")
	if same, err = v.check(ctx); err == nil && !same {
		err = ErrDifferent
	}
	return err
}

// Done is closed once Run returned.
func (m *Main) Done() <-chan struct{} { return m.done }

// Close does nothing: Run cleans up after itself.
func (m *Main) Close() error { return nil }

type verifier struct {
	js      jetstream.JetStream
	rdb     redis.UniversalClient
	keys    task.Keys
	keep    int
	seenTTL time.Duration
	out     io.Writer
	log     *slog.Logger
}

// implied folds the stream from its beginning, or from the newest
// checkpoint at or below to when the stream no longer holds its beginning,
// up to sequence to. It returns the state, how many events before the
// first one held were counted by nobody, and how many stored messages it
// skipped as the fold does: not tasks a receiver stored.
func (v *verifier) implied(ctx context.Context, st jetstream.Stream, info *jetstream.StreamInfo, to uint64) (_ *fold.State, lost, skipped uint64, from string, _ error) {
	first := info.State.FirstSeq
	base := fold.NewState(0, v.keep)
	from = "the stream's beginning"
	if first > 1 {
		kv, err := v.js.KeyValue(ctx, taskstream.CheckpointBucket)
		var cp *fold.State
		if err == nil {
			cp, err = fold.NewCheckpoints(kv, v.keys, v.keep).AtOrBelow(ctx, to, info.Created)
		}
		switch {
		case err == nil && cp.Seq+1 >= first:
			base, from = cp, fmt.Sprintf("the checkpoint at sequence %d", cp.Seq)
		case err == nil:
			base, lost = cp, first-1-cp.Seq
			from = fmt.Sprintf("the checkpoint at sequence %d, the stream holding only from %d", cp.Seq, first)
		default:
			base, lost = fold.NewState(first-1, v.keep), first-1
			from = fmt.Sprintf("sequence %d: no checkpoint, and the stream holds nothing before it", first)
		}
	}
	if to <= base.Seq || info.State.Msgs == 0 {
		return base, lost, 0, from, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: max(base.Seq+1, first),
	})
	if err != nil {
		return nil, 0, 0, "", fmt.Errorf("verify: read the stream: %w", err)
	}
	for passed := false; base.Seq < to && !passed; {
		// Asking for no more than is left ends the fetch as soon as it has
		// them, rather than at its deadline.
		batch, err := cons.Fetch(int(min(1000, to-base.Seq)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, 0, 0, "", fmt.Errorf("verify: read the stream: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			seq := meta.Sequence.Stream
			if seq > to {
				// Messages up to to were deleted from the stream: nothing
				// more to count.
				passed = true
				base.Seq = to
				break
			}
			ev := fold.Event{Seq: seq, Time: meta.Timestamp}
			if t, err := task.DecodeStored(m.Data(), m.Headers().Get(task.HeaderFingerprint)); err == nil {
				ev.Task = t
			} else {
				ev.Skipped = true
				skipped++
			}
			base.Apply(ev)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, 0, 0, "", fmt.Errorf("verify: read the stream: %w", err)
		}
		if got == 0 {
			break // the stream holds nothing more
		}
	}
	return base, lost, skipped, from, nil
}

// check compares Redis with the stream as of Redis's watermark, prints the
// comparison and reports whether they agree.
func (v *verifier) check(ctx context.Context) (bool, error) {
	st, err := v.js.Stream(ctx, task.StreamName)
	if err != nil {
		return false, fmt.Errorf("verify: stream %s: %w", task.StreamName, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("verify: stream %s: %w", task.StreamName, err)
	}
	redisState, have, err := fold.NewProjection(v.rdb, v.keys, v.keep).Snapshot(ctx)
	if err != nil {
		return false, err
	}
	at := redisState.Seq
	if !have || at > info.State.LastSeq {
		at = info.State.LastSeq
	}
	want, lost, skipped, from, err := v.implied(ctx, st, info, at)
	if err != nil {
		return false, err
	}
	fmt.Fprintf(v.out, "stream %s holds sequences %d..%d; counted from %s\n", task.StreamName, info.State.FirstSeq, info.State.LastSeq, from)
	if lost > 0 {
		fmt.Fprintf(v.out, "LOST: %d events the stream dropped before any fold counted them\n", lost)
	}
	if skipped > 0 {
		fmt.Fprintf(v.out, "skipped %d stored messages that are not tasks a receiver stored, as the fold and the relay do\n", skipped)
	}
	if !have {
		fmt.Fprintln(v.out, "redis holds no watermark: it lost the counts (a running receiver restores them)")
	} else {
		fmt.Fprintf(v.out, "redis is at sequence %d (watermark); compared as of %d\n", redisState.Seq, at)
	}
	same := have && redisState.Seq == want.Seq
	tw := tabwriter.NewWriter(v.out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "priority\tstream\tredis\tdifference\t")
	for i, p := range task.Priorities {
		d := redisState.Counts[i] - want.Counts[i]
		same = same && d == 0
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t\n", p, want.Counts[i], redisState.Counts[i], diff(d))
	}
	d := redisState.Counts.Total() - want.Counts.Total()
	fmt.Fprintf(tw, "total\t%d\t%d\t%s\t\n", want.Counts.Total(), redisState.Counts.Total(), diff(d))
	tw.Flush()

	var differ []string
	ids := map[string]bool{}
	for _, b := range want.Batches() {
		ids[b.ID] = true
	}
	for _, b := range redisState.Batches() {
		ids[b.ID] = true
	}
	for id := range ids {
		w, _ := want.Batch(id)
		r, _ := redisState.Batch(id)
		if w.Counts != r.Counts || w.Size != r.Size {
			differ = append(differ, fmt.Sprintf("  %s: stream %v of %d, redis %v of %d", id, w.Counts, w.Size, r.Counts, r.Size))
		}
	}
	slices.Sort(differ)
	fmt.Fprintf(v.out, "batches: %d in the stream's fold, %d in redis, %d differ\n", want.Len(), redisState.Len(), len(differ))
	for i, line := range differ {
		if i == 20 {
			fmt.Fprintf(v.out, "  … and %d more\n", len(differ)-20)
			break
		}
		fmt.Fprintln(v.out, line)
	}
	same = same && len(differ) == 0
	if same {
		fmt.Fprintf(v.out, "OK: redis holds what the stream implies as of sequence %d\n", at)
	} else {
		fmt.Fprintln(v.out, "DIFFERENT: redis does not hold what the stream implies")
	}
	return same, nil
}

func diff(d int64) string {
	if d == 0 {
		return ""
	}
	return fmt.Sprintf("%+d", d)
}

// repair writes the stream's fold up to its last message into Redis, and
// rebuilds the seen keys. Running receivers fold on from there: a fold
// ahead of the new watermark goes back to it.
func (v *verifier) repair(ctx context.Context) error {
	st, err := v.js.Stream(ctx, task.StreamName)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	want, _, _, _, err := v.implied(ctx, st, info, info.State.LastSeq)
	if err != nil {
		return err
	}
	p := fold.NewProjection(v.rdb, v.keys, v.keep)
	for attempt := 0; ; attempt++ {
		w, have, err := p.Watermark(ctx)
		if err != nil {
			return err
		}
		ok, err := p.Restore(ctx, want, w, !have)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if attempt == 10 {
			return errors.New("verify: the watermark kept moving; stop the receivers and repair again")
		}
	}
	fmt.Fprintf(v.out, "\nrepaired: redis rebuilt from the stream up to sequence %d\n", want.Seq)
	f := fold.New(v.js, v.rdb, fold.Options{Keys: v.keys, KeepBatches: v.keep, SeenTTL: v.seenTTL, Log: v.log})
	n, err := f.RebuildSeen(ctx, info.State.FirstSeq, info.State.LastSeq)
	if err != nil {
		return fmt.Errorf("verify: rebuild seen keys: %w", err)
	}
	fmt.Fprintf(v.out, "rebuilt %d seen keys from the stream's message ids\n", n)
	return nil
}
