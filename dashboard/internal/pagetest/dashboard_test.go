package pagetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/hookpipe/hookpipe/task"
)

const batchA = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"

func TestSnapshotAndLiveUpdates(t *testing.T) {
	relay := newFakeRelay(t)
	relay.publish(tasks(batchA, 0, 7)...)
	// The snapshot shown over a live connection.
	ctx := openLive(t, relay)
	seq, counts := relay.state()

	items := eval[[]string](t, ctx,
		`[...document.querySelectorAll('#messages li')].map(li => li.dataset.seq + '|' + li.dataset.priority + '|' + li.textContent)`)
	if len(items) != 7 {
		t.Fatalf("list has %d items, want 7: %q", len(items), items)
	}
	for i, it := range items {
		// Newest first: seq 7 down to 1, task ids 6 down to 0.
		id := 6 - i
		p := task.Priorities[id%task.NumPriorities].String()
		want := strconv.Itoa(7-i) + "|" + p + "|"
		if !strings.HasPrefix(it, want) || !strings.Contains(it, "Owner "+strconv.Itoa(id)) || !strings.Contains(it, "task "+strconv.Itoa(id)) {
			t.Errorf("item %d = %q, want %s… with owner, priority and task %d", i, it, want, id)
		}
	}

	// Live: two bursts, each shown in full.
	for burst := range 2 {
		relay.publish(tasks(batchA, 7+burst*50, 50)...)
		seq, counts = relay.state()
		waitJS(t, ctx, 10*time.Second, shows(seq, counts), "update not shown")
	}
	first := eval[string](t, ctx, `document.querySelector('#messages li').dataset.seq`)
	if first != strconv.FormatUint(seq, 10) {
		t.Errorf("first list item has seq %s, want the newest %d", first, seq)
	}

	// The chart has its text alternative, axis titles and a tooltip per bar.
	desc := eval[string](t, ctx, `document.querySelector('#chart-desc').textContent`)
	titles := eval[string](t, ctx, `[...document.querySelectorAll('svg .axis-title, rect.bar title')].map(e => e.textContent).join(';')`)
	if !strings.Contains(desc, "total "+strconv.FormatInt(counts.Total(), 10)) {
		t.Errorf("chart description %q does not give the total %d", desc, counts.Total())
	}
	wantTitles := fmt.Sprintf("Low: %d;Moderate: %d;Major: %d;Critical: %d;Priority;Total", counts[0], counts[1], counts[2], counts[3])
	if titles != wantTitles {
		t.Errorf("titles %q, want %q", titles, wantTitles)
	}

	// The batch view shows the batch's counts from the relay.
	waitJS(t, ctx, 10*time.Second, fmt.Sprintf(
		`document.querySelector('#batch') && document.querySelector('#batch').dataset.batch === '%s' && document.querySelector('#batch').dataset.done === '%d'`,
		batchA, counts.Total()), "batch view not showing the batch")
}

func TestOwnerIsRenderedAsText(t *testing.T) {
	relay := newFakeRelay(t)
	_, url := startDashboard(t, relay.URL())
	ctx := newBrowser(t)
	dialogs := make(chan string, 4)
	err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			select {
			case dialogs <- d.Message:
			default:
			}
			go chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{})
				return err
			}))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, 60*time.Second, chromedp.Navigate(url))
	waitJS(t, ctx, 60*time.Second, fmt.Sprintf(connIs, "live"), "connection not live")

	const evil = `<img src=x onerror=alert(1)>`
	tk := tasks(batchA, 0, 1)[0]
	tk.Owner = evil
	relay.publish(tk)
	waitJS(t, ctx, 10*time.Second, shows(1, task.Counts{1}), "task not shown")

	owner := eval[string](t, ctx, `document.querySelector('#messages li .owner').textContent`)
	imgs := eval[int](t, ctx, `document.querySelectorAll('#dashboard img').length`)
	if owner != evil {
		t.Errorf("owner shows as %q, want the characters %q", owner, evil)
	}
	if imgs != 0 {
		t.Errorf("the owner became %d img elements", imgs)
	}
	select {
	case m := <-dialogs:
		t.Errorf("the owner ran script: dialog %q", m)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestReconnectResumesAndMatchesRelay(t *testing.T) {
	relay := newFakeRelay(t)
	relay.publish(tasks(batchA, 0, 20)...)
	_, url := startDashboard(t, relay.URL())
	ctx := newBrowser(t)
	run(t, ctx, 60*time.Second, chromedp.Navigate(url))
	seq, counts := relay.state()
	waitJS(t, ctx, 60*time.Second, shows(seq, counts), "snapshot not shown")

	relay.stop()
	waitJS(t, ctx, 10*time.Second, fmt.Sprintf(connIs, "reconnecting"), "page did not notice the relay stopped")
	text := eval[string](t, ctx, `document.querySelector('#conn').textContent`)
	if !strings.HasPrefix(text, "Reconnecting") {
		t.Errorf("connection state reads %q, want Reconnecting…", text)
	}

	// Tasks accepted while the page is cut off, then the relay comes back.
	relay.publish(tasks(batchA, 20, 30)...)
	relay.start()
	seq, counts = relay.state()
	waitJS(t, ctx, 20*time.Second, shows(seq, counts), "page does not match the relay after reconnecting")
	waitJS(t, ctx, 5*time.Second, fmt.Sprintf(connIs, "live"), "connection not live again")

	sinces := relay.connections()
	if len(sinces) < 2 || sinces[0] != "" || sinces[len(sinces)-1] != "20" {
		t.Errorf("connections asked since %q, want first none, last 20", sinces)
	}
	items := eval[int](t, ctx, `document.querySelectorAll('#messages li').length`)
	if items != 50 {
		t.Errorf("list has %d items after resuming, want all 50", items)
	}
}

func TestServiceWorkerServesShellOffline(t *testing.T) {
	relay := newFakeRelay(t)
	relay.publish(tasks(batchA, 0, 3)...)
	m, url := startDashboard(t, relay.URL())
	ctx := newBrowser(t)
	run(t, ctx, 60*time.Second, chromedp.Navigate(url))
	waitJS(t, ctx, 60*time.Second, shows(3, task.Counts{1, 1, 1, 0}), "snapshot not shown")
	// The service worker has cached the shell once it controls the page.
	waitJS(t, ctx, 30*time.Second, `navigator.serviceWorker.ready.then(r => !!r.active)`, "no service worker")
	waitJS(t, ctx, 30*time.Second, `(async () => { const c = await caches.open((await caches.keys())[0]); return !!(await c.match('/web/app.wasm')) && !!(await c.match('/')); })()`,
		"service worker did not cache the shell")

	// Everything goes away: the dashboard server, the relay, the network.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	relay.stop()
	run(t, ctx, 10*time.Second, goOffline)
	run(t, ctx, 60*time.Second, chromedp.Navigate(url))
	waitJS(t, ctx, 60*time.Second, `document.querySelector('#chart') && document.querySelectorAll('rect.bar').length === 4 && !document.getElementById('app-wasm-loader')`,
		"shell not loaded offline")
	waitJS(t, ctx, 10*time.Second, fmt.Sprintf(connIs, "offline"), "page does not say it is offline")
	text := eval[string](t, ctx, `document.querySelector('#conn').textContent`)
	if !strings.HasPrefix(text, "Offline") {
		t.Errorf("connection state reads %q, want Offline", text)
	}
}

// TestScreenshotUnderLoad feeds the page about 2,000 events per second for
// two seconds, checks that it keeps up, and keeps a screenshot in
// $HOOKPIPE_ARTIFACTS_DIR (default: the system's temporary folder).
func TestScreenshotUnderLoad(t *testing.T) {
	relay := newFakeRelay(t)
	_, url := startDashboard(t, relay.URL())
	ctx := newBrowser(t)
	run(t, ctx, 60*time.Second, chromedp.Navigate(url))
	waitJS(t, ctx, 60*time.Second, fmt.Sprintf(connIs, "live"), "connection not live")

	feed(relay, 2000, 2*time.Second)
	seq, counts := relay.state()
	waitJS(t, ctx, 20*time.Second, shows(seq, counts), "page fell behind the relay")
	n := eval[int](t, ctx, `document.querySelectorAll('#messages li').length`)
	if n != 500 {
		t.Errorf("list holds %d items under load, want the bound 500", n)
	}

	dir := os.Getenv("HOOKPIPE_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "hookpipe-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	feedCtx, stop := context.WithCancel(context.Background())
	go func() {
		for feedCtx.Err() == nil {
			feed(relay, 2000, 100*time.Millisecond)
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	cancel()
	stop()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dashboard-under-load.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if len(png) < 10_000 {
		t.Errorf("screenshot is only %d bytes", len(png))
	}
	t.Logf("screenshot: %s", path)
}

// goOffline cuts the page off the network and tells it so through
// navigator.onLine.
var goOffline = chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
	if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
		return err
	}
	if _, err := cdp.Call(ctx, tg, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{{Offline: true, DownloadThroughput: -1, UploadThroughput: -1}},
	}); err != nil {
		return err
	}
	_, err := cdp.Call(ctx, tg, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
	return err
})

// feed publishes perSecond events per second for d, in one frame per 1/60 s
// as the relay coalesces them.
func feed(relay *fakeRelay, perSecond int, d time.Duration) {
	const fps = 60
	per := perSecond / fps
	tick := time.NewTicker(time.Second / fps)
	defer tick.Stop()
	end := time.Now().Add(d)
	for n := 0; time.Now().Before(end); n += per {
		relay.publish(tasks(batchA, n, per)...)
		<-tick.C
	}
}
