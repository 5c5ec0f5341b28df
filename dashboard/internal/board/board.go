// Package board is the dashboard's state and the rules that change it: how
// relay frames are applied, how the message list stays bounded, how the
// event rate is measured, how long to wait before reconnecting and where the
// relay is. It has no browser code, so all of it is tested with go test; the
// page only calls it.
package board

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

// DefaultLimit is how many events the message list keeps by default.
const DefaultLimit = 500

// ErrBadFrame matches every error about a frame that cannot be applied.
// The state is unchanged after such an error.
var ErrBadFrame = errors.New("bad frame")

// State is what the dashboard shows: the counts, the sequence of the last
// applied frame and the most recent events. The zero value is not usable;
// call New.
type State struct {
	// Seq is the stream sequence of the last applied frame, the one to
	// resume from.
	Seq uint64
	// Counts are the totals per priority, as Redis had them at Seq.
	Counts task.Counts
	// Frames counts the frames applied; Rejected those refused as bad.
	Frames, Rejected int

	limit int
	// events holds the newest events oldest first; only its last limit
	// entries are live. It is compacted when it reaches twice the limit, so
	// that adding an event is amortised O(1).
	events []task.Event
	rate   Rate
	// added counts the events ever added and resets the snapshots applied,
	// so that views can draw only what changed (see Since).
	added, resets uint64
	// fresh is the last update's freshness, freshN how many were taken.
	fresh  Freshness
	freshN uint64
	// Rates are the relay's events per second, for the rate chart.
	Rates Rates
	// problems are what the last degraded frame said, at problemAt.
	problems  []string
	problemAt time.Time
}

// Mark is a point in the state's history, for views that draw only what
// changed since they last looked.
type Mark struct{ resets, added uint64 }

// Mark returns the state's current point, to give to Since later.
func (s *State) Mark() Mark { return Mark{s.resets, s.added} }

// Since returns how many of the newest events were added after m, and
// whether the list was replaced since m (by a snapshot, or by more new
// events than it holds), in which case a view should redraw all Len events.
func (s *State) Since(m Mark) (fresh int, redraw bool) {
	if m.resets != s.resets || s.added-m.added >= uint64(s.Len()) {
		return s.Len(), true
	}
	return int(s.added - m.added), false
}

// New returns an empty state whose message list keeps at most limit events
// (DefaultLimit when limit ≤ 0).
func New(limit int) *State {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &State{limit: limit, events: make([]task.Event, 0, 3*limit)}
}

// Limit returns how many events the message list keeps.
func (s *State) Limit() int { return s.limit }

// Len returns how many events the message list holds.
func (s *State) Len() int { return min(len(s.events), s.limit) }

// Event returns the i-th newest event, 0 being the newest.
func (s *State) Event(i int) task.Event { return s.events[len(s.events)-1-i] }

// Total returns the sum of the counts.
func (s *State) Total() int64 { return s.Counts.Total() }

// Rate returns the events per second accepted lately, as of now.
func (s *State) Rate(now time.Time) float64 { return s.rate.PerSecond(now) }

// ApplyJSON decodes one frame and applies it. A frame that does not decode
// or validate changes nothing and returns an error matching ErrBadFrame.
func (s *State) ApplyJSON(data []byte, now time.Time) error {
	var f task.Frame
	if err := json.Unmarshal(data, &f); err != nil {
		s.Rejected++
		return fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	return s.Apply(f, now)
}

// Apply applies one frame received at now.
//
// A snapshot replaces everything. An update takes the frame's counts, which
// are cumulative, and adds the events newer than Seq: events a resumed
// connection repeats are dropped. A frame that fails Check changes nothing.
func (s *State) Apply(f task.Frame, now time.Time) error {
	if err := Check(f); err != nil {
		s.Rejected++
		return err
	}
	s.Frames++
	switch f.Type {
	case task.FrameSnapshot:
		s.events = s.events[:0]
		s.resets++
		s.Seq = 0
		s.rate.Reset()
		s.add(f.Events)
		s.Seq = f.Seq
	case task.FrameUpdate:
		s.add(f.Events)
		s.Seq = max(s.Seq, f.Seq)
	}
	s.Counts = f.Counts
	s.rate.Observe(now, s.Counts.Total())
	s.observe(f, now)
	s.Rates.observe(f, now)
	return nil
}

// add appends the events newer than Seq, oldest first, and drops the
// oldest beyond the limit.
func (s *State) add(events []task.Event) {
	if len(events) > s.limit {
		events = events[len(events)-s.limit:]
	}
	for _, e := range events {
		if e.Seq > s.Seq {
			s.events = append(s.events, e)
			s.added++
		}
	}
	if len(s.events) > 2*s.limit {
		n := copy(s.events, s.events[len(s.events)-s.limit:])
		s.events = s.events[:n]
	}
}

// Check reports what is wrong with a frame, or nil: an unknown type,
// negative counts, events out of order or newer than the frame, or events
// that are not valid tasks.
func Check(f task.Frame) error {
	if f.Type != task.FrameSnapshot && f.Type != task.FrameUpdate {
		return fmt.Errorf("%w: unknown type %q", ErrBadFrame, f.Type)
	}
	for i, n := range f.Counts {
		if n < 0 {
			return fmt.Errorf("%w: negative count %d for %v", ErrBadFrame, n, task.Priorities[i])
		}
	}
	if err := checkRates(f.Rates); err != nil {
		return err
	}
	var last uint64
	for i, e := range f.Events {
		if e.Seq <= last {
			return fmt.Errorf("%w: event %d: seq %d not after %d", ErrBadFrame, i, e.Seq, last)
		}
		if e.Seq > f.Seq {
			return fmt.Errorf("%w: event %d: seq %d after the frame's %d", ErrBadFrame, i, e.Seq, f.Seq)
		}
		if err := e.Task.Validate(); err != nil {
			return fmt.Errorf("%w: event %d: %v", ErrBadFrame, i, err)
		}
		last = e.Seq
	}
	return nil
}
