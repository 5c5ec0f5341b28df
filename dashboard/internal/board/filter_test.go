package board

import (
	"testing"

	"github.com/hookpipe/hookpipe/task"
)

func TestFilter(t *testing.T) {
	e := task.Event{Task: task.Task{BatchID: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", Owner: "Ada Lovelace", Priority: task.Critical}}
	for _, c := range []struct {
		f    Filter
		want bool
		text string
	}{
		{Filter{}, true, ""},
		{Filter{Priority: "Critical"}, true, "Critical"},
		{Filter{Priority: "Low"}, false, "Low"},
		{Filter{Batch: "6BA7"}, true, "batch 6BA7"},
		{Filter{Batch: "b810"}, false, "batch b810"},
		{Filter{Owner: "love"}, true, "owner love"},
		{Filter{Owner: "grace"}, false, "owner grace"},
		{Filter{Priority: "Critical", Batch: "6ba7", Owner: " ADA "}, true, "Critical · batch 6ba7 · owner ADA"},
		{Filter{Priority: "Critical", Owner: "grace"}, false, "Critical · owner grace"},
	} {
		if got := c.f.Match(e); got != c.want {
			t.Errorf("%+v.Match = %v, want %v", c.f, got, c.want)
		}
		if got := c.f.String(); got != c.text {
			t.Errorf("%+v.String = %q, want %q", c.f, got, c.text)
		}
		if c.f.Active() != (c.text != "") {
			t.Errorf("%+v.Active = %v", c.f, c.f.Active())
		}
	}
}
