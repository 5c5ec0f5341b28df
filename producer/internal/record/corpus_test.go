package record_test

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/producer/internal/generate"
	"github.com/hookpipe/hookpipe/producer/internal/record"
	"github.com/hookpipe/hookpipe/task"
	"github.com/hookpipe/hookpipe/testdata"
)

// TestCommittedBatches reads every recording under testdata/batches and
// checks that the deterministic ones are what their seed generates today,
// so a change in generation cannot leave stale recordings behind.
func TestCommittedBatches(t *testing.T) {
	want := map[string]struct {
		seed  int64
		size  int
		wait  time.Duration
		lines int
	}{
		"small.jsonl":         {1, 10, time.Second, 10},
		"medium.jsonl":        {2, 100, time.Second, 100},
		"large.jsonl":         {3, 1000, 50 * time.Millisecond, 1000},
		"three-batches.jsonl": {4, 0, 0, 27},
	}
	names, err := fs.Glob(testdata.FS, "batches/*.jsonl")
	if err != nil || len(names) < len(want) {
		t.Fatalf("found %v (%v), want at least %d recordings", names, err, len(want))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			raw, _ := testdata.FS.ReadFile(name)
			lines, err := record.Read(bytes.NewReader(raw), name)
			if err != nil {
				t.Fatal(err)
			}
			w, ok := want[strings.TrimPrefix(name, "batches/")]
			if !ok {
				return
			}
			if len(lines) != w.lines {
				t.Fatalf("%d lines, want %d", len(lines), w.lines)
			}
			if w.size == 0 {
				return
			}
			g, _ := generate.New(w.seed, 1, 100)
			b := g.NextOfSize(w.size)
			tasks, ids := b.All()
			regen := make([]record.Line, len(tasks))
			for i, tk := range tasks {
				regen[i] = record.Line{Task: tk, WebhookID: ids[i], Offset: time.Duration(i) * w.wait}
			}
			var buf bytes.Buffer
			record.Write(&buf, regen)
			if !bytes.Equal(buf.Bytes(), raw) {
				t.Fatalf("seed %d no longer generates %s; re-record it (see testdata/batches/README.md)", w.seed, name)
			}
		})
	}
}

// TestBadCorpus checks every case of testdata/bad against the contract:
// each 400 body is refused by task.Decode with the field and problem the
// manifest names; 413 and 415 bodies are otherwise valid, so that the
// receiver can only refuse them for their size or content type.
func TestBadCorpus(t *testing.T) {
	cases, err := testdata.BadCases()
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 25 {
		t.Fatalf("%d cases, want at least 25", len(cases))
	}
	files, _ := fs.Glob(testdata.FS, "bad/*")
	listed := map[string]bool{"bad/cases.json": true, "bad/README.md": true}
	for _, c := range cases {
		if listed["bad/"+c.File] {
			t.Errorf("%s listed twice", c.File)
		}
		listed["bad/"+c.File] = true
	}
	for _, f := range files {
		if !listed[f] {
			t.Errorf("%s is not in cases.json", f)
		}
	}
	for _, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			if c.Description == "" {
				t.Error("no description")
			}
			_, err := task.Decode(c.Body)
			switch c.Status {
			case 400:
				if c.ContentType != "application/json" {
					t.Errorf("400 case sent as %q: it would be refused for its content type", c.ContentType)
				}
				var fe *task.FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("Decode = %v, want a *FieldError", err)
				}
				if fe.Field != c.Field || !strings.Contains(fe.Problem, c.Problem) {
					t.Fatalf("Decode error field %q problem %q; manifest says %q, %q", fe.Field, fe.Problem, c.Field, c.Problem)
				}
			case 413:
				if err != nil {
					t.Fatalf("413 body is also invalid JSON (%v): the case would not test the size limit", err)
				}
				if len(c.Body) <= 64<<10 {
					t.Fatalf("%d bytes is within the receiver's 64 KiB default", len(c.Body))
				}
			case 415:
				if err != nil {
					t.Fatalf("415 body is also invalid (%v)", err)
				}
				if c.ContentType == "application/json" {
					t.Fatal("415 case has the right content type")
				}
			default:
				t.Fatalf("status %d: want 400, 413 or 415", c.Status)
			}
		})
	}
}
