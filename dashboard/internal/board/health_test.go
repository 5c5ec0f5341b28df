package board

import (
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

func TestFreshnessAndNotice(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	ev := func(seq uint64, at time.Time) task.Event {
		return task.Event{Seq: seq, Time: at, Task: task.Task{BatchID: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", ID: int64(seq), Owner: "o", Priority: task.Low}}
	}
	s := New(10)
	// The browser's clock is an hour off: only durations on one clock count.
	browser := t0.Add(time.Hour)
	if err := s.Apply(task.Frame{Type: task.FrameSnapshot, Seq: 1, Counts: task.Counts{1}, Events: []task.Event{ev(1, t0)},
		Sent: t0.Add(time.Second)}, browser); err != nil {
		t.Fatal(err)
	}
	if _, n := s.Fresh(); n != 0 {
		t.Errorf("a snapshot gave a freshness; it may be a copy made earlier")
	}
	err := s.Apply(task.Frame{Type: task.FrameUpdate, Seq: 3, Counts: task.Counts{3},
		Events: []task.Event{ev(2, t0.Add(10*time.Millisecond)), ev(3, t0.Add(20*time.Millisecond))},
		Sent:   t0.Add(32 * time.Millisecond)}, browser)
	if err != nil {
		t.Fatal(err)
	}
	f, n := s.Fresh()
	if n != 1 || f.Delay != 12*time.Millisecond {
		t.Fatalf("freshness %+v after %d updates, want the newest event's 12 ms to the relay's socket", f, n)
	}
	if got := f.AcceptToScreen(browser.Add(5 * time.Millisecond)); got != 17*time.Millisecond {
		t.Errorf("accept to screen drawn 5 ms after receipt = %v, want 17ms", got)
	}
	if s.Notice(browser) != "" {
		t.Errorf("healthy frames gave a notice: %q", s.Notice(browser))
	}

	// A degraded frame gives a notice that outlives it by NoticeHold.
	err = s.Apply(task.Frame{Type: task.FrameUpdate, Seq: 4, Counts: task.Counts{4}, Events: []task.Event{ev(4, t0)},
		Health: &task.Health{IntervalMS: 120, Capped: 3, StreamLag: DegradedLag - 1, FoldLag: 5000}}, browser)
	if err != nil {
		t.Fatal(err)
	}
	notice := s.Notice(browser.Add(NoticeHold))
	for _, want := range []string{"every 120 ms", "leaves events out", "5000 events behind"} {
		if !strings.Contains(notice, want) {
			t.Errorf("notice %q does not say %q", notice, want)
		}
	}
	if strings.Contains(notice, "relay is") {
		t.Errorf("notice %q calls a stream lag under DegradedLag degraded", notice)
	}
	if got := s.Notice(browser.Add(NoticeHold + time.Millisecond)); got != "" {
		t.Errorf("notice %q still shown after NoticeHold", got)
	}
	if _, n := s.Fresh(); n != 1 {
		t.Errorf("an update without a send time changed the freshness")
	}
}
