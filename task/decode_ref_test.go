package task

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// referenceDecode decodes a task with encoding/json, the straightforward
// way. FuzzDecode checks that the fast decoder agrees with it.
func referenceDecode(data []byte) (Task, error) {
	var t Task
	if !utf8.Valid(data) {
		return t, &FieldError{Problem: "body is not valid UTF-8"}
	}
	i := 0
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	if i == len(data) || data[i] != '{' {
		return t, &FieldError{Problem: "body must be a JSON object"}
	}
	var w struct {
		BatchID, ID, Owner, Priority, BatchSize json.RawMessage
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return t, &FieldError{Problem: "malformed JSON: " + err.Error()}
	}
	str := func(name string, raw json.RawMessage) (string, error) {
		if len(raw) == 0 || string(raw) == "null" {
			return "", &FieldError{Field: name, Problem: "is required"}
		}
		var s string
		if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return "", &FieldError{Field: name, Problem: "must be a string"}
		}
		return s, nil
	}
	num := func(name string, raw json.RawMessage, required bool) (int64, error) {
		if len(raw) == 0 || string(raw) == "null" {
			if required {
				return 0, &FieldError{Field: name, Problem: "is required"}
			}
			return 0, nil
		}
		n, err := strconv.ParseInt(string(raw), 10, 64)
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return 0, &FieldError{Field: name, Problem: "is out of range"}
		}
		if err != nil {
			return 0, &FieldError{Field: name, Problem: "must be an integer"}
		}
		if n < 0 || n > MaxID {
			return 0, &FieldError{Field: name, Problem: "out of bounds"}
		}
		return n, nil
	}
	var err error
	if t.BatchID, err = str("batchid", w.BatchID); err != nil {
		return t, err
	}
	if t.ID, err = num("id", w.ID, true); err != nil {
		return t, err
	}
	if t.Owner, err = str("owner", w.Owner); err != nil {
		return t, err
	}
	p, err := str("priority", w.Priority)
	if err != nil {
		return t, err
	}
	if t.Priority, err = ParsePriority(p); err != nil {
		return t, &FieldError{Field: "priority", Problem: err.Error()}
	}
	if t.BatchSize, err = num("batchsize", w.BatchSize, false); err != nil {
		return t, err
	}
	// Batch ids are kept in canonical lower case; an id that is not a UUID
	// is refused either way.
	t.BatchID = strings.ToLower(t.BatchID)
	return t, t.Validate()
}

const fuzzBatch = "0f8fad5b-d9cb-469f-a165-70867728950e"

// FuzzDecode checks the decoder against encoding/json: both accept the same
// bodies and decode them alike, and both blame the same field otherwise.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"batchid":"` + fuzzBatch + `","id":1,"owner":"a","priority":"Low"}`,
		`{"BatchID":"` + fuzzBatch + `","ID":-0,"Owner":"\u00e9\ud83d\ude00","priority":"L\u006fw","batchsize":3}`,
		`{"batchid":"` + fuzzBatch + `","id":1.5,"owner":null,"priority":"Low","x":[1,{"y":null}]}`,
		`{"batchid":"` + fuzzBatch + `","id":1,"owner":"a","priority":"Low","id":null}`,
		`{"id":99999999999999999999,"id":2}`, `[]`, ` {} `, `{"a":tru}`, `{"owner":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Decode(b)
		want, wantErr := referenceDecode(b)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("Decode(%q) = %+v, %v; encoding/json gives %+v, %v", b, got, err, want, wantErr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			var fe, we *FieldError
			errors.As(err, &fe)
			errors.As(wantErr, &we)
			if fe.Field != we.Field {
				t.Fatalf("Decode(%q) blames %q (%v); encoding/json blames %q (%v)", b, fe.Field, err, we.Field, wantErr)
			}
			return
		}
		if got != want {
			t.Fatalf("Decode(%q) = %+v; encoding/json gives %+v", b, got, want)
		}
		again, err := Decode(got.Encode())
		if err != nil || again != got {
			t.Fatalf("re-decoding %s: %+v, %v", got.Encode(), again, err)
		}
	})
}

// TestDecodeDepthLimit checks the nesting limit at its edge, where the fast
// decoder and encoding/json must still agree.
func TestDecodeDepthLimit(t *testing.T) {
	for _, depth := range []int{maxDepth - 2, maxDepth - 1, maxDepth, maxDepth + 1} {
		for _, inner := range []string{"", "1"} {
			body := `{"batchid":"` + fuzzBatch + `","id":1,"owner":"a","priority":"Low","x":` +
				strings.Repeat("[", depth) + inner + strings.Repeat("]", depth) + `}`
			_, err := Decode([]byte(body))
			_, want := referenceDecode([]byte(body))
			if (err == nil) != (want == nil) {
				t.Errorf("%d arrays around %q: Decode says %v, encoding/json %v", depth, inner, err, want)
			}
		}
	}
}
