package pagetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/hookpipe/hookpipe/dashboard/internal/precompress"
)

// BenchmarkPage measures the page in headless Chromium on loopback, each
// iteration with a fresh browser profile:
//
//   - cold-bytes: bytes the page transferred on its first load (encoded
//     sizes, so the brotli wasm counts as compressed);
//   - cold-first-chart-ms and warm-first-chart-ms: from navigation start to
//     the first relay frame drawn, first without and then with the service
//     worker's cache;
//   - apply-ms-mean and apply-ms-max: the time from an animation frame to
//     the page showing the frames queued before it, under 2,000 events per
//     second; frames/update is how many relay frames each update took in,
//     and decode-ms-mean the part of an update spent decoding and applying
//     them to the state, list-ms-mean the part spent adding and removing
//     rows of the message list, render-ms-mean the part from the state
//     change to go-app having drawn the chart and totals (its frame tick
//     included).
func BenchmarkPage(b *testing.B) {
	dir := testWebDir(b)
	if _, err := os.Stat(filepath.Join(dir, "app.wasm.br")); err != nil {
		b.Logf("compressing %s (takes a minute; make wasm does it once)", dir)
		if _, err := precompress.WriteFiles(filepath.Join(dir, "app.wasm")); err != nil {
			b.Fatal(err)
		}
	}
	relay := newFakeRelay(b)
	relay.publish(tasks(batchA, 0, 100)...)
	_, url := startDashboard(b, relay.URL())

	var coldBytes, coldMs, warmMs, applyMean, applyMax, perUpdate, decodeMean, listMean, renderMean float64
	for b.Loop() {
		ctx := newBrowser(b)
		var mu sync.Mutex
		var bytes float64
		if err := chromedp.Listen(ctx, func(ev any) {
			if e, ok := ev.(*network.EventLoadingFinished); ok {
				mu.Lock()
				bytes += e.EncodedDataLength
				mu.Unlock()
			}
		}); err != nil {
			b.Fatal(err)
		}
		run(b, ctx, 10*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{})
			return err
		}))
		seq, counts := relay.state()
		run(b, ctx, 60*time.Second, chromedp.Navigate(url))
		waitJS(b, ctx, 60*time.Second, shows(seq, counts)+` && window.hookpipeStats`, "cold load: chart not drawn")
		coldMs += eval[float64](b, ctx, `window.hookpipeStats.firstMs`)
		waitJS(b, ctx, 30*time.Second, `caches.keys().then(async k => k.length > 0 && !!(await (await caches.open(k[0])).match('/web/app.wasm')))`, "service worker did not cache the wasm")
		mu.Lock()
		coldBytes += bytes
		mu.Unlock()

		run(b, ctx, 60*time.Second, chromedp.Navigate(url))
		waitJS(b, ctx, 60*time.Second, `navigator.serviceWorker.controller && window.hookpipeStats`, "warm load: chart not drawn")
		warmMs += eval[float64](b, ctx, `window.hookpipeStats.firstMs`)

		base := eval[map[string]float64](b, ctx, `window.hookpipeStats`)
		feed(relay, 2000, 3*time.Second)
		seq, counts = relay.state()
		waitJS(b, ctx, 20*time.Second, shows(seq, counts), "page fell behind under load")
		st := eval[map[string]float64](b, ctx, `window.hookpipeStats`)
		updates := st["updates"] - base["updates"]
		if updates <= 0 {
			b.Fatalf("no updates under load: %v", st)
		}
		applyMean += (st["sumMs"] - base["sumMs"]) / updates
		applyMax = max(applyMax, st["maxMs"])
		perUpdate += (st["frames"] - base["frames"]) / updates
		decodeMean += (st["decodeMs"] - base["decodeMs"]) / updates
		listMean += (st["listMs"] - base["listMs"]) / updates
		renderMean += (st["renderMs"] - base["renderMs"]) / updates
	}
	n := float64(b.N)
	b.ReportMetric(coldBytes/n, "cold-bytes")
	b.ReportMetric(coldMs/n, "cold-first-chart-ms")
	b.ReportMetric(warmMs/n, "warm-first-chart-ms")
	b.ReportMetric(applyMean/n, "apply-ms-mean")
	b.ReportMetric(applyMax, "apply-ms-max")
	b.ReportMetric(perUpdate/n, "frames/update")
	b.ReportMetric(decodeMean/n, "decode-ms-mean")
	b.ReportMetric(listMean/n, "list-ms-mean")
	b.ReportMetric(renderMean/n, "render-ms-mean")
	b.ReportMetric(0, "ns/op")
	fmt.Fprintf(os.Stderr, "dashboard: cold %.0f bytes, first chart cold %.0f ms, warm %.0f ms; under 2,000 events/s an update takes %.1f ms (max %.1f ms) for %.1f frames\n",
		coldBytes/n, coldMs/n, warmMs/n, applyMean/n, applyMax, perUpdate/n)
}
