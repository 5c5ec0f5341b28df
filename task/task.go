// Package task is hookpipe's wire contract: the Task every component
// exchanges, its four priorities, strict decoding and validation, Standard
// Webhooks signing, the NATS subjects and Redis keys, and the frames the relay
// sends to dashboards.
//
// It depends on the standard library only and builds for GOOS=js, so the
// dashboard decodes frames with the same types the relay encodes them with.
package task

import (
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Task is one unit of work announced by a webhook.
type Task struct {
	// BatchID is the UUID of the batch the task belongs to.
	BatchID string `json:"batchid"`
	// ID is the task's index within its batch, from 0.
	ID int64 `json:"id"`
	// Owner is the person the task is assigned to.
	Owner string `json:"owner"`
	// Priority is one of Low, Moderate, Major or Critical.
	Priority Priority `json:"priority"`
	// BatchSize is the number of tasks in the batch when the sender knows it,
	// so that a dashboard can show a batch's progress; 0 means unknown.
	BatchSize int64 `json:"batchsize,omitempty"`
}

// Limits of a valid task.
const (
	// MaxOwnerLen is the longest owner name accepted, in bytes.
	MaxOwnerLen = 256
	// MaxID is the largest task id or batch size accepted. It keeps every
	// number exact in JavaScript, where the dashboard reads it.
	MaxID = 1<<53 - 1
)

// FieldError says which field of a task is wrong and why.
type FieldError struct {
	Field   string // JSON name of the field, or "" for the document as a whole
	Problem string // what is wrong, in a few words
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "task: " + e.Problem
	}
	return "task: " + e.Field + ": " + e.Problem
}

// ErrInvalid matches every error returned by Decode and Validate, so callers
// can tell bad input from everything else with errors.Is.
var ErrInvalid = errors.New("task: invalid")

// Is reports that a FieldError is an ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Validate checks the values of a task whose fields are all present.
func (t Task) Validate() error {
	if !IsUUID(t.BatchID) {
		return &FieldError{Field: "batchid", Problem: "must be a UUID like 6ba7b810-9dad-11d1-80b4-00c04fd430c8"}
	}
	if t.ID < 0 || t.ID > MaxID {
		return &FieldError{Field: "id", Problem: "must be an integer from 0 to " + strconv.FormatInt(MaxID, 10)}
	}
	if t.Owner == "" {
		return &FieldError{Field: "owner", Problem: "must not be empty"}
	}
	if len(t.Owner) > MaxOwnerLen {
		return &FieldError{Field: "owner", Problem: fmt.Sprintf("longer than %d bytes", MaxOwnerLen)}
	}
	if !utf8.ValidString(t.Owner) {
		return &FieldError{Field: "owner", Problem: "is not valid UTF-8"}
	}
	for _, r := range t.Owner {
		// Control characters break lines and logs; format characters such
		// as U+202E reorder what a list shows.
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return &FieldError{Field: "owner", Problem: fmt.Sprintf("must not hold control or format characters (%U)", r)}
		}
	}
	if !t.Priority.Valid() {
		return &FieldError{Field: "priority", Problem: "must be one of Low, Moderate, Major, Critical"}
	}
	if t.BatchSize < 0 || t.BatchSize > MaxID {
		return &FieldError{Field: "batchsize", Problem: "must be an integer from 0 to " + strconv.FormatInt(MaxID, 10)}
	}
	return nil
}

// Encode returns the task's JSON, with keys in a fixed order.
func (t Task) Encode() []byte {
	return t.AppendJSON(make([]byte, 0, 128))
}

// AppendJSON appends the task's JSON to b. It is Encode without the
// allocation, for hot paths.
func (t Task) AppendJSON(b []byte) []byte {
	b = append(b, `{"batchid":`...)
	b = appendJSONString(b, t.BatchID)
	b = append(b, `,"id":`...)
	b = strconv.AppendInt(b, t.ID, 10)
	b = append(b, `,"owner":`...)
	b = appendJSONString(b, t.Owner)
	b = append(b, `,"priority":"`...)
	b = append(b, t.Priority.String()...)
	b = append(b, '"')
	if t.BatchSize > 0 {
		b = append(b, `,"batchsize":`...)
		b = strconv.AppendInt(b, t.BatchSize, 10)
	}
	return append(b, '}')
}

// IsUUID reports whether s has the shape of a UUID: 36 characters, hex
// digits with dashes at 8, 13, 18 and 23. Batch ids must; Decode puts them
// in lower case.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// appendJSONString appends s as a JSON string, escaping what JSON and HTML
// require so that the bytes are safe to embed anywhere.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
