package ui

import (
	"strconv"
	"time"

	"github.com/hookpipe/hookpipe/dashboard/internal/chart"
	"github.com/hookpipe/hookpipe/task"
	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// live is what frames change on the page: the root's data, the totals,
// the bars, the pause text and the freshness. Render draws it; between
// renders a frame changes only these elements' attributes and text
// (patch), which costs a fraction of go-app rendering the page again.
type live struct {
	seq                     uint64
	total, rate, seqText    string
	chart                   chart.Chart
	pauseText, notice       string
	freshText, freshMs      string
	freshShown, pausedShown bool
}

// live computes what the page shows as of now: the state, or what was
// shown when the view was paused.
func (d *Dashboard) live(now time.Time) live {
	s := d.state
	counts, seq, rate := s.Counts, s.Seq, s.Rate(now)
	if p := d.paused; p != nil {
		counts, seq, rate = p.counts, p.seq, p.rate
	}
	return live{
		seq:         seq,
		total:       strconv.FormatInt(counts.Total(), 10),
		rate:        strconv.FormatFloat(rate, 'f', 0, 64),
		seqText:     strconv.FormatUint(seq, 10),
		chart:       chart.Build(counts, d.layout),
		pauseText:   d.pauseText(),
		notice:      s.Notice(now),
		freshText:   "Fresh · " + d.fresh.Round(time.Millisecond).String(),
		freshMs:     strconv.FormatInt(d.fresh.Milliseconds(), 10),
		freshShown:  d.freshN > 0,
		pausedShown: d.paused != nil,
	}
}

// patchable reports whether the page drawn as drawn can be brought to v by
// patch: paused or not as drawn (the pause button's label and the view's
// data change).
func (v *live) patchable(drawn *live) bool {
	return v.pausedShown == drawn.pausedShown
}

// liveElems are the elements patch changes, found once after each render
// (go-app may replace elements when it renders).
type liveElems struct {
	found                                 bool
	root, total, rate, seq, paused, fresh app.Value
	desc, degraded                        app.Value
	rects, titles, values                 [task.NumPriorities]app.Value
	// ticks are the chart's grid lines and their labels, in pairs.
	ticks []app.Value
}

func (e *liveElems) find() bool {
	doc := app.Window().Get("document")
	byID := func(id string) app.Value { return doc.Call("getElementById", id) }
	e.root, e.total, e.rate, e.seq = byID("dashboard"), byID("stat-total"), byID("stat-rate"), byID("stat-seq")
	e.paused, e.fresh, e.desc, e.degraded = byID("paused"), byID("fresh"), byID("chart-desc"), byID("degraded")
	for _, v := range []app.Value{e.root, e.total, e.rate, e.seq, e.paused, e.fresh, e.desc, e.degraded} {
		if !v.Truthy() {
			return false
		}
	}
	rects := doc.Call("querySelectorAll", "#chart rect.bar")
	if rects.Length() != task.NumPriorities {
		return false
	}
	for i := range task.NumPriorities {
		r := rects.Index(i)
		e.rects[i], e.titles[i], e.values[i] = r, r.Call("querySelector", "title"), r.Get("nextElementSibling")
		if !e.titles[i].Truthy() || !e.values[i].Truthy() {
			return false
		}
	}
	ticks := doc.Call("querySelectorAll", "#chart g.ticks > *")
	e.ticks = e.ticks[:0]
	for i := range ticks.Length() {
		e.ticks = append(e.ticks, ticks.Index(i))
	}
	e.found = true
	return true
}

// patch brings the drawn page to v by changing attributes and text only;
// false when it cannot (the elements are not there), and the page must
// render.
func (d *Dashboard) patch(v *live) bool {
	e := &d.elems
	if !e.found && !e.find() {
		return false
	}
	set := func(el app.Value, name, val string) { el.Call("setAttribute", name, val) }
	ok := true
	text := func(el app.Value, s string) { ok = setText(el, s) && ok }
	set(e.root, "data-seq", v.seqText)
	set(e.root, "data-total", v.total)
	text(e.total, v.total)
	text(e.rate, v.rate)
	text(e.seq, v.seqText)
	text(e.paused, v.pauseText)
	text(e.desc, v.chart.Summary)
	e.fresh.Set("hidden", !v.freshShown)
	set(e.fresh, "data-ms", v.freshMs)
	text(e.fresh, v.freshText)
	if len(e.ticks) < 2*len(v.chart.Ticks) {
		return false
	}
	for i := range len(e.ticks) / 2 {
		line, label := e.ticks[2*i], e.ticks[2*i+1]
		if i >= len(v.chart.Ticks) {
			set(line, "visibility", "hidden")
			set(label, "visibility", "hidden")
			continue
		}
		t := v.chart.Ticks[i]
		y := num(t.Y)
		set(line, "visibility", "visible")
		set(label, "visibility", "visible")
		set(line, "y1", y)
		set(line, "y2", y)
		set(label, "y", num(t.Y+4))
		text(label, t.Label)
	}
	e.degraded.Set("hidden", v.notice == "")
	if v.notice != "" {
		text(e.degraded, v.notice)
	}
	for i, b := range v.chart.Bars {
		count := strconv.FormatInt(b.Count, 10)
		set(e.rects[i], "data-count", count)
		set(e.rects[i], "y", num(b.Y))
		set(e.rects[i], "height", num(b.H))
		text(e.titles[i], b.Tooltip)
		set(e.values[i], "y", num(b.LabelY))
		text(e.values[i], count)
	}
	return ok
}

// setText changes the text of el's text node, which go-app holds on to:
// replacing it (as textContent would) would leave go-app updating a node
// no longer on the page. False when el has no text node to change.
func setText(el app.Value, s string) bool {
	n := el.Get("firstChild")
	if !n.Truthy() || n.Get("nodeType").Int() != 3 || n.Get("nextSibling").Truthy() {
		return false
	}
	if n.Get("nodeValue").String() != s {
		n.Set("nodeValue", s)
	}
	return true
}
