package chart

import (
	"strconv"
	"strings"
	"testing"

	"github.com/hookpipe/hookpipe/task"
)

func TestBuildRates(t *testing.T) {
	var w Window
	w[task.RateWindow-1] = [4]int64{0, 0, 0, 40} // a burst of Critical now
	w[100] = [4]int64{7, 0, 0, 0}
	w[5] = [4]int64{1000, 0, 0, 0} // before the known part: not drawn
	c := BuildRates(&w, 10, RateLayout())
	if c.Top < 40 || c.Top > 50 {
		t.Errorf("top %d, want the largest known rate 40 rounded up", c.Top)
	}
	if c.UnknownW <= 0 || c.Known != 10 {
		t.Errorf("unknown area %.1f wide from bucket %d, want the first 10 seconds", c.UnknownW, c.Known)
	}
	crit := strings.Fields(c.Lines[3].Points)
	if len(crit) != task.RateWindow-10 {
		t.Fatalf("Critical line has %d points, want one per known second", len(crit))
	}
	bottom, top := c.PlotY+c.PlotH, c.PlotY
	if last := crit[len(crit)-1]; !strings.HasSuffix(last, ","+strconv1(top)) {
		t.Errorf("the burst's point %s is not at the top %.1f", last, top)
	}
	if first := crit[0]; !strings.HasSuffix(first, ","+strconv1(bottom)) {
		t.Errorf("a quiet second's point %s is not on the axis %.1f", first, bottom)
	}
	if len(c.XTicks) != 6 || c.XTicks[5].Label != "now" || c.XTicks[0].Label != "−5 min" {
		t.Errorf("time axis %+v", c.XTicks)
	}
	if i, ok := c.Index(c.X(100)); !ok || i != 100 {
		t.Errorf("Index(X(100)) = %d, %v", i, ok)
	}
	if _, ok := c.Index(c.PlotX - 1); ok {
		t.Error("a point left of the plot has a bucket")
	}
	if got := RateTooltip(&w, 100, 10); got != "199 s ago · Low 7 · Moderate 0 · Major 0 · Critical 0" {
		t.Errorf("tooltip %q", got)
	}
	if got := RateTooltip(&w, 5, 10); !strings.Contains(got, "no data") {
		t.Errorf("tooltip of an unknown second %q", got)
	}
	if !strings.Contains(c.Summary, "Critical 0.1 (now 40)") {
		t.Errorf("summary %q", c.Summary)
	}
}

func strconv1(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }
