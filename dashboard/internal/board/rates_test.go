package board

import (
	"errors"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

func TestRatesFollowTheRelay(t *testing.T) {
	relayNow := time.Date(2026, 12, 2, 10, 0, 30, 0, time.UTC)
	end := relayNow.Unix()
	// The browser's clock is 17 minutes off.
	browser := relayNow.Add(17 * time.Minute)
	snap := make([][task.NumPriorities]int64, task.RateWindow)
	snap[task.RateWindow-1] = [4]int64{1, 2, 3, 4}
	snap[0] = [4]int64{9, 0, 0, 0}
	s := New(10)
	if err := s.Apply(task.Frame{Type: task.FrameSnapshot, Sent: relayNow, Rates: &task.Rates{Start: end - task.RateWindow + 1, Counts: snap}}, browser); err != nil {
		t.Fatal(err)
	}
	if got := s.Rates.End(browser); got != end {
		t.Fatalf("window ends at %d, want the relay's second %d", got, end)
	}
	w, known := s.Rates.Window(end)
	if w[task.RateWindow-1] != [4]int64{1, 2, 3, 4} || w[0] != [4]int64{9} || known != 0 {
		t.Fatalf("window %v … %v, known from %d", w[0], w[task.RateWindow-1], known)
	}

	// 1.5 s later by the browser's clock an update replaces the current
	// bucket whole and brings the next one.
	later := browser.Add(1500 * time.Millisecond)
	up := task.Frame{Type: task.FrameUpdate, Sent: relayNow.Add(1500 * time.Millisecond),
		Rates: &task.Rates{Start: end, Counts: [][task.NumPriorities]int64{{2, 2, 3, 4}, {0, 0, 1, 0}}}}
	if err := s.Apply(up, later); err != nil {
		t.Fatal(err)
	}
	if got := s.Rates.End(later.Add(time.Second)); got != end+2 {
		t.Fatalf("window ends at %d a second later, want %d", got, end+2)
	}
	w, _ = s.Rates.Window(end + 2)
	if w[task.RateWindow-3] != [4]int64{2, 2, 3, 4} || w[task.RateWindow-2] != [4]int64{0, 0, 1, 0} || w[task.RateWindow-1] != [4]int64{} {
		t.Errorf("window ends %v %v %v", w[task.RateWindow-3], w[task.RateWindow-2], w[task.RateWindow-1])
	}
	// The first second of the snapshot left the window.
	if w, _ := s.Rates.Window(end + 1); w[0] != [4]int64{} {
		t.Errorf("a bucket older than the window is still there: %v", w[0])
	}

	// A relay that lost part of the window says so.
	s.Apply(task.Frame{Type: task.FrameSnapshot, Sent: relayNow, Rates: &task.Rates{Start: end - 1, Counts: [][4]int64{{1}, {1}}, KnownFrom: end - 10}}, browser)
	if _, known := s.Rates.Window(end); known != task.RateWindow-11 {
		t.Errorf("known from bucket %d, want %d", known, task.RateWindow-11)
	}

	// Bad rates change nothing.
	v := s.Rates.Version
	for _, r := range []*task.Rates{
		{Start: end, Counts: make([][4]int64, task.RateWindow+1)},
		{Start: end, Counts: [][4]int64{{-1}}},
	} {
		if err := s.Apply(task.Frame{Type: task.FrameUpdate, Rates: r}, browser); !errors.Is(err, ErrBadFrame) {
			t.Errorf("rates %d buckets: %v, want ErrBadFrame", len(r.Counts), err)
		}
	}
	if s.Rates.Version != v {
		t.Errorf("a bad frame changed the rates")
	}
}
