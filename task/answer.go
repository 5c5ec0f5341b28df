package task

import (
	"encoding/json"
	"strconv"
)

// Answer is the body of the receiver's 200: whether the task was accepted
// now or had been before, and its stream sequence, as relay frames carry it.
type Answer struct {
	// Status is StatusAccepted or StatusDuplicate.
	Status string `json:"status"`
	// Seq is the task's sequence in the stream; 0 when not known.
	Seq uint64 `json:"seq,omitempty"`
}

// Statuses of an Answer.
const (
	StatusAccepted  = "accepted"
	StatusDuplicate = "duplicate"
)

// AppendJSON appends the answer's JSON to b, for the receiver's hot path.
func (a Answer) AppendJSON(b []byte) []byte {
	b = append(b, `{"status":`...)
	b = appendJSONString(b, a.Status)
	if a.Seq > 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, a.Seq, 10)
	}
	return append(b, '}')
}

// ParseAnswer decodes a 200's body. The tutorial's receiver answered
// anything; a body that is not an Answer is taken as accepted, with no
// sequence.
func ParseAnswer(b []byte) Answer {
	var a Answer
	if json.Unmarshal(b, &a) != nil {
		return Answer{Status: StatusAccepted}
	}
	if a.Status != StatusDuplicate {
		a.Status = StatusAccepted
	}
	return a
}

// ErrorAnswer is the body of every error the receiver answers.
type ErrorAnswer struct {
	Error string `json:"error"`
	// Field names the offending field when the task itself is wrong.
	Field string `json:"field,omitempty"`
}
