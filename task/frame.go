package task

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Counts holds one total per priority, indexed by Priority.Index. In JSON it
// is an object keyed by priority name: {"Low":3,"Moderate":1,...}.
type Counts [NumPriorities]int64

// Of returns the total for priority p.
func (c Counts) Of(p Priority) int64 { return c[p.Index()] }

// Total returns the sum over all priorities.
func (c Counts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// MarshalJSON encodes the counts as an object keyed by priority name.
func (c Counts) MarshalJSON() ([]byte, error) { return c.AppendJSON(nil), nil }

// AppendJSON appends the counts' JSON to b.
func (c Counts) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	for i, p := range Priorities {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, p.String()...)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, c[i], 10)
	}
	return append(b, '}')
}

// UnmarshalJSON decodes counts keyed by priority name; unknown names are an
// error, absent ones zero.
func (c *Counts) UnmarshalJSON(b []byte) error {
	var m map[string]int64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*c = Counts{}
	for name, n := range m {
		p, err := ParsePriority(name)
		if err != nil {
			return fmt.Errorf("task: counts: %q %w", name, err)
		}
		c[p.Index()] = n
	}
	return nil
}

// FrameType tells a snapshot from an update.
type FrameType string

// Frame types.
const (
	// FrameSnapshot replaces everything the client holds: counts, events and
	// sequence. It is the first frame on every connection that cannot resume.
	FrameSnapshot FrameType = "snapshot"
	// FrameUpdate carries the current counts and the events since the
	// previous frame on the same connection.
	FrameUpdate FrameType = "update"
)

// Frame is one WebSocket message from relay to dashboard.
//
// A client keeps Seq of the last frame it applied and reconnects with
// ?since=<seq> to resume: it then gets an update with exactly the events it
// missed, or a snapshot when the relay no longer has them.
type Frame struct {
	Type FrameType `json:"type"`
	// Seq is the stream sequence of the newest event this frame accounts
	// for; 0 before the stream holds anything.
	Seq uint64 `json:"seq"`
	// Counts are the totals as of Seq, exact: Redis's fold as of its
	// watermark plus the events after it up to Seq. They are cumulative, so
	// a client that skips frames loses nothing, and bars, totals and list
	// never disagree.
	Counts Counts `json:"counts"`
	// Events are new since the previous frame (for a snapshot: the most
	// recent ones), oldest first.
	Events []Event `json:"events"`
	// Sent is when the relay made the frame, by its clock: with the events'
	// Time (the stream's clock) it tells how long the newest event took to
	// reach the relay's socket, whatever the browser's clock says. A
	// snapshot may be a copy made earlier for another client.
	Sent time.Time `json:"sent,omitzero"`
	// Health says what holds the pipeline back; absent when nothing does.
	Health *Health `json:"health,omitempty"`
	// Rates are events per second per priority by the stream's clock: in a
	// snapshot the last RateWindow seconds up to the relay's current one,
	// in an update the seconds its events fell in, each bucket whole (a
	// client replaces its buckets with these).
	Rates *Rates `json:"rates,omitempty"`
}

// RateWindow is how many one-second buckets of events per second the relay
// keeps and a snapshot carries: five minutes.
const RateWindow = 300

// Rates are consecutive one-second buckets of events per priority.
type Rates struct {
	// Start is the Unix second of the first bucket.
	Start int64 `json:"start"`
	// Counts are the buckets from Start on, one count per priority in the
	// order of Priorities.
	Counts [][NumPriorities]int64 `json:"counts"`
	// KnownFrom, when set, is the first Unix second the relay has events
	// for: the stream held none older when the relay started (its
	// retention had removed them). Buckets before it are unknown, not zero.
	KnownFrom int64 `json:"known_from,omitempty"`
}

// Health is what holds the view back as the relay sees it, each field
// absent when it does not.
type Health struct {
	// IntervalMS is the update interval in milliseconds when the relay
	// widened it beyond the configured one, its clients being slow.
	IntervalMS int64 `json:"interval_ms,omitempty"`
	// Capped counts the events left out of this update, beyond the relay's
	// most events per update; the counts stay exact.
	Capped int `json:"capped,omitempty"`
	// StreamLag counts the messages the stream holds that the relay has
	// not read yet.
	StreamLag uint64 `json:"stream_lag,omitempty"`
	// FoldLag counts the events the relay had read that Redis's fold had
	// not applied yet, when the relay last read it.
	FoldLag uint64 `json:"fold_lag,omitempty"`
}

// Event is an accepted task as the stream holds it.
type Event struct {
	// Seq is the event's sequence in the stream.
	Seq uint64 `json:"seq"`
	// Time is when the stream stored the event.
	Time time.Time `json:"time"`
	Task
	// WebhookID is the id the task was sent with (its Nats-Msg-Id), absent
	// for a request that had none.
	WebhookID string `json:"webhookid,omitempty"`
}

// WebSocket close codes the relay uses, so that clients can tell why a
// connection ended.
const (
	// CloseGoingAway: the relay is shutting down; reconnect, to another
	// relay if there is one.
	CloseGoingAway = 1001
	// CloseTryAgainLater: the relay is at its connection limit, or the
	// client fell too far behind and was cut off; reconnect with backoff.
	CloseTryAgainLater = 1013
)

// BatchSummary is what the relay's /batches endpoints say of one batch.
type BatchSummary struct {
	BatchID string `json:"batchid"`
	// Counts are the batch's totals per priority in Redis.
	Counts Counts `json:"counts"`
	// Size is the batch's size when its sender said it; 0 means unknown.
	Size int64 `json:"size"`
	// Updated is when the batch's latest task was accepted.
	Updated time.Time `json:"updated"`
}

// ParseCounts reads the fields of the Counts hash: the totals per priority
// and the watermark, the last stream sequence they account for (ok is
// false when the hash has none: it was never written, or Redis lost it).
// Other fields are ignored; a value that is not an integer is an error.
func ParseCounts(fields map[string]string) (c Counts, watermark uint64, ok bool, err error) {
	for name, v := range fields {
		if name == WatermarkField {
			if watermark, err = strconv.ParseUint(v, 10, 64); err != nil {
				return c, 0, false, fmt.Errorf("task: counts: watermark %q is not a sequence", v)
			}
			ok = true
			continue
		}
		p, perr := ParsePriority(name)
		if perr != nil {
			continue
		}
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil {
			return c, 0, false, fmt.Errorf("task: counts: %s %q is not an integer", name, v)
		}
		c[p.Index()] = n
	}
	return c, watermark, ok, nil
}

// ParseBatch reads the fields of one Batch hash into a summary.
func ParseBatch(id string, fields map[string]string) (BatchSummary, error) {
	b := BatchSummary{BatchID: id}
	for name, v := range fields {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return b, fmt.Errorf("task: batch %s: %s %q is not an integer", id, name, v)
		}
		switch name {
		case BatchSizeField:
			b.Size = n
		case BatchUpdatedField:
			b.Updated = time.UnixMilli(n).UTC()
		default:
			if p, err := ParsePriority(name); err == nil {
				b.Counts[p.Index()] = n
			}
		}
	}
	return b, nil
}
