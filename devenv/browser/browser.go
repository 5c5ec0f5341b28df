// Package browser starts the headless Chromium that the dashboard's browser
// tests drive, with the flags this kind of machine needs, so that every
// test launches it the same way.
package browser

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path is where Debian installs chromium.
const Path = "/usr/bin/chromium"

// New starts a headless Chromium with a profile of its own, so that no test
// sees another's service worker or cache, and stops it when the test ends.
// The test fails, saying how to install it, when chromium is missing.
func New(t testing.TB) context.Context {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
		t.Fatalf("browser tests need chromium at %s: apt-get update && apt-get install -y chromium chromium-driver (%v)", Path, err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(Path),
		chromedp.Headless,
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 960),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser; it must not have a deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Eval evaluates a JavaScript expression in the page, awaiting it when it
// is a promise, within ten seconds.
func Eval[T any](ctx context.Context, expr string) (T, error) {
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(tctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}
