package pagetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/browser"

	"github.com/chromedp/chromedp"
	"github.com/hookpipe/hookpipe/dashboard/internal/server"
)

var (
	webDirOnce sync.Once
	webDir     string
	webDirErr  error
)

// testWebDir returns a folder with the page's wasm: $HOOKPIPE_TEST_WEB_DIR
// when set, else one built for this run.
func testWebDir(t testing.TB) string {
	t.Helper()
	webDirOnce.Do(func() {
		if d := os.Getenv("HOOKPIPE_TEST_WEB_DIR"); d != "" {
			webDir = d
			return
		}
		dir, err := os.MkdirTemp("", "hookpipe-web-")
		if err != nil {
			webDirErr = err
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "app.wasm"),
			"github.com/hookpipe/hookpipe/dashboard")
		cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			webDirErr = fmt.Errorf("build wasm: %v\n%s", err, out)
			return
		}
		webDir = dir
	})
	if webDirErr != nil {
		t.Fatal(webDirErr)
	}
	return webDir
}

// startDashboard runs the real dashboard server on a free port, pointing
// the page at relayURL, and returns its base URL.
func startDashboard(t testing.TB, relayURL string) (*server.Main, string) {
	t.Helper()
	return startDashboardAt(t, 0, relayURL)
}

// startDashboardAt is startDashboard on port (0 for a free one).
func startDashboardAt(t testing.TB, port int, relayURL string) (*server.Main, string) {
	t.Helper()
	m := server.NewMain()
	m.Config.Addr = "127.0.0.1:" + strconv.Itoa(port)
	m.Config.WebDir = testWebDir(t)
	m.Config.RelayURL = relayURL
	m.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, "http://" + m.Addr()
}

// newBrowser starts a headless Chromium with a profile of its own, so that
// no test sees another's service worker or cache.
func newBrowser(t testing.TB) context.Context { return browser.New(t) }

// run runs actions with a deadline and fails the test on error.
func run(t testing.TB, ctx context.Context, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression in the page, awaiting it when it
// is a promise, and fails the test on error.
func eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := tryEval[T](ctx, expr)
	if err != nil {
		t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

func tryEval[T any](ctx context.Context, expr string) (T, error) { return browser.Eval[T](ctx, expr) }

// waitJS polls a JavaScript condition in the page until it is true (a
// promise is awaited), and fails the test with msg and the page's state
// when it is not within d.
func waitJS(t testing.TB, ctx context.Context, d time.Duration, cond, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		ok, err := tryEval[bool](ctx, "(async () => !!(await ("+cond+")))()")
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s within %v (last error %v); page: %s; service worker: %s", msg, d, last, pageState(ctx), workerState(ctx))
}

// pageState describes what the page shows, for failure messages.
func pageState(ctx context.Context) string {
	s, _ := tryEval[string](ctx, `(() => {
		const d = document.querySelector('#dashboard'), c = document.querySelector('#conn');
		const bars = [...document.querySelectorAll('rect.bar')].map(b => b.dataset.priority + '=' + b.dataset.count);
		return JSON.stringify({seq: d && d.dataset.seq, total: d && d.dataset.total, conn: c && c.dataset.state,
			connText: c && c.textContent, bars, items: document.querySelectorAll('#messages li').length,
			loader: !!document.getElementById('app-wasm-loader')});
	})()`)
	return s
}

// shows returns a condition true when the page shows seq, the counts and a
// live connection.
func shows(seq uint64, counts [4]int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, `(() => { const d = document.querySelector('#dashboard'); if (!d || d.dataset.seq !== '%d') return false;`, seq)
	names := []string{"Low", "Moderate", "Major", "Critical"}
	var total int64
	for i, n := range counts {
		total += n
		fmt.Fprintf(&b, ` const b%d = document.querySelector('rect.bar[data-priority="%s"]'); if (!b%d || b%d.dataset.count !== '%d') return false;`, i, names[i], i, i, n)
	}
	fmt.Fprintf(&b, ` return d.dataset.total === '%d'; })()`, total)
	return b.String()
}

const connIs = `document.querySelector('#conn') && document.querySelector('#conn').dataset.state === '%s'`
