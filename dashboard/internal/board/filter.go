package board

import (
	"strings"

	"github.com/hookpipe/hookpipe/task"
)

// Filter narrows the live list: by priority, by batch (an id or the start
// of one) and by owner (any part of the name, in any case). The zero Filter
// lets every event through.
type Filter struct {
	// Priority is a priority's name, or empty for all.
	Priority string
	// Batch is the start of a batch id, or empty for all.
	Batch string
	// Owner is text the owner's name holds, or empty for all.
	Owner string
}

// Active reports whether f narrows anything.
func (f Filter) Active() bool { return f != Filter{} }

// Match reports whether e passes f.
func (f Filter) Match(e task.Event) bool {
	if f.Priority != "" && e.Priority.String() != f.Priority {
		return false
	}
	if b := strings.ToLower(strings.TrimSpace(f.Batch)); b != "" && !strings.HasPrefix(e.BatchID, b) {
		return false
	}
	if o := strings.TrimSpace(f.Owner); o != "" && !strings.Contains(strings.ToLower(e.Owner), strings.ToLower(o)) {
		return false
	}
	return true
}

// String says what f keeps, for the page ("Critical · batch 6ba7 · owner
// ada"), empty when it keeps everything.
func (f Filter) String() string {
	var parts []string
	if f.Priority != "" {
		parts = append(parts, f.Priority)
	}
	if b := strings.TrimSpace(f.Batch); b != "" {
		parts = append(parts, "batch "+b)
	}
	if o := strings.TrimSpace(f.Owner); o != "" {
		parts = append(parts, "owner "+o)
	}
	return strings.Join(parts, " · ")
}
