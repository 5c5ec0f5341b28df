package task

import (
	"strconv"
	"time"
)

// MaxWebhookIDLen bounds a webhook id, which becomes part of a Redis key, a
// NATS header and the stream's duplicate window, all held in memory:
// Standard Webhooks ids are about 30 characters ("msg_" and a KSUID), a UUID
// with a prefix about 40.
const MaxWebhookIDLen = 64

// ValidWebhookID reports whether id is a webhook id the receiver takes: 1
// to MaxWebhookIDLen printable ASCII characters, no space.
func ValidWebhookID[S ~string | ~[]byte](id S) bool {
	if len(id) == 0 || len(id) > MaxWebhookIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// Recorded is one line of a recording, the JSON Lines files that `producer
// record` writes, `producer replay` sends and the dashboard exports (see
// testdata/README.md): a task as the receiver takes it plus two fields it
// ignores, the webhook id it was sent with and its time from the
// recording's first line.
//
//	{"batchid":"…","id":0,"owner":"Ada Lovelace","priority":"Low","batchsize":10,"webhookid":"msg_…","offset_ms":0}
type Recorded struct {
	Task      Task
	WebhookID string
	// Offset is the time from the recording's first send to this one.
	Offset time.Duration
}

// AppendJSON appends the line's JSON, without a newline, to b.
func (r Recorded) AppendJSON(b []byte) []byte {
	b = r.Task.AppendJSON(b)
	b = b[:len(b)-1] // reopen the task's object
	b = append(b, `,"webhookid":`...)
	b = appendJSONString(b, r.WebhookID)
	b = append(b, `,"offset_ms":`...)
	b = strconv.AppendInt(b, r.Offset.Milliseconds(), 10)
	return append(b, '}')
}
