package pagetest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// bucketsOf reads the rate chart's non-empty seconds from the page.
func bucketsOf(t testing.TB, raw string) (map[int64]string, int64) {
	t.Helper()
	m := map[int64]string{}
	var sum int64
	for _, f := range strings.Fields(raw) {
		sec, counts, ok := strings.Cut(f, ":")
		n, err := strconv.ParseInt(sec, 10, 64)
		if !ok || err != nil {
			t.Fatalf("data-buckets %q: bad %q", raw, f)
		}
		m[n] = counts
		for _, c := range strings.Split(counts, ",") {
			v, _ := strconv.ParseInt(c, 10, 64)
			sum += v
		}
	}
	return m, sum
}

// TestRateChart draws the events per second on the real relay: the
// buckets hold every event once, a relay that restarts rebuilds them from
// the stream, so that a page opened after it draws the same chart as the
// page that was open all along, and the pointer shows a second's counts.
func TestRateChart(t *testing.T) {
	sys := newSystem(t)
	sys.accept(30)
	_, url := startDashboardAt(t, sys.dashPort, sys.relayURL())
	a := newBrowser(t)
	run(t, a, 60*time.Second, chromedp.Navigate(url))
	seq, counts := sys.truth()
	waitJS(t, a, 60*time.Second, shows(seq, counts), "page does not show what Redis holds")
	sumIs := func(n int64) string {
		return `(() => { const r = document.getElementById('rates'); if (!r) return false;
			let s = 0; for (const f of (r.dataset.buckets || '').split(' ').filter(x => x))
				for (const c of f.split(':')[1].split(',')) s += +c;
			return s === ` + strconv.FormatInt(n, 10) + `; })()`
	}
	waitJS(t, a, 15*time.Second, sumIs(counts.Total()), "rate buckets do not hold every event once")
	before, _ := bucketsOf(t, eval[string](t, a, `document.getElementById('rates').dataset.buckets`))
	if n := eval[int](t, a, `document.querySelectorAll('#rates polyline.rate-line').length`); n != 4 {
		t.Errorf("%d rate lines, want one per priority", n)
	}

	// The relay restarts: it reads the last five minutes again.
	sys.stopRelay()
	sys.startRelay()
	b := newBrowser(t)
	run(t, b, 60*time.Second, chromedp.Navigate(url))
	waitJS(t, b, 60*time.Second, shows(seq, counts), "page on the restarted relay does not show the counts")
	waitJS(t, b, 15*time.Second, sumIs(counts.Total()), "restarted relay's rate buckets do not hold every event")
	after, _ := bucketsOf(t, eval[string](t, b, `document.getElementById('rates').dataset.buckets`))
	if len(after) != len(before) {
		t.Errorf("buckets after the restart %v, before %v", after, before)
	}
	for sec, c := range before {
		if after[sec] != c {
			t.Errorf("second %d: %q before the restart, %q after", sec, c, after[sec])
		}
	}
	// The page that was open all along resumed and still agrees.
	sys.accept(4)
	seq, counts = sys.truth()
	waitJS(t, a, 30*time.Second, shows(seq, counts)+` && `+sumIs(counts.Total()), "resumed page's rates do not hold the new events")
	waitJS(t, b, 30*time.Second, shows(seq, counts)+` && `+sumIs(counts.Total()), "new page's rates do not hold the new events")

	// The pointer over the newest seconds shows their counts; the chart
	// must be in view for the pointer to reach it.
	run(t, a, 10*time.Second, chromedp.Evaluate[chromedp.Void](`document.getElementById('rates').scrollIntoView()`))
	box := eval[[]float64](t, a, `(() => { const r = document.querySelector('#rates .rate-overlay').getBoundingClientRect();
		return [r.right - 2, r.top + r.height / 2]; })()`)
	run(t, a, 10*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, input.DispatchMouseEvent, input.DispatchMouseEventParams{
			Type: input.DispatchMouseEventTypeMouseMoved, X: box[0], Y: box[1]})
		return err
	}))
	waitJS(t, a, 10*time.Second, `(document.getElementById('rates').dataset.tip || '').startsWith('this second')`,
		"pointer over the newest second shows no counts")
	if png, err := chromedp.Run(a, chromedp.FullScreenshot(100)); err == nil {
		saveArtifact(t, "dashboard-rates.png", png)
	}
}

// TestDashboardUnderLoad keeps the page open on the real relay while 4,000
// webhooks arrive, up to 1,000 a second: it filters by a priority and
// pauses meanwhile, each shown in a screenshot with the rate chart, and ends
// showing exactly what Redis and the stream hold.
func TestDashboardUnderLoad(t *testing.T) {
	sys := newSystem(t)
	_, url := startDashboardAt(t, sys.dashPort, sys.relayURL())
	ctx := newBrowser(t)
	run(t, ctx, 60*time.Second, chromedp.Navigate(url))
	waitJS(t, ctx, 60*time.Second, `document.querySelector('#conn') && document.querySelector('#conn').dataset.state === 'live'`, "page not live")
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A count, not a duration: a busy machine sends fewer a second,
		// and the page must still see the 2,000 it waits for below.
		sys.loadN(1000, 4000)
	}()
	shot := func(name string) {
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			saveArtifact(t, name, png)
		}
	}
	waitJS(t, ctx, 30*time.Second, `+document.querySelector('#dashboard').dataset.total >= 1000`, "events do not arrive")
	shot("dashboard-load-rates.png")
	if !eval[bool](t, ctx, `(() => { const s = document.querySelector('#filter-priority'); s.value = 'Critical'; s.dispatchEvent(new Event('change')); return true; })()`) {
		t.Fatal("could not pick a priority")
	}
	const allCritical = `(() => { const rows = [...document.querySelectorAll('#messages li')];
		return rows.length > 0 && rows.every(li => li.dataset.priority === 'Critical'); })()`
	waitJS(t, ctx, 10*time.Second, allCritical, "the filter does not hold under load")
	waitJS(t, ctx, 30*time.Second, `+document.querySelector('#dashboard').dataset.total >= 2000`, "events do not arrive")
	shot("dashboard-load-filtered.png")
	run(t, ctx, 10*time.Second, chromedp.Click(chromedp.ID("pause")))
	// The load may have ended by now on a fast machine: what comes while
	// paused is sent here, so that there is always some.
	sys.loadN(1000, 200)
	waitJS(t, ctx, 10*time.Second, `document.querySelector('#paused').textContent.includes('new events') && !document.querySelector('#paused').textContent.includes(' 0 new')`,
		"the paused page does not count what comes")
	shot("dashboard-load-paused.png")
	run(t, ctx, 10*time.Second, chromedp.Click(chromedp.ID("pause")))
	<-done
	seq, counts := sys.truth()
	waitJS(t, ctx, 30*time.Second, shows(seq, counts), "page does not end showing what Redis holds")
	if !eval[bool](t, ctx, allCritical) {
		t.Error("the filter did not hold to the end")
	}
}
