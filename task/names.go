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

// hashTag puts every key of one prefix in the same Redis Cluster hash slot,
// so the receiver's script, which touches several of them, runs on one node.
const hashTag = "{tasks}:"

// Keys names hookpipe's Redis keys under one prefix. The zero value uses
// DefaultKeyPrefix.
type Keys struct {
	// Prefix starts every key; default DefaultKeyPrefix. Tests give each run
	// its own prefix so that they never share counts.
	Prefix string
}

func (k Keys) base() string {
	if k.Prefix == "" {
		return DefaultKeyPrefix + hashTag
	}
	return k.Prefix + hashTag
}

// Counts is the hash of totals, one field per priority name.
func (k Keys) Counts() string { return k.base() + "counts" }

// Batch is the hash of totals for one batch, one field per priority name,
// plus "size" when the sender said how large the batch is.
func (k Keys) Batch(batchID string) string { return k.base() + "batch:" + batchID }

// Batches is the sorted set of batch ids, scored by the time in
// milliseconds their latest task was accepted.
func (k Keys) Batches() string { return k.base() + "batches" }

// Seen is the idempotency key of one webhook id. It holds SeenCounted once
// the task is counted and SeenPublished once the stream has it too.
func (k Keys) Seen(webhookID string) string { return k.base() + "seen:" + webhookID }

// States of a Seen key. The key's value is the state followed by a
// fingerprint of the task, so that an id reused for another task is told
// from a retry of the same one.
const (
	SeenCounted   = "c"
	SeenPublished = "p"
)

// ErrIDReused is the answer to a delivery whose webhook-id was accepted
// before for a different task (409): counting it would lose one of the two.
var ErrIDReused = errors.New("webhook-id was already used for a different task")

// BatchSizeField is the field of a Batch hash that holds the batch's size.
const BatchSizeField = "size"
