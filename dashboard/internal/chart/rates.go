package chart

import (
	"strconv"
	"strings"

	"github.com/hookpipe/hookpipe/task"
)

// RateTitle is the rate chart's heading.
const RateTitle = "Events per second, last 5 minutes"

// Window is one rate window: task.RateWindow one-second buckets, oldest
// first, of events per priority.
type Window = [task.RateWindow][task.NumPriorities]int64

// RateLine is one priority's line of the rate chart.
type RateLine struct {
	Priority task.Priority
	Color    string
	// Points are the SVG polyline's points, one per known second.
	Points string
}

// XTick is one labelled mark of the time axis.
type XTick struct {
	X     float64
	Label string
}

// RateChart is everything needed to draw the rate chart.
type RateChart struct {
	Layout                     Layout
	PlotX, PlotY, PlotW, PlotH float64
	Lines                      [task.NumPriorities]RateLine
	Ticks                      []Tick
	XTicks                     []XTick
	Top                        int64
	// UnknownW is the width, from the plot's left edge, of the seconds the
	// relay knows nothing of (its stream no longer held them); 0: none.
	UnknownW float64
	// Known is the index of the first known bucket.
	Known int
	// Summary describes the chart in words for screen readers.
	Summary string
}

// RateLayout returns the rate chart's layout: as wide as the bar chart and
// lower.
func RateLayout() Layout {
	return Layout{Width: 960, Height: 240, Left: 64, Right: 16, Top: 20, Bottom: 40, MaxTicks: 5}
}

// BuildRates lays out the rate chart of w, whose buckets before index known
// are unknown.
func BuildRates(w *Window, known int, l Layout) RateChart {
	l = l.withDefaults()
	known = min(max(known, 0), task.RateWindow)
	c := RateChart{Layout: l, PlotX: l.Left, PlotY: l.Top, PlotW: l.Width - l.Left - l.Right, PlotH: l.Height - l.Top - l.Bottom, Known: known}
	var largest int64
	var sums task.Counts
	for i := known; i < task.RateWindow; i++ {
		for p, n := range w[i] {
			largest = max(largest, n)
			sums[p] += n
		}
	}
	top, step := Scale(largest, l.MaxTicks)
	c.Top = top
	for v := int64(0); v <= top; v += step {
		c.Ticks = append(c.Ticks, Tick{Value: v, Y: c.yOf(v), Label: strconv.FormatInt(v, 10)})
	}
	for ago := task.RateWindow; ago >= 0; ago -= 60 {
		label := "now"
		if ago > 0 {
			label = "−" + strconv.Itoa(ago/60) + " min"
		}
		c.XTicks = append(c.XTicks, XTick{X: c.xOf(task.RateWindow - ago), Label: label})
	}
	c.UnknownW = c.xOf(known) - c.PlotX
	var b strings.Builder
	for p, prio := range task.Priorities {
		b.Reset()
		for i := known; i < task.RateWindow; i++ {
			if i > known {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatFloat(c.xOf(i)+c.step()/2, 'f', 1, 64))
			b.WriteByte(',')
			b.WriteString(strconv.FormatFloat(c.yOf(max(w[i][p], 0)), 'f', 1, 64))
		}
		c.Lines[p] = RateLine{Priority: prio, Color: Colors[p], Points: b.String()}
	}
	c.Summary = rateSummary(sums, task.RateWindow-known, w[task.RateWindow-1])
	return c
}

func (c *RateChart) step() float64 { return c.PlotW / task.RateWindow }

// xOf maps a bucket index to the x of its left edge.
func (c *RateChart) xOf(i int) float64 { return c.PlotX + float64(i)*c.step() }

// yOf maps a rate to its height on the drawing.
func (c *RateChart) yOf(v int64) float64 {
	if c.Top <= 0 {
		return c.PlotY + c.PlotH
	}
	return c.PlotY + c.PlotH - c.PlotH*float64(v)/float64(c.Top)
}

// Index returns the bucket under x, and false when x is outside the plot.
func (c *RateChart) Index(x float64) (int, bool) {
	if x < c.PlotX || x >= c.PlotX+c.PlotW {
		return 0, false
	}
	return min(int((x-c.PlotX)/c.step()), task.RateWindow-1), true
}

// X returns the x of the middle of bucket i, where its hover line goes.
func (c *RateChart) X(i int) float64 { return c.xOf(i) + c.step()/2 }

// RateTooltip says what bucket i of w holds: how long ago, and the events
// of each priority that second.
func RateTooltip(w *Window, i, known int) string {
	var b strings.Builder
	ago := task.RateWindow - 1 - i
	if ago == 0 {
		b.WriteString("this second")
	} else {
		b.WriteString(strconv.Itoa(ago))
		b.WriteString(" s ago")
	}
	if i < known {
		b.WriteString(": no data (the stream no longer holds it)")
		return b.String()
	}
	for p, prio := range task.Priorities {
		b.WriteString(" · ")
		b.WriteString(prio.String())
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(w[i][p], 10))
	}
	return b.String()
}

// rateSummary describes the chart in one sentence.
func rateSummary(sums task.Counts, seconds int, now [task.NumPriorities]int64) string {
	var b strings.Builder
	b.WriteString("Events per second over the last ")
	b.WriteString(strconv.Itoa(seconds))
	b.WriteString(" seconds known, on average: ")
	for p, prio := range task.Priorities {
		if p > 0 {
			b.WriteString(", ")
		}
		b.WriteString(prio.String())
		b.WriteByte(' ')
		avg := 0.0
		if seconds > 0 {
			avg = float64(sums[p]) / float64(seconds)
		}
		b.WriteString(strconv.FormatFloat(avg, 'f', 1, 64))
		b.WriteString(" (now ")
		b.WriteString(strconv.FormatInt(now[p], 10))
		b.WriteByte(')')
	}
	b.WriteByte('.')
	return b.String()
}
