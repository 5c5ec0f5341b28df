package fanout

import (
	"strconv"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

// appendEvent appends the JSON of one task.Event to b: the same document
// encoding/json makes of it, with the task's fields inline, built without
// reflection because every event is encoded once on its way into the ring.
func appendEvent(b []byte, ev *task.Event) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, ev.Seq, 10)
	b = append(b, `,"time":"`...)
	b = ev.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"', ',')
	// Task.AppendJSON starts with '{'; continue the event's object instead.
	start := len(b)
	b = ev.Task.AppendJSON(b)
	copy(b[start:], b[start+1:])
	return b[:len(b)-1]
}

// appendFrame appends a task.Frame document whose events are given as
// already encoded JSON objects.
func appendFrame(b []byte, typ task.FrameType, seq uint64, counts *task.Counts, events [][]byte) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"counts":`...)
	b = counts.AppendJSON(b)
	b = append(b, `,"events":[`...)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, ']', '}')
}
