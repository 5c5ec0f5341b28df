// Package chart turns priority counts into the shapes of the dashboard's bar
// chart: bars, axis ticks, labels and a text alternative. It is pure
// geometry, with no browser in sight, so that the drawing can be tested with
// go test and the page only maps shapes onto SVG elements.
package chart

import (
	"strconv"
	"strings"

	"github.com/hookpipe/hookpipe/task"
)

// Title is the chart's heading, the one the tutorial's chart had.
const Title = "Tasks Priority Matrix"

// Axis titles, as in the tutorial.
const (
	XTitle = "Priority"
	YTitle = "Total"
)

// Colors are the bar colours in the order of task.Priorities: the
// tutorial's green, blue, yellow and red.
var Colors = [task.NumPriorities]string{"green", "blue", "yellow", "red"}

// Layout is the size of the chart and of the margins around its plot area,
// in SVG user units.
type Layout struct {
	// Width and Height of the whole drawing; default 640 by 360.
	Width, Height float64
	// Margins between the drawing's edge and the plot area, leaving room for
	// the title, the axis titles and the tick labels; defaults 64, 16, 44, 56.
	Left, Right, Top, Bottom float64
	// MaxTicks is the most ticks the y axis gets, 0 included; default 6.
	MaxTicks int
	// BarFill is the share of its slot a bar covers, from 0 to 1; default 0.6.
	BarFill float64
}

// DefaultLayout returns the layout the dashboard uses.
func DefaultLayout() Layout {
	return Layout{Width: 640, Height: 360, Left: 64, Right: 16, Top: 44, Bottom: 56, MaxTicks: 6, BarFill: 0.6}
}

// Bar is one priority's bar.
type Bar struct {
	Priority task.Priority
	Count    int64
	// Color is the fill colour.
	Color string
	// X, Y, W, H place the bar's rectangle; Y grows downwards, as in SVG.
	X, Y, W, H float64
	// LabelX and LabelY place the visible total above the bar.
	LabelX, LabelY float64
	// Tooltip is the text shown on hover.
	Tooltip string
}

// Tick is one labelled line of the y axis.
type Tick struct {
	Value int64
	Y     float64
	Label string
}

// Chart is everything needed to draw the chart.
type Chart struct {
	Layout Layout
	// PlotX, PlotY, PlotW, PlotH place the plot area, whose bottom edge is
	// the x axis and whose left edge is the y axis.
	PlotX, PlotY, PlotW, PlotH float64
	Bars                       [task.NumPriorities]Bar
	// Ticks go from 0 up to Top, evenly spaced.
	Ticks []Tick
	// Top is the value at the top of the y axis, at least the largest count.
	Top int64
	// Summary describes the chart in words for screen readers.
	Summary string
}

// Build lays out the chart of counts. Negative counts are drawn as zero.
func Build(counts task.Counts, l Layout) Chart {
	l = l.withDefaults()
	c := Chart{
		Layout: l,
		PlotX:  l.Left,
		PlotY:  l.Top,
		PlotW:  l.Width - l.Left - l.Right,
		PlotH:  l.Height - l.Top - l.Bottom,
	}
	var largest int64
	for _, n := range counts {
		largest = max(largest, n)
	}
	top, step := Scale(largest, l.MaxTicks)
	c.Top = top
	for v := int64(0); v <= top; v += step {
		c.Ticks = append(c.Ticks, Tick{Value: v, Y: c.yOf(v), Label: strconv.FormatInt(v, 10)})
	}
	slot := c.PlotW / task.NumPriorities
	w := slot * l.BarFill
	for i, p := range task.Priorities {
		n := max(counts[i], 0)
		y := c.yOf(n)
		x := c.PlotX + float64(i)*slot + (slot-w)/2
		c.Bars[i] = Bar{
			Priority: p,
			Count:    n,
			Color:    Colors[i],
			X:        x,
			Y:        y,
			W:        w,
			H:        c.PlotY + c.PlotH - y,
			LabelX:   x + w/2,
			LabelY:   y - 6,
			Tooltip:  p.String() + ": " + strconv.FormatInt(n, 10),
		}
	}
	c.Summary = Summary(counts)
	return c
}

// yOf maps a value to its height on the drawing.
func (c *Chart) yOf(v int64) float64 {
	if c.Top <= 0 {
		return c.PlotY + c.PlotH
	}
	return c.PlotY + c.PlotH - c.PlotH*float64(v)/float64(c.Top)
}

// SlotCenter returns the x of the middle of priority index i's slot, where
// its axis label goes.
func (c *Chart) SlotCenter(i int) float64 {
	slot := c.PlotW / task.NumPriorities
	return c.PlotX + float64(i)*slot + slot/2
}

// Summary describes counts in one sentence, the chart's text alternative.
func Summary(counts task.Counts) string {
	var b strings.Builder
	b.WriteString("Tasks by priority: ")
	for i, p := range task.Priorities {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.String())
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(max(counts[i], 0), 10))
	}
	b.WriteString("; total ")
	b.WriteString(strconv.FormatInt(counts.Total(), 10))
	b.WriteByte('.')
	return b.String()
}

// Scale returns the top of an axis that shows values up to largest with at
// most maxTicks ticks, and the step between ticks: a round number (1, 2 or 5
// times a power of ten), so that labels read well as counts grow. An empty
// chart gets the axis 0 to 5.
func Scale(largest int64, maxTicks int) (top, step int64) {
	if maxTicks < 2 {
		maxTicks = 2
	}
	if largest <= 0 {
		largest = int64(maxTicks - 1)
	}
	intervals := int64(maxTicks - 1)
	// The smallest round step that covers largest in the intervals allowed.
	for mag := int64(1); ; mag *= 10 {
		for _, m := range [...]int64{1, 2, 5} {
			step = m * mag
			if step*intervals >= largest {
				top = (largest + step - 1) / step * step
				return top, step
			}
		}
		if mag > (1<<62)/10 {
			return largest, largest
		}
	}
}

func (l Layout) withDefaults() Layout {
	d := DefaultLayout()
	if l.Width <= 0 || l.Height <= 0 {
		l.Width, l.Height = d.Width, d.Height
	}
	if l.MaxTicks <= 0 {
		l.MaxTicks = d.MaxTicks
	}
	if l.BarFill <= 0 || l.BarFill > 1 {
		l.BarFill = d.BarFill
	}
	if l.Left < 0 || l.Right < 0 || l.Top < 0 || l.Bottom < 0 ||
		l.Left+l.Right >= l.Width || l.Top+l.Bottom >= l.Height {
		// Margins that leave no plot area: fall back to the whole default.
		l.Width, l.Height = d.Width, d.Height
		l.Left, l.Right, l.Top, l.Bottom = d.Left, d.Right, d.Top, d.Bottom
	}
	return l
}
