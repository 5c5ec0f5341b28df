package task_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/hookpipe/hookpipe/task"
)

const batch = "0f8fad5b-d9cb-469f-a165-70867728950e"

func TestDecodeValid(t *testing.T) {
	body := `{"batchid":"` + batch + `","id":7,"owner":"Ada Lovelace","priority":"Critical","extra":[1,2]}`
	got, err := task.Decode([]byte(body))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := task.Task{BatchID: batch, ID: 7, Owner: "Ada Lovelace", Priority: task.Critical}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestDecodeInvalid(t *testing.T) {
	ok := map[string]string{"batchid": `"` + batch + `"`, "id": "1", "owner": `"Bo"`, "priority": `"Low"`}
	with := func(field, raw string) string {
		parts := []string{}
		for _, k := range []string{"batchid", "id", "owner", "priority"} {
			v := ok[k]
			if k == field {
				if raw == "" {
					continue
				}
				v = raw
			}
			parts = append(parts, `"`+k+`":`+v)
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	tests := []struct {
		name, body, field string
	}{
		{"empty", "", ""},
		{"array", "[]", ""},
		{"null", "null", ""},
		{"string", `"x"`, ""},
		{"truncated", `{"batchid":"` + batch, ""},
		{"trailing garbage", with("", "") + "x", ""},
		{"not utf8", "{\"owner\":\"\xff\"}", ""},
		{"missing batchid", with("batchid", ""), "batchid"},
		{"batchid not uuid", with("batchid", `"abc"`), "batchid"},
		{"batchid number", with("batchid", "5"), "batchid"},
		{"missing id", with("id", ""), "id"},
		{"id string", with("id", `"1"`), "id"},
		{"id float", with("id", "1.5"), "id"},
		{"id exponent", with("id", "1e3"), "id"},
		{"id negative", with("id", "-1"), "id"},
		{"id huge", with("id", "99999999999999999999999"), "id"},
		{"id above 2^53", with("id", "9007199254740993"), "id"},
		{"id null", with("id", "null"), "id"},
		{"missing owner", with("owner", ""), "owner"},
		{"owner empty", with("owner", `""`), "owner"},
		{"owner object", with("owner", `{}`), "owner"},
		{"owner too long", with("owner", `"`+strings.Repeat("a", task.MaxOwnerLen+1)+`"`), "owner"},
		{"missing priority", with("priority", ""), "priority"},
		{"priority lower case", with("priority", `"low"`), "priority"},
		{"priority unknown", with("priority", `"High"`), "priority"},
		{"priority number", with("priority", "2"), "priority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := task.Decode([]byte(tt.body))
			if err == nil {
				t.Fatalf("Decode(%q) = nil error, want one naming %q", tt.body, tt.field)
			}
			if !errors.Is(err, task.ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			var fe *task.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FieldError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("field = %q, want %q (error %v)", fe.Field, tt.field, err)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	in := task.Task{BatchID: batch, ID: 42, Owner: `<img src=x onerror=alert(1)> "q" \ ü`, Priority: task.Major, BatchSize: 100}
	b := in.Encode()
	out, err := task.Decode(b)
	if err != nil {
		t.Fatalf("Decode(%s): %v", b, err)
	}
	if out != in {
		t.Fatalf("got %+v, want %+v", out, in)
	}
	if strings.Contains(string(b), "<") {
		t.Errorf("encoded %s contains a raw <", b)
	}
	var std task.Task
	if err := json.Unmarshal(b, &std); err != nil || std != in {
		t.Fatalf("encoding/json reads %+v, %v; want %+v", std, err, in)
	}
	// A task that is not valid (its batch id no UUID) still encodes as
	// JSON, escapes and all: logs and error paths may print one.
	odd := task.Task{BatchID: "a\"b\x01\u2028", Owner: "o", Priority: task.Low}
	var back task.Task
	if err := json.Unmarshal(odd.Encode(), &back); err != nil || back != odd {
		t.Fatalf("encoding/json reads %s as %+v, %v; want %+v", odd.Encode(), back, err, odd)
	}
}

func TestPriority(t *testing.T) {
	for i, p := range task.Priorities {
		if p.Index() != i {
			t.Errorf("%v.Index() = %d, want %d", p, p.Index(), i)
		}
		q, err := task.ParsePriority(p.String())
		if err != nil || q != p {
			t.Errorf("ParsePriority(%q) = %v, %v", p.String(), q, err)
		}
		if want := "tasks." + strings.ToLower(p.String()); p.Subject() != want {
			t.Errorf("Subject = %q, want %q", p.Subject(), want)
		}
	}
	if task.Priority(0).Valid() || task.Priority(5).Valid() {
		t.Error("out-of-range priority reports valid")
	}
}

func TestCountsJSON(t *testing.T) {
	c := task.Counts{1, 2, 3, 4}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Low":1,"Moderate":2,"Major":3,"Critical":4}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	var back task.Counts
	if err := json.Unmarshal(b, &back); err != nil || back != c {
		t.Fatalf("got %v, %v; want %v", back, err, c)
	}
	if err := json.Unmarshal([]byte(`{"High":1}`), &back); err == nil {
		t.Fatal("unknown priority accepted")
	}
	if c.Total() != 10 || c.Of(task.Major) != 3 {
		t.Fatalf("Total %d Of(Major) %d", c.Total(), c.Of(task.Major))
	}
}

func TestFrameJSON(t *testing.T) {
	f := task.Frame{Type: task.FrameUpdate, Seq: 9, Counts: task.Counts{0, 1, 0, 0},
		Events: []task.Event{{Seq: 9, Task: task.Task{BatchID: batch, ID: 1, Owner: "x", Priority: task.Moderate}}}}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var back task.Frame
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Seq != 9 || back.Counts != f.Counts || len(back.Events) != 1 || back.Events[0].Task != f.Events[0].Task {
		t.Fatalf("round trip: got %+v, want %+v", back, f)
	}
	if !strings.Contains(string(b), `"owner":"x"`) {
		t.Errorf("event task fields not inline: %s", b)
	}
}

func TestOwnerWithoutControlOrFormatCharacters(t *testing.T) {
	for _, owner := range []string{"Ann\u202ENaL", "tab\there", "new\nline", "bell\x07", "zero\u200Bwidth", "bom\uFEFF"} {
		o, _ := json.Marshal(owner)
		body := `{"batchid":"` + batch + `","id":1,"owner":` + string(o) + `,"priority":"Low"}`
		_, err := task.Decode([]byte(body))
		var fe *task.FieldError
		if !errors.As(err, &fe) || fe.Field != "owner" {
			t.Errorf("owner %q: %v, want a 400 naming owner", owner, err)
		}
	}
	for _, owner := range []string{"Émile Zola", "漢字 🙂", "O'Brien-Smith"} {
		if _, err := task.Decode([]byte(`{"batchid":"` + batch + `","id":1,"owner":` + strconv.Quote(owner) + `,"priority":"Low"}`)); err != nil {
			t.Errorf("owner %q refused: %v", owner, err)
		}
	}
}

func TestBatchIDInCanonicalLowerCase(t *testing.T) {
	upper := strings.ToUpper(batch)
	tk, err := task.Decode([]byte(`{"batchid":"` + upper + `","id":1,"owner":"A","priority":"Low"}`))
	if err != nil || tk.BatchID != batch {
		t.Fatalf("upper-case batch id decoded as %q, %v; want %q", tk.BatchID, err, batch)
	}
}
