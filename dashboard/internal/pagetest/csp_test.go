package pagetest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The page works under its Content-Security-Policy: the wasm runs, the
// service worker installs, the relay is reached, and nothing is blocked.
func TestPageLivesUnderItsCSP(t *testing.T) {
	relay := newFakeRelay(t)
	relay.publish(tasks(batchA, 0, 5)...)
	_, url := startDashboard(t, relay.URL())
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'none'") || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers: CSP %q, nosniff %q", csp, res.Header.Get("X-Content-Type-Options"))
	}
	ctx := newBrowser(t)
	run(t, ctx, 10*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));`,
		})
		return err
	}))
	run(t, ctx, 60*time.Second, chromedp.Navigate(url))
	seq, counts := relay.state()
	waitJS(t, ctx, 60*time.Second, shows(seq, counts), "snapshot not shown under the CSP")
	waitJS(t, ctx, 5*time.Second, fmt.Sprintf(connIs, "live"), "connection not live")
	waitJS(t, ctx, 60*time.Second, `navigator.serviceWorker.ready.then(r => !!r.active)`, "no service worker under the CSP")
	if v := eval[[]string](t, ctx, `window.__csp`); len(v) > 0 {
		t.Fatalf("the page broke its own CSP: %q", v)
	}
}
