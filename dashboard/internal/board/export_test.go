package board

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

func TestExport(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	ev := func(seq uint64, p task.Priority, id string, at time.Duration) task.Event {
		return task.Event{Seq: seq, Time: t0.Add(at), WebhookID: id, Task: task.Task{
			BatchID: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", ID: int64(seq), Owner: "Owner \"" + id + "\"", Priority: p, BatchSize: 10}}
	}
	s := New(4)
	events := []task.Event{
		ev(1, task.Low, "msg_dropped_by_the_limit", 0),
		ev(2, task.Critical, "msg_a", 0),
		ev(3, task.Low, "", 5*time.Millisecond), // sent without an id
		// The stream's clock went back: offsets never do.
		ev(4, task.Critical, "msg_b", -3*time.Millisecond),
		ev(5, task.Critical, "msg_c", 1500*time.Millisecond),
	}
	if err := s.Apply(task.Frame{Type: task.FrameSnapshot, Seq: 5, Counts: task.Counts{2, 0, 0, 3}, Events: events}, t0); err != nil {
		t.Fatal(err)
	}

	type line struct {
		task.Task
		WebhookID string `json:"webhookid"`
		OffsetMS  int64  `json:"offset_ms"`
	}
	read := func(x Export) []line {
		var out []line
		sc := bufio.NewScanner(bytes.NewReader(x.Data))
		for sc.Scan() {
			var l line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("line %q: %v", sc.Bytes(), err)
			}
			if _, err := task.Decode(sc.Bytes()); err != nil {
				t.Fatalf("line %q is not a task the receiver takes: %v", sc.Bytes(), err)
			}
			out = append(out, l)
		}
		return out
	}

	// The list holds events 2 to 5; 3 has no id.
	x := s.Export(Filter{}, s.Seq)
	got := read(x)
	if x.Lines != 3 || x.Unnamed != 1 || len(got) != 3 {
		t.Fatalf("export: %d lines, %d unnamed, %d read; want 3, 1, 3:\n%s", x.Lines, x.Unnamed, len(got), x.Data)
	}
	for i, want := range []struct {
		ev     int
		offset int64
	}{{1, 0}, {3, 0}, {4, 1500}} {
		e := events[want.ev]
		if got[i].WebhookID != e.WebhookID || got[i].OffsetMS != want.offset || got[i].Task != e.Task {
			t.Errorf("line %d = %+v, want %s at %d ms of %+v", i, got[i], e.WebhookID, want.offset, e.Task)
		}
	}

	// A filter narrows the export as it narrows the list.
	// A paused view exports what it shows.
	if x = s.Export(Filter{}, 4); x.Lines != 2 || x.Unnamed != 1 {
		t.Errorf("up to 4: %d lines, %d unnamed; want 2 and 1", x.Lines, x.Unnamed)
	}
	x = s.Export(Filter{Priority: "Low"}, s.Seq)
	if x.Lines != 0 || x.Unnamed != 1 || len(x.Data) != 0 {
		t.Errorf("Low only: %d lines, %d unnamed, %q; want none and 1 unnamed", x.Lines, x.Unnamed, x.Data)
	}
}
