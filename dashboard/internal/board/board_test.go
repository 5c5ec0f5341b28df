package board

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

const batch = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// events returns valid events with sequences from..to.
func events(from, to uint64) []task.Event {
	var es []task.Event
	for s := from; s <= to; s++ {
		p := task.Priorities[s%task.NumPriorities]
		es = append(es, task.Event{Seq: s, Time: t0.Add(time.Duration(s) * time.Millisecond),
			Task: task.Task{BatchID: batch, ID: int64(s), Owner: fmt.Sprintf("owner %d", s), Priority: p}})
	}
	return es
}

func seqs(s *State) []uint64 {
	var out []uint64
	for i := range s.Len() {
		out = append(out, s.Event(i).Seq)
	}
	return out
}

func TestApply(t *testing.T) {
	tests := []struct {
		name   string
		frames []task.Frame
		seq    uint64
		counts task.Counts
		list   []uint64
	}{
		{
			name:   "snapshot",
			frames: []task.Frame{{Type: task.FrameSnapshot, Seq: 3, Counts: task.Counts{5, 0, 1, 0}, Events: events(1, 3)}},
			seq:    3, counts: task.Counts{5, 0, 1, 0}, list: []uint64{3, 2, 1},
		},
		{
			name: "updates add newest first",
			frames: []task.Frame{
				{Type: task.FrameSnapshot, Seq: 2, Counts: task.Counts{1, 1, 0, 0}, Events: events(1, 2)},
				{Type: task.FrameUpdate, Seq: 4, Counts: task.Counts{1, 1, 1, 1}, Events: events(3, 4)},
			},
			seq: 4, counts: task.Counts{1, 1, 1, 1}, list: []uint64{4, 3, 2, 1},
		},
		{
			name: "resumed update repeats events",
			frames: []task.Frame{
				{Type: task.FrameSnapshot, Seq: 3, Counts: task.Counts{3}, Events: events(1, 3)},
				{Type: task.FrameUpdate, Seq: 5, Counts: task.Counts{5}, Events: events(2, 5)},
			},
			seq: 5, counts: task.Counts{5}, list: []uint64{5, 4, 3, 2, 1},
		},
		{
			name: "update without events still moves counts",
			frames: []task.Frame{
				{Type: task.FrameSnapshot, Seq: 1, Counts: task.Counts{1}, Events: events(1, 1)},
				{Type: task.FrameUpdate, Seq: 1, Counts: task.Counts{1, 7}},
			},
			seq: 1, counts: task.Counts{1, 7}, list: []uint64{1},
		},
		{
			name: "snapshot after a relay restart replaces everything",
			frames: []task.Frame{
				{Type: task.FrameSnapshot, Seq: 9, Counts: task.Counts{9}, Events: events(8, 9)},
				{Type: task.FrameSnapshot, Seq: 2, Counts: task.Counts{0, 2}, Events: events(1, 2)},
			},
			seq: 2, counts: task.Counts{0, 2}, list: []uint64{2, 1},
		},
		{
			name:   "empty stream",
			frames: []task.Frame{{Type: task.FrameSnapshot}},
			seq:    0, counts: task.Counts{}, list: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(10)
			for i, f := range tt.frames {
				if err := s.Apply(f, t0.Add(time.Duration(i)*time.Second)); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			if s.Seq != tt.seq || s.Counts != tt.counts {
				t.Errorf("seq %d counts %v, want %d %v", s.Seq, s.Counts, tt.seq, tt.counts)
			}
			if got := seqs(s); !reflect.DeepEqual(got, tt.list) {
				t.Errorf("list %v, want %v", got, tt.list)
			}
			if s.Frames != len(tt.frames) {
				t.Errorf("frames %d, want %d", s.Frames, len(tt.frames))
			}
		})
	}
}

func TestApplyBadFrameChangesNothing(t *testing.T) {
	bad := func(mod func(*task.Frame)) task.Frame {
		f := task.Frame{Type: task.FrameUpdate, Seq: 6, Counts: task.Counts{4, 1, 0, 1}, Events: events(4, 6)}
		mod(&f)
		return f
	}
	tests := []struct {
		name string
		json string
		f    task.Frame
	}{
		{name: "not json", json: `{"type":"update",`},
		{name: "unknown priority", json: `{"type":"update","seq":4,"counts":{"Urgent":1},"events":[]}`},
		{name: "counts not numbers", json: `{"type":"update","seq":4,"counts":{"Low":"x"}}`},
		{name: "unknown type", f: bad(func(f *task.Frame) { f.Type = "hello" })},
		{name: "negative count", f: bad(func(f *task.Frame) { f.Counts[2] = -1 })},
		{name: "events out of order", f: bad(func(f *task.Frame) { f.Events[0], f.Events[1] = f.Events[1], f.Events[0] })},
		{name: "event after frame", f: bad(func(f *task.Frame) { f.Seq = 5 })},
		{name: "event without owner", f: bad(func(f *task.Frame) { f.Events[2].Owner = "" })},
		{name: "event with bad batch", f: bad(func(f *task.Frame) { f.Events[1].BatchID = "<b>" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(10)
			if err := s.Apply(task.Frame{Type: task.FrameSnapshot, Seq: 3, Counts: task.Counts{3}, Events: events(1, 3)}, t0); err != nil {
				t.Fatal(err)
			}
			before := *s
			before.events = append([]task.Event(nil), s.events...)
			var err error
			if tt.json != "" {
				err = s.ApplyJSON([]byte(tt.json), t0.Add(time.Second))
			} else {
				err = s.Apply(tt.f, t0.Add(time.Second))
			}
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("err = %v, want ErrBadFrame", err)
			}
			if s.Rejected != 1 {
				t.Errorf("rejected = %d, want 1", s.Rejected)
			}
			s.Rejected = 0
			if s.Seq != before.Seq || s.Counts != before.Counts || s.Frames != before.Frames ||
				!reflect.DeepEqual(seqs(s), seqs(&before)) {
				t.Errorf("state changed: seq %d counts %v list %v", s.Seq, s.Counts, seqs(s))
			}
		})
	}
}

func TestApplyJSON(t *testing.T) {
	s := New(0)
	f := task.Frame{Type: task.FrameSnapshot, Seq: 2, Counts: task.Counts{1, 0, 0, 1}, Events: events(1, 2)}
	f.Events[0].Owner = `<img src=x onerror=alert(1)>`
	data := mustJSON(t, f)
	if err := s.ApplyJSON(data, t0); err != nil {
		t.Fatal(err)
	}
	if got := s.Event(1).Owner; got != `<img src=x onerror=alert(1)>` {
		t.Errorf("owner = %q, want it kept as given", got)
	}
	if s.Limit() != DefaultLimit {
		t.Errorf("limit = %d, want %d", s.Limit(), DefaultLimit)
	}
}

func TestListBounded(t *testing.T) {
	const limit = 500
	s := New(limit)
	if err := s.Apply(task.Frame{Type: task.FrameSnapshot}, t0); err != nil {
		t.Fatal(err)
	}
	var seq uint64
	for i := range 100 {
		f := task.Frame{Type: task.FrameUpdate, Seq: seq + 34, Counts: task.Counts{int64(seq + 34)}, Events: events(seq+1, seq+34)}
		if err := s.Apply(f, t0.Add(time.Duration(i)*16*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		seq += 34
		if s.Len() != min(int(seq), limit) {
			t.Fatalf("after %d events the list holds %d, want %d", seq, s.Len(), min(int(seq), limit))
		}
		if len(s.events) > 2*limit {
			t.Fatalf("buffer grew to %d", len(s.events))
		}
	}
	if s.Event(0).Seq != seq || s.Event(limit-1).Seq != seq-limit+1 {
		t.Errorf("list spans %d..%d, want %d..%d", s.Event(0).Seq, s.Event(limit-1).Seq, seq, seq-limit+1)
	}
	// A single frame larger than the limit keeps only its newest events.
	big := task.Frame{Type: task.FrameUpdate, Seq: seq + 700, Events: events(seq+1, seq+700)}
	if err := s.Apply(big, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s.Len() != limit || s.Event(0).Seq != seq+700 || s.Event(limit-1).Seq != seq+201 {
		t.Errorf("after a big frame: len %d, %d..%d", s.Len(), s.Event(0).Seq, s.Event(limit-1).Seq)
	}
}

func TestSince(t *testing.T) {
	s := New(10)
	m := s.Mark()
	if n, redraw := s.Since(m); n != 0 {
		t.Errorf("empty state: %d fresh (redraw %v), want 0", n, redraw)
	}
	apply := func(f task.Frame) {
		t.Helper()
		if err := s.Apply(f, t0); err != nil {
			t.Fatal(err)
		}
	}
	apply(task.Frame{Type: task.FrameSnapshot, Seq: 3, Events: events(1, 3)})
	if n, redraw := s.Since(m); n != 3 || !redraw {
		t.Errorf("after a snapshot: %d fresh, redraw %v; want 3, true", n, redraw)
	}
	m = s.Mark()
	apply(task.Frame{Type: task.FrameUpdate, Seq: 5, Events: events(2, 5)}) // 2 and 3 repeated
	if n, redraw := s.Since(m); n != 2 || redraw {
		t.Errorf("after an update: %d fresh, redraw %v; want 2, false", n, redraw)
	}
	m = s.Mark()
	apply(task.Frame{Type: task.FrameUpdate, Seq: 5})
	if n, redraw := s.Since(m); n != 0 || redraw {
		t.Errorf("after an empty update: %d fresh, redraw %v; want 0, false", n, redraw)
	}
	apply(task.Frame{Type: task.FrameUpdate, Seq: 20, Events: events(6, 20)})
	if n, redraw := s.Since(m); n != 10 || !redraw {
		t.Errorf("after more events than the list holds: %d fresh, redraw %v; want 10, true", n, redraw)
	}
}

func TestRate(t *testing.T) {
	var r Rate
	if got := r.PerSecond(t0); got != 0 {
		t.Errorf("empty rate = %v", got)
	}
	// 2,000 events per second for 5 s, one sample per 1/50 s.
	for i := range 251 {
		r.Observe(t0.Add(time.Duration(i)*20*time.Millisecond), int64(i*40))
	}
	now := t0.Add(5 * time.Second)
	if got := r.PerSecond(now); got < 1990 || got > 2010 {
		t.Errorf("rate = %v, want about 2000", got)
	}
	if len(r.samples) > 160 {
		t.Errorf("kept %d samples, want only the window's", len(r.samples))
	}
	if got := r.PerSecond(now.Add(RateWindow)); got != 0 {
		t.Errorf("rate after traffic stopped = %v, want 0", got)
	}
	if got := r.PerSecond(now.Add(RateWindow / 2)); got <= 0 || got >= 2000 {
		t.Errorf("rate while traffic stops = %v, want between 0 and 2000", got)
	}
	r.Reset()
	if got := r.PerSecond(now); got != 0 {
		t.Errorf("rate after reset = %v", got)
	}
}

func TestReconnectBackoff(t *testing.T) {
	b := ReconnectBackoff()
	b.Rand = func() float64 { return 0.5 }
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second} {
		if got := b.Next(); got != want {
			t.Errorf("delay %d = %v, want %v", i, got, want)
		}
	}
}

func BenchmarkApplyJSON(b *testing.B) {
	// 2,000 events per second at 60 frames per second: 34 events a frame.
	const perFrame = 34
	frames := make([][]byte, 64)
	var seq uint64
	for i := range frames {
		frames[i] = mustJSON(b, task.Frame{Type: task.FrameUpdate, Seq: seq + perFrame,
			Counts: task.Counts{int64(seq)}, Events: events(seq+1, seq+perFrame)})
		seq += perFrame
	}
	s := New(DefaultLimit)
	b.ReportAllocs()
	b.SetBytes(int64(len(frames[0])))
	i := 0
	for b.Loop() {
		if i%len(frames) == 0 {
			s.Seq = 0
		}
		if err := s.ApplyJSON(frames[i%len(frames)], t0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
