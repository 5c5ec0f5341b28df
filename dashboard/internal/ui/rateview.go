package ui

import (
	"strconv"
	"time"

	"github.com/hookpipe/hookpipe/dashboard/internal/board"
	"github.com/hookpipe/hookpipe/dashboard/internal/chart"
	"github.com/hookpipe/hookpipe/task"
	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// rateState is the rate chart as drawn: the window it shows and its
// layout, rebuilt only when the window's end or its buckets change (once a
// second, or when a frame brings buckets), not for every frame.
type rateState struct {
	end     int64
	version uint64
	w       chart.Window
	known   int
	c       chart.RateChart
	built   bool
	// hover is the bucket under the pointer; hovering says whether there
	// is one.
	hover    int
	hovering bool
	// buckets lists the non-empty seconds, for data-buckets.
	buckets string
	// What was rendered, for patch, and the elements it changes.
	drawnTop     int64
	drawnUnknown float64
	drawnHover   bool
	elems        []app.Value
}

// sync brings the chart up to the rates as of now, and reports whether it
// changed.
func (r *rateState) sync(rates *board.Rates, now time.Time) bool {
	end := rates.End(now)
	if r.built && end == r.end && rates.Version == r.version {
		return false
	}
	r.end, r.version, r.built = end, rates.Version, true
	r.w, r.known = rates.Window(end)
	r.c = chart.BuildRates(&r.w, r.known, chart.RateLayout())
	r.buckets = bucketList(&r.w, r.end)
	return true
}

// drawn notes that the chart as it is was rendered.
func (r *rateState) drawn() {
	r.drawnTop, r.drawnUnknown, r.drawnHover = r.c.Top, r.c.UnknownW, r.hovering
	r.elems = nil
}

// patchable reports whether the rendered chart can be brought up to date
// by patch: the same scale and unknown part, and no tooltip shown.
func (r *rateState) patchable() bool {
	return r.c.Top == r.drawnTop && r.c.UnknownW == r.drawnUnknown && !r.hovering && !r.drawnHover
}

// patch changes the rendered chart's lines, summary and data to the
// chart as it is; false when its elements are not there.
func (r *rateState) patch() bool {
	doc := app.Window().Get("document")
	if r.elems == nil {
		root, desc := doc.Call("getElementById", "rates"), doc.Call("getElementById", "rates-desc")
		lines := doc.Call("querySelectorAll", "#rates polyline.rate-line")
		if !root.Truthy() || !desc.Truthy() || lines.Length() != task.NumPriorities {
			return false
		}
		r.elems = []app.Value{root, desc}
		for i := range task.NumPriorities {
			r.elems = append(r.elems, lines.Index(i))
		}
	}
	root, desc := r.elems[0], r.elems[1]
	root.Call("setAttribute", "data-end", strconv.FormatInt(r.end, 10))
	root.Call("setAttribute", "data-buckets", r.buckets)
	if !setText(desc, r.c.Summary) {
		return false
	}
	for i, ln := range r.c.Lines {
		r.elems[2+i].Call("setAttribute", "points", ln.Points)
	}
	return true
}

// bucketList lists the seconds of w that hold events, as
// "second:low,moderate,major,critical" separated by spaces, for tests and
// anyone reading the page's data.
func bucketList(w *chart.Window, end int64) string {
	var b []byte
	start := end - task.RateWindow + 1
	for i, c := range w {
		if c == ([task.NumPriorities]int64{}) {
			continue
		}
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, start+int64(i), 10)
		for p, n := range c {
			if p == 0 {
				b = append(b, ':')
			} else {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, n, 10)
		}
	}
	return string(b)
}

// view draws the rate chart: grid and ticks, the unknown seconds, one line
// per priority, the time axis and, under the pointer, the second's counts.
func (r *rateState) view() app.UI {
	c := &r.c
	l := c.Layout
	bottom, right := c.PlotY+c.PlotH, c.PlotX+c.PlotW
	grid := make([]app.UI, 0, 2*len(c.Ticks)+len(c.XTicks))
	for _, t := range c.Ticks {
		grid = append(grid,
			svg("line").Class("grid").Attr("x1", num(c.PlotX)).Attr("x2", num(right)).Attr("y1", num(t.Y)).Attr("y2", num(t.Y)),
			svg("text").Class("tick").Attr("x", num(c.PlotX-8)).Attr("y", num(t.Y+4)).Attr("text-anchor", "end").Text(t.Label),
		)
	}
	for _, t := range c.XTicks {
		grid = append(grid, svg("text").Class("tick").Attr("x", num(t.X)).Attr("y", num(bottom+18)).Attr("text-anchor", "middle").Text(t.Label))
	}
	lines := make([]app.UI, 0, task.NumPriorities)
	for _, ln := range c.Lines {
		lines = append(lines, svg("polyline").Class("rate-line").DataSet("priority", ln.Priority.String()).
			Attr("points", ln.Points).Attr("stroke", ln.Color).Attr("fill", "none"))
	}
	unknown := svg("g").Class("rate-unknown")
	if c.UnknownW > 0 {
		unknown = unknown.Body(
			svg("rect").Attr("x", num(c.PlotX)).Attr("y", num(c.PlotY)).Attr("width", num(c.UnknownW)).Attr("height", num(c.PlotH)),
			svg("text").Class("tick").Attr("x", num(c.PlotX+c.UnknownW/2)).Attr("y", num(c.PlotY+c.PlotH/2)).
				Attr("text-anchor", "middle").Text("no data"),
		)
	}
	hover := svg("g").Class("rate-hover")
	tip := ""
	if r.hovering {
		x := c.X(r.hover)
		tip = chart.RateTooltip(&r.w, r.hover, r.known)
		anchor := "start"
		if x > c.PlotX+c.PlotW/2 {
			anchor = "end"
		}
		hover = hover.Body(
			svg("line").Attr("x1", num(x)).Attr("x2", num(x)).Attr("y1", num(c.PlotY)).Attr("y2", num(bottom)),
			svg("text").ID("rate-tip").Class("rate-tip").Attr("x", num(x)).Attr("y", num(c.PlotY+12)).Attr("text-anchor", anchor).Text(tip),
		)
	}
	return svg("svg").ID("rates").Class("chart rates").
		Attr("viewBox", "0 0 "+num(l.Width)+" "+num(l.Height)).
		Attr("role", "img").Attr("aria-labelledby", "rates-title rates-desc").
		DataSet("end", r.end).DataSet("tip", tip).DataSet("buckets", r.buckets).
		Body(
			svg("title").ID("rates-title").Text(chart.RateTitle),
			svg("desc").ID("rates-desc").Text(c.Summary),
			svg("g").Class("ticks").Attr("aria-hidden", "true").Body(grid...),
			unknown,
			svg("g").Class("lines").Body(lines...),
			svg("line").Class("axis").Attr("x1", num(c.PlotX)).Attr("x2", num(right)).Attr("y1", num(bottom)).Attr("y2", num(bottom)),
			svg("line").Class("axis").Attr("x1", num(c.PlotX)).Attr("x2", num(c.PlotX)).Attr("y1", num(c.PlotY)).Attr("y2", num(bottom)),
			hover,
			// On top, so that it takes the pointer everywhere in the plot.
			svg("rect").Class("rate-overlay").Attr("x", num(c.PlotX)).Attr("y", num(c.PlotY)).
				Attr("width", num(c.PlotW)).Attr("height", num(c.PlotH)).Attr("fill", "transparent").
				OnMouseMove(r.move).OnMouseLeave(func(ctx app.Context, e app.Event) { r.hovering = false }),
		)
}

// move finds the bucket under the pointer: the SVG is scaled to its box,
// so the pointer's x is mapped back to the drawing's units.
func (r *rateState) move(ctx app.Context, e app.Event) {
	svgEl := ctx.JSSrc().Get("ownerSVGElement")
	box := svgEl.Call("getBoundingClientRect")
	width := box.Get("width").Float()
	if width <= 0 {
		return
	}
	x := (e.Get("clientX").Float() - box.Get("left").Float()) * r.c.Layout.Width / width
	r.hover, r.hovering = r.c.Index(x)
}
