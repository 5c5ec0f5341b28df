package board

import (
	"time"

	"github.com/hookpipe/hookpipe/task"
)

// Export is the events in view as a recording (task.Recorded lines, JSON
// Lines) that `producer replay --same-ids` accepts: sent again within the
// receiver's dedupe window, every line is a duplicate and moves no count.
type Export struct {
	// Data is the JSON Lines, oldest event first.
	Data []byte
	// Lines counts the events written; Unnamed those left out because they
	// were sent without a webhook id, which a replay could not repeat.
	Lines, Unnamed int
}

// Export returns the events of the list that pass f, up to sequence upTo
// (a paused view shows no newer ones). offset_ms is each event's stream
// time from the first one written, never going back.
func (s *State) Export(f Filter, upTo uint64) Export {
	var x Export
	var prev time.Duration
	var start time.Time
	for i := s.Len() - 1; i >= 0; i-- {
		e := s.Event(i)
		if e.Seq > upTo || !f.Match(e) {
			continue
		}
		if e.WebhookID == "" {
			x.Unnamed++
			continue
		}
		if x.Lines == 0 {
			start = e.Time
		}
		off := max(e.Time.Sub(start), prev)
		prev = off
		x.Data = append(task.Recorded{Task: e.Task, WebhookID: e.WebhookID, Offset: off}.AppendJSON(x.Data), '\n')
		x.Lines++
	}
	return x
}
