package chart

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/hookpipe/hookpipe/task"
)

func TestScale(t *testing.T) {
	tests := []struct {
		largest   int64
		maxTicks  int
		top, step int64
	}{
		{0, 6, 5, 1},
		{1, 6, 1, 1},
		{5, 6, 5, 1},
		{6, 6, 6, 2},
		{9, 6, 10, 2},
		{10, 6, 10, 2},
		{11, 6, 15, 5},
		{48, 6, 50, 10},
		{101, 6, 150, 50},
		{100, 6, 100, 20},
		{999, 6, 1000, 200},
		{123456, 6, 150000, 50000},
		{7, 2, 10, 10},
	}
	for _, tt := range tests {
		top, step := Scale(tt.largest, tt.maxTicks)
		if top != tt.top || step != tt.step {
			t.Errorf("Scale(%d, %d) = %d, %d; want %d, %d", tt.largest, tt.maxTicks, top, step, tt.top, tt.step)
		}
		if top < tt.largest || top%step != 0 || top/step > int64(max(tt.maxTicks, 2)-1) {
			t.Errorf("Scale(%d, %d) = %d, %d breaks its promise", tt.largest, tt.maxTicks, top, step)
		}
	}
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name   string
		counts task.Counts
		top    int64
		ticks  []string
	}{
		{"empty", task.Counts{}, 5, []string{"0", "1", "2", "3", "4", "5"}},
		{"small", task.Counts{3, 1, 0, 2}, 3, []string{"0", "1", "2", "3"}},
		{"grown", task.Counts{30, 140, 7, 61}, 150, []string{"0", "50", "100", "150"}},
		{"negative is zero", task.Counts{-4, 2, 0, 0}, 2, []string{"0", "1", "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Build(tt.counts, DefaultLayout())
			if c.Top != tt.top {
				t.Errorf("top = %d, want %d", c.Top, tt.top)
			}
			var labels []string
			for _, tk := range c.Ticks {
				labels = append(labels, tk.Label)
			}
			if strings.Join(labels, ",") != strings.Join(tt.ticks, ",") {
				t.Errorf("ticks = %v, want %v", labels, tt.ticks)
			}
			bottom := c.PlotY + c.PlotH
			if c.Ticks[0].Y != bottom || !near(c.Ticks[len(c.Ticks)-1].Y, c.PlotY) {
				t.Errorf("ticks span %v..%v, want %v..%v", c.Ticks[0].Y, c.Ticks[len(c.Ticks)-1].Y, bottom, c.PlotY)
			}
			for i, b := range c.Bars {
				if b.Priority != task.Priorities[i] || b.Color != Colors[i] {
					t.Errorf("bar %d is %v %s, want %v %s", i, b.Priority, b.Color, task.Priorities[i], Colors[i])
				}
				want := max(tt.counts[i], 0)
				if b.Count != want {
					t.Errorf("bar %v count = %d, want %d", b.Priority, b.Count, want)
				}
				if wantH := c.PlotH * float64(want) / float64(c.Top); !near(b.H, wantH) {
					t.Errorf("bar %v height = %v, want %v", b.Priority, b.H, wantH)
				}
				if !near(b.Y+b.H, bottom) {
					t.Errorf("bar %v ends at %v, want the axis at %v", b.Priority, b.Y+b.H, bottom)
				}
				if b.X < c.PlotX || b.X+b.W > c.PlotX+c.PlotW {
					t.Errorf("bar %v at x %v..%v leaves the plot %v..%v", b.Priority, b.X, b.X+b.W, c.PlotX, c.PlotX+c.PlotW)
				}
				if i > 0 && b.X <= c.Bars[i-1].X+c.Bars[i-1].W {
					t.Errorf("bar %v overlaps the one before", b.Priority)
				}
				if !strings.Contains(b.Tooltip, b.Priority.String()) || !strings.HasSuffix(b.Tooltip, ": "+itoa(want)) {
					t.Errorf("tooltip %q does not give %v's total %d", b.Tooltip, b.Priority, want)
				}
				if b.LabelY >= b.Y {
					t.Errorf("label of %v at %v is not above the bar top %v", b.Priority, b.LabelY, b.Y)
				}
			}
		})
	}
}

func TestBuildRescales(t *testing.T) {
	// The same count is drawn shorter once another bar outgrows the axis.
	before := Build(task.Counts{10, 0, 0, 0}, DefaultLayout())
	after := Build(task.Counts{10, 0, 0, 1000}, DefaultLayout())
	if after.Top <= before.Top {
		t.Fatalf("top %d did not grow past %d", after.Top, before.Top)
	}
	if after.Bars[0].H >= before.Bars[0].H {
		t.Errorf("Low bar height %v, want less than %v after rescaling", after.Bars[0].H, before.Bars[0].H)
	}
	if !near(after.Bars[3].Y, after.PlotY) {
		t.Errorf("largest bar top %v, want the top of the plot %v", after.Bars[3].Y, after.PlotY)
	}
}

func TestBuildBadLayout(t *testing.T) {
	c := Build(task.Counts{1, 2, 3, 4}, Layout{Width: 10, Height: 10, Left: 20})
	if c.PlotW <= 0 || c.PlotH <= 0 {
		t.Fatalf("plot %v x %v, want a positive area from the defaults", c.PlotW, c.PlotH)
	}
}

func TestSummary(t *testing.T) {
	got := Summary(task.Counts{3, 1, 0, 2})
	want := "Tasks by priority: Low 3, Moderate 1, Major 0, Critical 2; total 6."
	if got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
}

func BenchmarkBuild(b *testing.B) {
	b.ReportAllocs()
	counts := task.Counts{1234, 98765, 4321, 5678}
	l := DefaultLayout()
	for b.Loop() {
		counts[1]++
		_ = Build(counts, l)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
