package pagetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestPauseAndResume pauses the view while frames keep coming: the chart,
// totals and list stay as they were, the page says how many events came
// since, and resuming shows exactly the relay's state at once.
func TestPauseAndResume(t *testing.T) {
	relay := newFakeRelay(t)
	relay.publish(tasks(batchA, 0, 10)...)
	ctx := openLive(t, relay)
	seq, counts := relay.state()

	run(t, ctx, 10*time.Second, chromedp.Click(chromedp.ID("pause")))
	waitJS(t, ctx, 5*time.Second, `document.querySelector('#dashboard').dataset.paused === 'true' && document.querySelector('#pause').textContent === 'Resume'`,
		"the view did not pause")
	relay.publish(tasks(batchA, 10, 30)...)
	// The frames are applied underneath: the page counts what came since.
	waitJS(t, ctx, 10*time.Second, `document.querySelector('#paused').textContent.includes('30 new events')`, "the paused page does not count what came")
	if !eval[bool](t, ctx, shows(seq, counts)) {
		t.Errorf("the paused view moved: %s", pageState(ctx))
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#messages li').length`); n != 10 {
		t.Errorf("the paused list has %d rows, want the 10 it had", n)
	}

	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		saveArtifact(t, "dashboard-paused.png", png)
	}

	run(t, ctx, 10*time.Second, chromedp.Click(chromedp.ID("pause")))
	seq, counts = relay.state()
	waitJS(t, ctx, 2*time.Second, shows(seq, counts), "resuming did not show the current state")
	waitJS(t, ctx, 2*time.Second, `document.querySelectorAll('#messages li').length === 40`, "resuming did not bring the list up to date")
	first := eval[string](t, ctx, `document.querySelector('#messages li').dataset.seq`)
	if first != fmt.Sprint(seq) {
		t.Errorf("first row has seq %s after resuming, want the newest %d", first, seq)
	}
	if text := eval[string](t, ctx, `document.querySelector('#paused').textContent`); strings.TrimSpace(text) != "" {
		t.Errorf("a live page says %q", text)
	}
}

// saveArtifact keeps a file of the run in $HOOKPIPE_ARTIFACTS_DIR (default:
// the system's temporary folder).
func saveArtifact(t testing.TB, name string, b []byte) {
	dir := os.Getenv("HOOKPIPE_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "hookpipe-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s", path)
}

// openLive opens the dashboard on relay in a new browser and waits until it
// shows the relay's snapshot over a live connection.
func openLive(t testing.TB, relay *fakeRelay) context.Context {
	t.Helper()
	_, url := startDashboard(t, relay.URL())
	ctx := newBrowser(t)
	run(t, ctx, 60*time.Second, chromedp.Navigate(url))
	seq, counts := relay.state()
	waitJS(t, ctx, 60*time.Second, shows(seq, counts), "snapshot not shown")
	waitJS(t, ctx, 5*time.Second, fmt.Sprintf(connIs, "live"), "connection not live")
	return ctx
}
