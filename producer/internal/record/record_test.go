package record_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/producer/internal/record"
	"github.com/hookpipe/hookpipe/task"
)

const batch = "0f8fad5b-d9cb-469f-a165-70867728950e"

func TestRoundTrip(t *testing.T) {
	in := []record.Line{
		{Task: task.Task{BatchID: batch, ID: 0, Owner: `Zoë "Q" <O'Neil>`, Priority: task.Low, BatchSize: 2}, WebhookID: "msg_a", Offset: 0},
		{Task: task.Task{BatchID: batch, ID: 1, Owner: "Bo", Priority: task.Critical}, WebhookID: "msg_b", Offset: 1500 * time.Millisecond},
	}
	var buf bytes.Buffer
	if err := record.Write(&buf, in); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("%d lines written, want 2:\n%s", n, buf.String())
	}
	out, err := record.Read(&buf, "mem")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("read %d lines, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i] != in[i] {
			t.Errorf("line %d: got %+v, want %+v", i, out[i], in[i])
		}
	}
}

func TestReadRejects(t *testing.T) {
	good := `{"batchid":"` + batch + `","id":0,"owner":"A","priority":"Low","webhookid":"msg_1","offset_ms":0}`
	tests := []struct {
		name, body, want string
	}{
		{"empty file", "", "no tasks"},
		{"only blank lines", "\n\n", "no tasks"},
		{"bad task", strings.Replace(good, `"Low"`, `"low"`, 1), "f:1: task: priority"},
		{"no webhook id", strings.Replace(good, `"webhookid":"msg_1",`, "", 1), "webhookid is required"},
		{"no offset", strings.Replace(good, `,"offset_ms":0`, "", 1), "offset_ms"},
		{"negative offset", strings.Replace(good, `"offset_ms":0`, `"offset_ms":-5`, 1), "offset_ms"},
		{"offset backwards", strings.Replace(good, `"offset_ms":0`, `"offset_ms":10`, 1) + "\n" + good, "f:2: offset_ms goes backwards"},
		{"second line broken", good + "\n{", "f:2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := record.Read(strings.NewReader(tt.body), "f")
			if !errors.Is(err, record.ErrFormat) {
				t.Fatalf("got %v, want ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParseSpeed(t *testing.T) {
	tests := []struct {
		in   string
		want record.Speed
		ok   bool
	}{
		{"recorded", 1, true},
		{"1", 1, true},
		{"10", 10, true},
		{"10x", 10, true},
		{"0.5", 0.5, true},
		{"max", record.Max, true},
		{"MAX", record.Max, true},
		{"0", record.Max, true},
		{"-2", 0, false},
		{"fast", 0, false},
		{"", 0, false},
		{"inf", 0, false},
		{"NaN", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := record.ParseSpeed(tt.in)
			if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
				t.Fatalf("ParseSpeed(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
			}
			if tt.ok {
				back, err := record.ParseSpeed(got.String())
				if err != nil || back != got {
					t.Fatalf("String %q does not parse back: %v %v", got.String(), back, err)
				}
			}
		})
	}
}

func TestGap(t *testing.T) {
	lines := []record.Line{{Offset: 0}, {Offset: time.Second}, {Offset: 3 * time.Second}}
	tests := []struct {
		speed record.Speed
		i     int
		want  time.Duration
	}{
		{1, 0, 0},
		{1, 1, time.Second},
		{1, 2, 2 * time.Second},
		{10, 2, 200 * time.Millisecond},
		{0.5, 1, 2 * time.Second},
		{record.Max, 2, 0},
	}
	for _, tt := range tests {
		if got := tt.speed.Gap(lines, tt.i); got != tt.want {
			t.Errorf("speed %v gap %d = %v, want %v", tt.speed, tt.i, got, tt.want)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	l := record.Line{Task: task.Task{BatchID: batch, ID: 42, Owner: "Ada Lovelace", Priority: task.Major, BatchSize: 100}, WebhookID: "msg_z7s575klKiz9pyKl17ltLSvQ", Offset: time.Second}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = l.AppendJSON(buf[:0])
	}
}
