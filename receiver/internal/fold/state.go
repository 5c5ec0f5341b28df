package fold

import (
	"cmp"
	"container/list"
	"slices"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

// Event is one stored message of the stream as the fold sees it: its
// sequence and time, and the task it holds, unless it holds none
// (Skipped: not a task a receiver stored), in which case it still moves
// the watermark.
type Event struct {
	Seq   uint64
	Time  time.Time
	Task  task.Task
	MsgID string // the webhook id, "" when the request had none
	// Fingerprint is the task's, as the receiver stored it.
	Fingerprint string
	Skipped     bool
}

// Batch is what the fold keeps of one batch of tasks.
type Batch struct {
	ID     string
	Counts task.Counts
	// Size is the batch's size as its latest task with one said; 0 when
	// none did.
	Size int64
	// Updated is when the stream stored the batch's latest task, in Unix
	// milliseconds.
	Updated int64
	// Last is the stream sequence of the batch's latest task: the batches
	// kept are the Keep with the highest.
	Last uint64
}

// State is the fold of the stream up to Seq: the totals per priority and
// the Keep most recently active batches. It is what Redis holds, computed
// in memory by the same rule the script applies, event by event, so that
// the two can be compared and either rebuilt from the other. Its
// definition does not depend on how events are grouped into scripts.
//
// A batch whose latest task is older than Keep other batches' is dropped,
// and starts from zero if it gets a task again.
type State struct {
	// Seq is the last stream sequence folded in: the watermark.
	Seq    uint64
	Counts task.Counts
	keep   int
	byID   map[string]*list.Element // of *Batch
	order  *list.List               // by Last, oldest first
}

// NewState returns the fold of nothing, as of sequence seq, keeping at
// most keep batches.
func NewState(seq uint64, keep int) *State {
	return &State{Seq: seq, keep: max(keep, 1), byID: make(map[string]*list.Element), order: list.New()}
}

// Keep returns how many batches the state keeps.
func (s *State) Keep() int { return s.keep }

// Apply folds in ev, which must come after Seq; events at or below Seq
// were folded in already and change nothing. It reports whether ev was
// new.
func (s *State) Apply(ev Event) bool {
	if ev.Seq <= s.Seq {
		return false
	}
	s.Seq = ev.Seq
	if ev.Skipped {
		return true
	}
	t := ev.Task
	i := t.Priority.Index()
	s.Counts[i]++
	var b *Batch
	if e, ok := s.byID[t.BatchID]; ok {
		b = e.Value.(*Batch)
		s.order.MoveToBack(e)
	} else {
		b = &Batch{ID: t.BatchID}
		s.byID[t.BatchID] = s.order.PushBack(b)
		if s.order.Len() > s.keep {
			oldest := s.order.Front()
			delete(s.byID, oldest.Value.(*Batch).ID)
			s.order.Remove(oldest)
		}
	}
	b.Counts[i]++
	if t.BatchSize > 0 {
		b.Size = t.BatchSize
	}
	b.Updated = ev.Time.UnixMilli()
	b.Last = ev.Seq
	return true
}

// Batch returns the batch of id, if kept.
func (s *State) Batch(id string) (Batch, bool) {
	if e, ok := s.byID[id]; ok {
		return *e.Value.(*Batch), true
	}
	return Batch{}, false
}

// Batches returns the kept batches, the least recently active first.
func (s *State) Batches() []Batch {
	out := make([]Batch, 0, s.order.Len())
	for e := s.order.Front(); e != nil; e = e.Next() {
		out = append(out, *e.Value.(*Batch))
	}
	return out
}

// Len returns how many batches are kept.
func (s *State) Len() int { return s.order.Len() }

// Restore replaces the state with seq, counts and batches (in any order),
// as read from a checkpoint or from Redis. Batches beyond Keep, the least
// recent first, are dropped.
func (s *State) Restore(seq uint64, counts task.Counts, batches []Batch) {
	*s = *NewState(seq, s.keep)
	s.Counts = counts
	sorted := append([]Batch(nil), batches...)
	sortByLast(sorted)
	if len(sorted) > s.keep {
		sorted = sorted[len(sorted)-s.keep:]
	}
	for i := range sorted {
		b := sorted[i]
		s.byID[b.ID] = s.order.PushBack(&b)
	}
}

// Clone returns a copy of s that shares nothing with it.
func (s *State) Clone() *State {
	c := NewState(s.Seq, s.keep)
	c.Restore(s.Seq, s.Counts, s.Batches())
	return c
}

func sortByLast(bs []Batch) {
	slices.SortFunc(bs, func(a, b Batch) int { return cmp.Compare(a.Last, b.Last) })
}
