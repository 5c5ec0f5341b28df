package page_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	devbrowser "github.com/hookpipe/hookpipe/devenv/browser"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/task"
)

// browser starts headless Chromium for one test.
func browser(t testing.TB) context.Context { return devbrowser.New(t) }

// eval polls a JavaScript expression until it returns true.
func eval(t testing.TB, ctx context.Context, expr, what string) {
	t.Helper()
	var last error
	testenv.Eventually(t, 15*time.Second, func() bool {
		var ok bool
		ok, last = chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		return last == nil && ok
	}, "%s (%s; last error %v)", what, expr, last)
}

func evalString(t testing.TB, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return s
}

// TestPageInBrowser drives the page in headless Chromium: lines appear as
// each webhook completes, while the batch is still running; success and
// failure get distinct classes; markup in the data stays text; a running
// batch can be cancelled from the page.
func TestPageInBrowser(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	p := newPeer(t, func(tk task.Task) (int, string) {
		if tk.BatchSize == 3 {
			switch tk.ID {
			case 1:
				<-release
			case 2:
				return 400, `{"error":"<img id=injected src=x onerror=\"document.title='pwned'\">"}`
			}
		}
		return 200, `{"status":"accepted"}`
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	_, srv := newPage(t, p)
	ctx := browser(t)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL),
		chromedp.WaitVisible(chromedp.ID("produceTasks")),
	); err != nil {
		t.Fatal(err)
	}
	eval(t, ctx, `document.getElementById("connection").textContent === "live"`, "event stream never opened")
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("size"), "3"),
		chromedp.SetValue(chromedp.ID("wait"), "0"),
		chromedp.Click(chromedp.ID("produceTasks")),
	); err != nil {
		t.Fatal(err)
	}
	lines := `Array.from(document.querySelectorAll("#Messages div"))`
	eval(t, ctx, lines+`.some(d => d.textContent.startsWith("1 out of 3 -- 200 -- {") && d.className === "ok")`,
		"first line never shown")
	// The second webhook is still held by the receiver: the first line got
	// there while the batch runs, and the batch shows as running.
	if got := evalString(t, ctx, lines+`.map(d => d.textContent).join("\n")`); strings.Contains(got, "2 out of 3") {
		t.Fatalf("second line shown before its webhook completed:\n%s", got)
	}
	eval(t, ctx, `document.querySelectorAll("#batches li").length === 1`, "running batch not listed")
	once.Do(func() { close(release) })
	eval(t, ctx, lines+`.some(d => d.className === "summary" && d.textContent.includes("2 accepted, 0 duplicates, 1 failed"))`,
		"summary never shown")
	eval(t, ctx, lines+`.some(d => d.textContent.startsWith("3 out of 3 -- 400 failed -- ") && d.className === "fail")`,
		"failed line not marked")
	eval(t, ctx, lines+`.some(d => d.textContent.includes("<img id=injected"))`, "error text not shown as text")
	if n := evalString(t, ctx, `String(document.querySelectorAll("#injected, #Messages img").length)`); n != "0" {
		t.Fatalf("markup from the receiver became %s elements", n)
	}
	if title := evalString(t, ctx, `document.title`); title != "Tasks Producer" {
		t.Fatalf("title %q: a script from the data ran", title)
	}
	eval(t, ctx, `document.querySelectorAll("#batches li").length === 0`, "ended batch still listed")

	// A slow batch, cancelled from its row.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("size"), "40"),
		chromedp.SetValue(chromedp.ID("wait"), "100"),
		chromedp.Click(chromedp.ID("produceTasks")),
		chromedp.WaitVisible(chromedp.CSS("#batches li button.cancel")),
	); err != nil {
		t.Fatal(err)
	}
	eval(t, ctx, lines+`.some(d => d.textContent.startsWith("2 out of 40 -- 200"))`, "slow batch did not start")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#batches li button.cancel"))); err != nil {
		t.Fatal(err)
	}
	eval(t, ctx, lines+`.some(d => d.className === "summary" && d.textContent.includes("40 tasks") && d.textContent.includes("cancelled)"))`,
		"cancelled batch never summarised")
	eval(t, ctx, lines+`.some(d => d.className === "cancelled" && d.textContent.includes("out of 40 -- cancelled -- "))`,
		"cancelled tasks not marked")
}

func TestPageShowsBadInput(t *testing.T) {
	p := newPeer(t, nil)
	_, srv := newPage(t, p)
	ctx := browser(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL),
		chromedp.WaitVisible(chromedp.ID("produceTasks")),
		// Bypass the input's own min/max check, as a script could.
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`document.getElementById("wait").removeAttribute("max"), true`)(ctx, tg)
			return err
		}),
		chromedp.SetValue(chromedp.ID("wait"), "999999"),
		chromedp.Click(chromedp.ID("produceTasks")),
	); err != nil {
		t.Fatal(err)
	}
	eval(t, ctx, `document.getElementById("formError").textContent.includes("wait_ms")`, "error not shown")
	if n := evalString(t, ctx, `String(document.querySelectorAll("#batches li").length)`); n != "0" {
		t.Fatalf("a refused request listed %s batches", n)
	}
}

// TestPageLooksLikeTheDashboard checks that the page takes the dashboard's
// stylesheet, that its size hint can be read whole, and keeps a screenshot
// in $HOOKPIPE_ARTIFACTS_DIR (default: the system's temporary folder).
func TestPageLooksLikeTheDashboard(t *testing.T) {
	p := newPeer(t, func(task.Task) (int, string) { return 200, `{"status":"accepted","seq":1}` })
	_, srv := newPage(t, p)
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.ID("produceTasks"))); err != nil {
		t.Fatal(err)
	}
	eval(t, ctx, `[...document.styleSheets].some(s => s.href && s.href.endsWith("/static/hookpipe.css") && s.cssRules.length > 20)`,
		"the shared stylesheet is not applied")
	// A rule only the shared stylesheet has: panels as the dashboard draws them.
	eval(t, ctx, `getComputedStyle(document.querySelector(".panel")).borderRadius === "10px"`, "panels do not look like the dashboard's")
	hint := evalString(t, ctx, `document.getElementById("sizeHint").textContent`)
	if !strings.Contains(hint, "random 1–100") {
		t.Errorf("size hint reads %q, want the random bounds 1–100", hint)
	}
	eval(t, ctx, `(() => { const h = document.getElementById("sizeHint"), r = h.getBoundingClientRect();
		return h.scrollWidth <= h.clientWidth + 1 && r.width > 0 && r.right <= document.documentElement.clientWidth; })()`,
		"the size hint is cut off")
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("size"), "5"),
		chromedp.SetValue(chromedp.ID("wait"), "0"),
		chromedp.Click(chromedp.ID("produceTasks")),
	); err != nil {
		t.Fatal(err)
	}
	eval(t, ctx, `[...document.querySelectorAll("#Messages div")].some(d => d.className === "summary" && d.textContent.includes("5 accepted"))`, "batch never summarised")
	// The POST's answer may come after the batch ended: it must not list
	// the batch again.
	eval(t, ctx, `document.querySelectorAll("#batches li").length === 0`, "an ended batch is still listed as running")
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("HOOKPIPE_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "hookpipe-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "producer-page.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
