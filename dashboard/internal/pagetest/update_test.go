package pagetest

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hookpipe/hookpipe/dashboard/internal/server"
	"github.com/hookpipe/hookpipe/devenv/proc"
)

// startVersion runs the dashboard server on port with a fixed version.
func startVersion(t testing.TB, port int, relayURL, version string) *server.Main {
	t.Helper()
	m := server.NewMain()
	m.Config.Addr = "127.0.0.1:" + strconv.Itoa(port)
	m.Config.WebDir = testWebDir(t)
	m.Config.RelayURL = relayURL
	m.Config.Version = version
	m.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestNewVersionOffersReload checks that a server restarted with a new
// version makes an open page install it and offer to reload. That a
// restart with the same version is no update is checked on the server
// (TestVersion): the service worker's bytes stay the same.
func TestNewVersionOffersReload(t *testing.T) {
	relay := newFakeRelay(t)
	port, err := proc.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	m := startVersion(t, port, relay.URL(), "v1")
	ctx := newBrowser(t)
	run(t, ctx, 60*time.Second, chromedp.Navigate(url))
	// The first worker installs version v1 and takes the page over.
	waitJS(t, ctx, 60*time.Second, `navigator.serviceWorker.ready.then(r => !!r.active && !!navigator.serviceWorker.controller)`,
		"no service worker controls the page")
	waitJS(t, ctx, 60*time.Second, `caches.open('app-v1').then(c => c.match('/web/app.wasm')).then(r => !!r)`, "service worker did not cache version v1")
	const updateShown = `!document.getElementById('update').hidden`
	if eval[bool](t, ctx, updateShown) {
		t.Fatal("update offered before there is one")
	}

	m.Close()
	startVersion(t, port, relay.URL(), "v2")
	// The page checks at start and every ten minutes; the test asks now.
	checked, err := tryEval[string](ctx, `goappServiceWorkerRegistration.update().then(() => 'ok', e => String(e))`)
	if err != nil || checked != "ok" {
		t.Fatalf("update check: %q, %v; worker: %s", checked, err, workerState(ctx))
	}
	waitJS(t, ctx, 30*time.Second, updateShown, "new version not offered")
	waitJS(t, ctx, 30*time.Second, `caches.keys().then(k => k.length === 1 && k[0] === 'app-v2')`, "new version not installed")
}

// workerState describes the page's service worker registration and caches,
// for failure messages.
func workerState(ctx context.Context) string {
	s, err := tryEval[string](ctx, `(async () => {
		const r = await navigator.serviceWorker.getRegistration();
		const w = x => x ? x.state + ' ' + x.scriptURL : 'none';
		return JSON.stringify({controller: w(navigator.serviceWorker.controller),
			installing: r && w(r.installing), waiting: r && w(r.waiting), active: r && w(r.active),
			caches: await caches.keys()});
	})()`)
	if err != nil {
		return err.Error()
	}
	return s
}
