package pagetest

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestFreshnessAndDegradedNotice runs the page on the real relay: it says
// how long the newest event took from the stream to the screen, and, when
// the relay leaves events out of its updates (here it keeps two per update,
// each update gathering a second of events), that the view is degraded, until
// the relay has said so for the last time NoticeHold ago.
func TestFreshnessAndDegradedNotice(t *testing.T) {
	sys := newSystemWith(t, "", "--max-update-events", "2", "--interval", "1s", "--max-interval", "1s")
	_, url := startDashboardAt(t, sys.dashPort, sys.relayURL())
	ctx := newBrowser(t)
	run(t, ctx, 60*time.Second, chromedp.Navigate(url))
	waitJS(t, ctx, 60*time.Second, `document.querySelector('#conn') && document.querySelector('#conn').dataset.state === 'live'`, "page not live")
	if !eval[bool](t, ctx, `document.getElementById('degraded').hidden && document.getElementById('fresh').hidden`) {
		t.Fatal("a page with nothing to say says it is degraded or fresh")
	}

	sys.accept(1)
	waitJS(t, ctx, 30*time.Second, `!document.getElementById('fresh').hidden && document.getElementById('fresh').dataset.ms !== ''`,
		"page does not say how fresh the newest event is")
	ms := eval[int](t, ctx, `+document.getElementById('fresh').dataset.ms`)
	text := eval[string](t, ctx, `document.getElementById('fresh').textContent`)
	// The relay holds each update up to a second: the newest event is that
	// old at most, plus the way to the screen.
	if ms < 0 || ms > 30000 || !strings.HasPrefix(text, "Fresh · ") {
		t.Errorf("freshness %d ms, %q; want the event's time from the stream to the screen", ms, text)
	}
	samples := eval[int](t, ctx, `window.hookpipeStats.freshMs.length`)
	if samples < 1 {
		t.Errorf("hookpipeStats.freshMs holds %d samples", samples)
	}

	// Ten events within one update interval: the update keeps two.
	sys.send(10, true)
	seq, counts := sys.truth()
	waitJS(t, ctx, 30*time.Second, shows(seq, counts), "page does not show the counts, exact whatever the cap")
	waitJS(t, ctx, 30*time.Second, `!document.getElementById('degraded').hidden`, "page does not say the relay leaves events out")
	notice := eval[string](t, ctx, `document.getElementById('degraded').textContent`)
	if !strings.Contains(notice, "leaves events out") {
		t.Errorf("notice %q does not say why", notice)
	}
	// Nothing new: the notice goes once the last degraded frame is old.
	waitJS(t, ctx, 30*time.Second, `document.getElementById('degraded').hidden`, "notice does not go away")
}
