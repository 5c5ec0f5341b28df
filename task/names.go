package task

import "errors"

// NATS names. The stream holds every accepted task on a subject per
// priority, so a consumer can subscribe to the urgent ones alone.
const (
	// StreamName is the JetStream stream that holds accepted tasks.
	StreamName = "TASKS"
	// SubjectPrefix starts every task subject.
	SubjectPrefix = "tasks."
	// SubjectAll matches every task subject.
	SubjectAll = "tasks.*"
)

// Subject returns the NATS subject for a task of priority p, such as
// "tasks.critical".
func (p Priority) Subject() string {
	if !p.Valid() {
		return SubjectPrefix + "invalid"
	}
	return SubjectPrefix + subjectTokens[p]
}

// DefaultKeyPrefix starts every Redis key hookpipe writes.
const DefaultKeyPrefix = "hookpipe:"

// hashTag puts the fold's keys of one prefix (counts, batches and the
// batch index) in the same Redis Cluster hash slot, so that the script
// that applies a batch of events to all of them runs on one node. The
// seen keys, one per webhook id, have no tag: they spread over the slots.
const hashTag = "{tasks}:"

// Keys names hookpipe's Redis keys under one prefix. The zero value uses
// DefaultKeyPrefix.
type Keys struct {
	// Prefix starts every key; default DefaultKeyPrefix. Tests give each run
	// its own prefix so that they never share counts.
	Prefix string
}

func (k Keys) prefix() string {
	if k.Prefix == "" {
		return DefaultKeyPrefix
	}
	return k.Prefix
}

func (k Keys) base() string { return k.prefix() + hashTag }

// Counts is the hash of totals, one field per priority name, and the
// watermark: the last stream sequence folded into them (WatermarkField).
func (k Keys) Counts() string { return k.base() + "counts" }

// Batch is the hash of totals for one batch, one field per priority name,
// plus "size" when the sender said how large the batch is and "updated",
// when its latest task was stored (Unix milliseconds).
func (k Keys) Batch(batchID string) string { return k.base() + "batch:" + batchID }

// Batches is the sorted set of the batch ids whose hashes are kept, scored
// by the stream sequence of their latest task. It is trimmed to the most
// recent ones, and their hashes with it.
func (k Keys) Batches() string { return k.base() + "batches" }

// Seen is the idempotency key of one webhook id: it holds a Seen, the
// fingerprint and stream sequence of its task, until the id's dedupe
// window ends.
func (k Keys) Seen(webhookID string) string { return k.prefix() + "seen:" + webhookID }

// SeenPattern matches every seen key of the prefix, for SCAN.
func (k Keys) SeenPattern() string { return k.prefix() + "seen:*" }

// ErrIDReused is the answer to a delivery whose webhook-id was accepted
// before for a different task (409): counting it would lose one of the two.
var ErrIDReused = errors.New("webhook-id was already used for a different task")

// Fields of the Counts and Batch hashes besides the priority names.
const (
	// WatermarkField of the Counts hash is the sequence of the last stream
	// message folded into every count.
	WatermarkField = "watermark"
	// BatchSizeField of a Batch hash holds the batch's size.
	BatchSizeField = "size"
	// BatchUpdatedField of a Batch hash holds when its latest task was
	// stored, in Unix milliseconds.
	BatchUpdatedField = "updated"
)
