package ui

import (
	"strconv"

	"github.com/hookpipe/hookpipe/dashboard/internal/chart"
	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// svgNS is the namespace every SVG element is created in; without it the
// browser would make unknown HTML elements that draw nothing.
const svgNS = "http://www.w3.org/2000/svg"

func svg(tag string) app.HTMLElem { return app.Elem(tag).XMLNS(svgNS) }

func num(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// chartView draws c as SVG: title, grid and ticks, bars with their totals,
// axis titles, and a text alternative. Clicking a bar calls onBar with its
// priority's name.
func chartView(c chart.Chart, onBar func(app.Context, string)) app.UI {
	l := c.Layout
	bottom := c.PlotY + c.PlotH
	right := c.PlotX + c.PlotW

	// Always as many tick slots as the scale may use, those it does not
	// hidden: the page's structure stays when the scale changes, so that a
	// frame can move the ticks without go-app rendering (see patch).
	ticks := make([]app.UI, 0, 2*max(l.MaxTicks, len(c.Ticks)))
	for i := range max(l.MaxTicks, len(c.Ticks)) {
		t, vis := chart.Tick{Label: "0"}, "hidden" // a label, so its text node exists
		if i < len(c.Ticks) {
			t, vis = c.Ticks[i], "visible"
		}
		ticks = append(ticks,
			svg("line").Class("grid").Attr("visibility", vis).
				Attr("x1", num(c.PlotX)).Attr("x2", num(right)).
				Attr("y1", num(t.Y)).Attr("y2", num(t.Y)),
			svg("text").Class("tick").Attr("visibility", vis).
				Attr("x", num(c.PlotX-8)).Attr("y", num(t.Y+4)).
				Attr("text-anchor", "end").Text(t.Label),
		)
	}
	bars := make([]app.UI, 0, len(c.Bars))
	for i, b := range c.Bars {
		count := strconv.FormatInt(b.Count, 10)
		name := b.Priority.String()
		bars = append(bars, svg("g").Class("bar-group").
			OnClick(func(ctx app.Context, e app.Event) { onBar(ctx, name) }).Body(
			svg("rect").Class("bar").
				DataSet("priority", b.Priority.String()).
				DataSet("count", count).
				Attr("x", num(b.X)).Attr("y", num(b.Y)).
				Attr("width", num(b.W)).Attr("height", num(b.H)).
				Attr("fill", b.Color).
				Body(svg("title").Text(b.Tooltip)),
			svg("text").Class("value").
				Attr("x", num(b.LabelX)).Attr("y", num(b.LabelY)).
				Attr("text-anchor", "middle").Text(count),
			svg("text").Class("category").
				Attr("x", num(c.SlotCenter(i))).Attr("y", num(bottom+20)).
				Attr("text-anchor", "middle").Text(b.Priority.String()),
		))
	}
	return svg("svg").ID("chart").Class("chart").
		Attr("viewBox", "0 0 "+num(l.Width)+" "+num(l.Height)).
		Attr("role", "img").
		Attr("aria-labelledby", "chart-title chart-desc").
		Body(
			svg("title").ID("chart-title").Text(chart.Title),
			svg("desc").ID("chart-desc").Text(c.Summary),
			svg("text").Class("chart-title").
				Attr("x", num(l.Width/2)).Attr("y", "22").
				Attr("text-anchor", "middle").Text(chart.Title),
			svg("g").Class("ticks").Attr("aria-hidden", "true").Body(ticks...),
			svg("g").Class("bars").Body(bars...),
			svg("line").Class("axis").
				Attr("x1", num(c.PlotX)).Attr("x2", num(right)).
				Attr("y1", num(bottom)).Attr("y2", num(bottom)),
			svg("line").Class("axis").
				Attr("x1", num(c.PlotX)).Attr("x2", num(c.PlotX)).
				Attr("y1", num(c.PlotY)).Attr("y2", num(bottom)),
			svg("text").Class("axis-title").
				Attr("x", num(c.PlotX+c.PlotW/2)).Attr("y", num(l.Height-8)).
				Attr("text-anchor", "middle").Text(chart.XTitle),
			svg("text").Class("axis-title").
				Attr("transform", "rotate(-90)").
				Attr("x", num(-(c.PlotY+c.PlotH/2))).Attr("y", "16").
				Attr("text-anchor", "middle").Text(chart.YTitle),
		)
}
