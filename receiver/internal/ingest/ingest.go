// Package ingest is the receiver's request path once a webhook is verified
// and decoded: look its id up, publish it to the stream, and tell a new
// task from a retry of one stored before and from an id reused for another
// task. It writes no count: the fold counts what the stream holds, so that
// nothing has to be taken back.
package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/hookpipe/hookpipe/receiver/internal/publish"
	"github.com/hookpipe/hookpipe/task"
)

// Seen looks webhook ids up; *seen.Store is one.
type Seen interface {
	Lookup(ctx context.Context, id string) (task.Seen, bool, error)
}

// Stream publishes tasks and reads stored ones; *publish.Publisher is one.
type Stream interface {
	Publish(ctx context.Context, id, subject string, data []byte, fingerprint string) (publish.Ack, error)
	Stored(ctx context.Context, seq uint64) ([]byte, error)
}

// Errors of Accept. Each wraps the cause; the handler maps them to a
// status.
var (
	// ErrSeenUnavailable: Redis did not answer the lookup in time (503).
	ErrSeenUnavailable = errors.New("could not look the webhook-id up: redis unavailable, retry later")
	// ErrStreamUnavailable: the stream did not acknowledge in time (503).
	ErrStreamUnavailable = errors.New("could not publish the task: stream unavailable, retry later")
	// ErrBacklog: the fold is too far behind to take more (503).
	ErrBacklog = errors.New("the counts are too far behind the stream, retry later")
)

// Outcome is what became of a webhook that was accepted.
type Outcome struct {
	// Seq is the task's stream sequence.
	Seq uint64
	// Duplicate says that the stream had the task already, from an earlier
	// delivery of the same id.
	Duplicate bool
}

// Acceptor takes webhooks in.
type Acceptor struct {
	Seen   Seen
	Stream Stream
	// Backlogged reports whether the fold is too far behind; nil never.
	Backlogged func() bool
}

// Accept takes task t, whose canonical encoding is encoded, delivered
// under webhook id ("" when the request had none: then it is published
// every time). A known id for the same task is a duplicate, with the
// sequence of the copy stored; a known id for another task is
// task.ErrIDReused.
func (a *Acceptor) Accept(ctx context.Context, id string, t task.Task, encoded []byte) (Outcome, error) {
	if a.Backlogged != nil && a.Backlogged() {
		return Outcome{}, ErrBacklog
	}
	fp := task.Fingerprint(encoded)
	if id != "" {
		s, ok, err := a.Seen.Lookup(ctx, id)
		if err != nil {
			return Outcome{}, fmt.Errorf("%w: %w", ErrSeenUnavailable, err)
		}
		if ok {
			if !task.FingerprintMatches(s.Fingerprint, encoded) {
				return Outcome{}, task.ErrIDReused
			}
			return Outcome{Seq: s.Seq, Duplicate: true}, nil
		}
	}
	ack, err := a.Stream.Publish(ctx, id, t.Priority.Subject(), encoded, fp)
	if err != nil {
		return Outcome{}, fmt.Errorf("%w: %w", ErrStreamUnavailable, err)
	}
	if !ack.Duplicate {
		return Outcome{Seq: ack.Seq}, nil
	}
	// The stream had the id already, within its duplicate window, and the
	// fold has not written its seen key yet (or Redis lost it): compare
	// with the task stored under it.
	stored, err := a.Stream.Stored(ctx, ack.Seq)
	if err != nil {
		return Outcome{}, fmt.Errorf("%w: %w", ErrStreamUnavailable, err)
	}
	if !sameTask(stored, t) {
		return Outcome{}, task.ErrIDReused
	}
	return Outcome{Seq: ack.Seq, Duplicate: true}, nil
}

// sameTask reports whether stored holds t, by their canonical encodings,
// so that a task stored by an older receiver, whose encoding may differ,
// is still recognised.
func sameTask(stored []byte, t task.Task) bool {
	s, err := task.Decode(stored)
	return err == nil && s == t
}
