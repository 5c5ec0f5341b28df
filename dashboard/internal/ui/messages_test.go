package ui

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/dashboard/internal/board"
	"github.com/hookpipe/hookpipe/task"
)

func stateWith(t testing.TB, owners ...string) *board.State {
	t.Helper()
	s := board.New(board.DefaultLimit)
	f := task.Frame{Type: task.FrameSnapshot, Seq: uint64(len(owners))}
	for i, o := range owners {
		f.Events = append(f.Events, task.Event{Seq: uint64(i + 1), Time: time.Unix(1700000000, 0),
			Task: task.Task{BatchID: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", ID: int64(i), Owner: o, Priority: task.Priorities[i%4]}})
	}
	if err := s.Apply(f, time.Now()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRowsEscapeEveryValue(t *testing.T) {
	hostile := []string{
		`<img src=x onerror=alert(1)>`,
		`"><script>alert(1)</script>`,
		`' onmouseover='alert(1)`,
		`&lt;b&gt; already escaped`,
		`Zoë O'Brien & Co`,
	}
	s := stateWith(t, hostile...)
	out := string(appendRows(nil, s, s.Len(), board.Filter{}))
	if strings.Count(out, "<li ") != len(hostile) {
		t.Fatalf("%d rows, want %d:\n%s", strings.Count(out, "<li "), len(hostile), out)
	}
	// Only the row's own tags may appear.
	for _, tag := range regexp.MustCompile(`<(/?[a-z]+)`).FindAllStringSubmatch(out, -1) {
		switch tag[1] {
		case "li", "/li", "time", "/time", "span", "/span":
		default:
			t.Errorf("row HTML holds a <%s> tag:\n%s", tag[1], out)
		}
	}
	for _, bad := range []string{"onerror=", "onmouseover=", "<script"} {
		if regexp.MustCompile(`<[^>]*` + bad).MatchString(out) {
			t.Errorf("row HTML has %s inside a tag:\n%s", bad, out)
		}
	}
	owners := regexp.MustCompile(`<span class="owner">([^<]*)</span>`).FindAllStringSubmatch(out, -1)
	for i, m := range owners {
		want := hostile[len(hostile)-1-i] // newest first
		if got := unescape(m[1]); got != want {
			t.Errorf("owner %d reads %q once parsed, want %q", i, got, want)
		}
	}
}

func TestRowsNewestFirst(t *testing.T) {
	s := stateWith(t, "a", "b", "c")
	out := string(appendRows(nil, s, 2, board.Filter{}))
	want := `<li data-seq="3" data-priority="Major">`
	if !strings.HasPrefix(out, want) || !strings.Contains(out, `data-seq="2"`) || strings.Contains(out, `data-seq="1"`) {
		t.Errorf("rows = %s\nwant seq 3 then 2 only", out)
	}
	for _, part := range []string{`class="prio prio-Major">Major<`, `class="owner">c<`, "batch 6ba7b810 · task 2"} {
		if !strings.Contains(out, part) {
			t.Errorf("rows lack %s:\n%s", part, out)
		}
	}
}

func BenchmarkRows(b *testing.B) {
	owners := make([]string, 34)
	for i := range owners {
		owners[i] = fmt.Sprintf("Owner <%d>", i)
	}
	s := stateWith(b, owners...)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRows(buf[:0], s, s.Len(), board.Filter{})
	}
}

func unescape(s string) string {
	r := strings.NewReplacer("&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&amp;", "&")
	return r.Replace(s)
}
