package fold

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// randomEvents returns n events after seq 0 over a few batch ids, some of
// them skipped, so that batches leave and come back to a small index.
func randomEvents(r *rand.Rand, n, batches int) []Event {
	evs := make([]Event, n)
	for i := range evs {
		seq := uint64(i + 1)
		ev := Event{Seq: seq, Time: t0.Add(time.Duration(i) * time.Millisecond)}
		if r.IntN(10) == 0 {
			ev.Skipped = true
		} else {
			ev.Task = task.Task{
				BatchID:  fmt.Sprintf("00000000-0000-4000-8000-%012d", r.IntN(batches)),
				ID:       int64(i),
				Owner:    "Ann",
				Priority: task.Priorities[r.IntN(task.NumPriorities)],
			}
			if r.IntN(3) == 0 {
				ev.Task.BatchSize = int64(1 + r.IntN(100))
			}
		}
		evs[i] = ev
	}
	return evs
}

func newProjection(t *testing.T, keep int) *Projection {
	t.Helper()
	url, prefix := testenv.Redis(t)
	opt, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() {
		ctx := context.Background()
		if keys, _ := rdb.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	return NewProjection(rdb, task.Keys{Prefix: prefix}, keep)
}

func equalStates(t *testing.T, what string, got, want *State) {
	t.Helper()
	if got.Seq != want.Seq || got.Counts != want.Counts {
		t.Fatalf("%s: seq %d counts %v, want seq %d counts %v", what, got.Seq, got.Counts, want.Seq, want.Counts)
	}
	g, w := got.Batches(), want.Batches()
	if len(g) != len(w) {
		t.Fatalf("%s: %d batches, want %d", what, len(g), len(w))
	}
	for i := range w {
		if g[i] != w[i] {
			t.Fatalf("%s: batch %d is %+v, want %+v", what, i, g[i], w[i])
		}
	}
}

// The script folds events into Redis exactly as State.Apply does, however
// the events are cut into runs, when runs are repeated, and when two folds
// with different cuts apply the same stream at once: Redis then holds what
// State holds.
func TestScriptFoldsAsStateDoes(t *testing.T) {
	const keep = 6
	r := rand.New(rand.NewPCG(1, 2))
	evs := randomEvents(r, 600, 15)
	want := NewState(0, keep)
	for _, ev := range evs {
		want.Apply(ev)
	}
	ctx := context.Background()
	for round := range 4 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			p := newProjection(t, keep)
			if ok, err := p.Restore(ctx, NewState(0, keep), 0, true); err != nil || !ok {
				t.Fatalf("restore an empty projection: %v %v", ok, err)
			}
			// Two cursors over the same events, each cutting runs of its own
			// and sometimes repeating its last run, as a fold retrying after
			// a timeout would.
			cursors := []uint64{0, 0}
			folds := 2
			if round == 0 {
				folds = 1 // one fold alone
			}
			for slicesMin(cursors[:folds]) < 600 {
				c := r.IntN(folds)
				from := cursors[c]
				if from >= 600 {
					continue
				}
				n := 1 + r.IntN(keep)
				run := evs[from:min(int(from)+n, 600)]
				last := run[len(run)-1].Seq
				for range 1 + r.IntN(2) {
					verdict, w, err := p.apply(ctx, from+1, last, run, nil, nil)
					if err != nil {
						t.Fatal(err)
					}
					switch verdict {
					case applied:
					case gap:
						// This cursor is ahead of Redis: the other fold did not
						// get there. Only possible when Redis went back; not here.
						t.Fatalf("gap at %d with W %d", from+1, w)
					default:
						t.Fatalf("verdict %q", verdict)
					}
				}
				cursors[c] = last
			}
			got, ok, err := p.Snapshot(ctx)
			if err != nil || !ok {
				t.Fatalf("snapshot: %v %v", ok, err)
			}
			equalStates(t, "redis", got, want)
		})
	}
}

func TestScriptRefusesGapsAndAnAbsentWatermark(t *testing.T) {
	ctx := context.Background()
	p := newProjection(t, 10)
	evs := randomEvents(rand.New(rand.NewPCG(3, 4)), 20, 3)
	if v, _, err := p.apply(ctx, 1, 5, evs[:5], nil, nil); err != nil || v != absent {
		t.Fatalf("apply without a watermark: %q %v, want %q", v, err, absent)
	}
	if ok, err := p.Restore(ctx, NewState(0, 10), 0, true); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if ok, err := p.Restore(ctx, NewState(0, 10), 0, true); err != nil || ok {
		t.Fatalf("a second restore expecting no watermark: %v %v, want refused", ok, err)
	}
	if v, w, err := p.apply(ctx, 6, 10, evs[5:10], nil, nil); err != nil || v != gap || w != 0 {
		t.Fatalf("apply 6..10 on W 0: %q %d %v, want a gap at 0", v, w, err)
	}
	if v, w, err := p.apply(ctx, 1, 5, evs[:5], nil, nil); err != nil || v != applied || w != 5 {
		t.Fatalf("apply 1..5: %q %d %v", v, w, err)
	}
	// A repeated run changes nothing.
	before, _, _ := p.Snapshot(ctx)
	if v, w, err := p.apply(ctx, 1, 5, evs[:5], nil, nil); err != nil || v != applied || w != 5 {
		t.Fatalf("apply 1..5 again: %q %d %v", v, w, err)
	}
	after, _, _ := p.Snapshot(ctx)
	equalStates(t, "after a repeated run", after, before)
}

func TestRestoreAndSnapshotRoundTrip(t *testing.T) {
	ctx := context.Background()
	p := newProjection(t, 8)
	st := NewState(0, 8)
	for _, ev := range randomEvents(rand.New(rand.NewPCG(5, 6)), 300, 20) {
		st.Apply(ev)
	}
	if ok, err := p.Restore(ctx, st, 0, true); err != nil || !ok {
		t.Fatal(ok, err)
	}
	got, ok, err := p.Snapshot(ctx)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	equalStates(t, "restored", got, st)
	// Restoring over it, expecting its watermark, replaces every batch.
	small := NewState(0, 8)
	for _, ev := range randomEvents(rand.New(rand.NewPCG(7, 8)), 10, 2) {
		small.Apply(ev)
	}
	if ok, err := p.Restore(ctx, small, st.Seq, false); err != nil || !ok {
		t.Fatal(ok, err)
	}
	got, _, _ = p.Snapshot(ctx)
	equalStates(t, "restored over", got, small)
	if n, _ := p.rdb.Keys(ctx, p.keys.Batch("*")).Result(); len(n) != small.Len() {
		t.Fatalf("%d batch hashes left, want %d", len(n), small.Len())
	}
}

func TestStateKeepsTheMostRecentBatches(t *testing.T) {
	st := NewState(0, 2)
	ev := func(seq uint64, batch string) Event {
		return Event{Seq: seq, Time: t0, Task: task.Task{BatchID: batch, Owner: "A", Priority: task.Low}}
	}
	st.Apply(ev(1, "a"))
	st.Apply(ev(2, "b"))
	st.Apply(ev(3, "a"))
	st.Apply(ev(4, "c")) // b is the least recent: it goes
	if _, ok := st.Batch("b"); ok || st.Len() != 2 {
		t.Fatalf("batches %+v, want a and c", st.Batches())
	}
	st.Apply(ev(5, "b")) // b comes back from zero; a goes
	b, _ := st.Batch("b")
	if b.Counts.Total() != 1 || st.Counts.Total() != 5 {
		t.Fatalf("batch b %+v, totals %v", b, st.Counts)
	}
	if st.Apply(ev(5, "x")) || st.Apply(ev(2, "x")) {
		t.Fatal("an event at or below Seq was applied")
	}
}

func TestCheckpointEncoding(t *testing.T) {
	st := NewState(0, 50)
	for _, ev := range randomEvents(rand.New(rand.NewPCG(9, 10)), 500, 80) {
		st.Apply(ev)
	}
	created := t0.Add(-time.Hour)
	b, err := encodeCheckpoint(st, created)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := checkpointSeq(b); !ok || n != st.Seq {
		t.Fatalf("checkpointSeq = %d %v, want %d", n, ok, st.Seq)
	}
	got, at, err := decodeCheckpoint(b, 50)
	if err != nil || !at.Equal(created) {
		t.Fatalf("decode: %v at %v", err, at)
	}
	equalStates(t, "decoded", got, st)
	if _, _, err := decodeCheckpoint([]byte("12\nnot gzip"), 50); err == nil {
		t.Fatal("a broken checkpoint decoded")
	}
}

// A checkpoint of 10,000 batches fits a NATS message of 1 MB.
func TestCheckpointOfTheDefaultKeepFitsOneMessage(t *testing.T) {
	st := NewState(0, 10000)
	r := rand.New(rand.NewPCG(11, 12))
	for i := range 10000 {
		st.Apply(Event{Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Second), Task: task.Task{
			BatchID: fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Int64N(1<<48)),
			Owner:   "A", Priority: task.Critical, BatchSize: int64(r.IntN(1000000)),
		}})
	}
	b, err := encodeCheckpoint(st, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 900<<10 {
		t.Fatalf("checkpoint of %d batches is %d bytes, over 900 KiB", st.Len(), len(b))
	}
	t.Logf("checkpoint of %d batches: %d bytes", st.Len(), len(b))
}

func slicesMin(s []uint64) uint64 {
	m := s[0]
	for _, v := range s[1:] {
		m = min(m, v)
	}
	return m
}
