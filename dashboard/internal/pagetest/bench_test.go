package pagetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/hookpipe/hookpipe/dashboard/internal/precompress"
	"github.com/hookpipe/hookpipe/task"
)

// BenchmarkPage measures the page in headless Chromium on loopback, each
// iteration with a fresh browser profile:
//
//   - cold-bytes: bytes the page transferred on its first load (encoded
//     sizes, so the brotli wasm counts as compressed);
//   - cold-first-chart-ms and warm-first-chart-ms: from navigation start to
//     the first relay frame drawn, first without and then with the service
//     worker's cache;
//   - apply-ms-mean, apply-ms-p99 and apply-ms-max: the time from an
//     animation frame to the page showing the frames queued before it,
//     under 2,000 events per second from a relay that sends one frame per
//     1/60 s; frames/update is how many relay frames each update took in,
//     decode-ms-mean the part spent decoding them, applying them to the
//     state and patching the page, list-ms-mean the part spent adding and
//     removing rows of the message list, render-ms-mean what go-app's
//     renders took per update (only updates that change the page's
//     structure render, renders/update of them);
//   - real-accept-to-screen-p50-ms and -p99-ms: under 2,000 webhooks per
//     second through the real receiver and relay, the time from the stream
//     storing the newest event of an update to the page drawing it
//     (measured against the relay's send time, see board.Freshness), and
//     real-apply-ms-p99 the update time there.
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
	sys := newSystem(b)
	_, realURL := startDashboardAt(b, sys.dashPort, sys.relayURL())

	var coldBytes, coldMs, warmMs, applyMean, perUpdate, decodeMean, listMean, renderMean, renders, realRenders float64
	var applyAll, realApply, fresh []float64
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

		base := pageStats(b, ctx)
		feed(relay, 2000, 3*time.Second)
		seq, counts = relay.state()
		waitJS(b, ctx, 20*time.Second, shows(seq, counts), "page fell behind under load")
		st := pageStats(b, ctx)
		updates := st.Updates - base.Updates
		if updates <= 0 {
			b.Fatalf("no updates under load: %+v", st)
		}
		applyMean += (st.SumMs - base.SumMs) / updates
		perUpdate += (st.Frames - base.Frames) / updates
		decodeMean += (st.DecodeMs - base.DecodeMs) / updates
		listMean += (st.ListMs - base.ListMs) / updates
		renderMean += (st.RenderMs - base.RenderMs) / updates
		renders += (st.Renders - base.Renders) / updates
		applyAll = append(applyAll, st.Apply[len(base.Apply):]...)

		// The real receiver and relay.
		rctx := newBrowser(b)
		run(b, rctx, 60*time.Second, chromedp.Navigate(realURL))
		waitJS(b, rctx, 60*time.Second, `document.querySelector('#conn') && document.querySelector('#conn').dataset.state === 'live' && window.hookpipeStats`, "real relay: page not live")
		base = pageStats(b, rctx)
		sys.load(2000, 3*time.Second)
		rseq, rcounts := sys.truth()
		waitJS(b, rctx, 30*time.Second, shows(rseq, rcounts), "page fell behind the real relay")
		st = pageStats(b, rctx)
		realApply = append(realApply, st.Apply[len(base.Apply):]...)
		realRenders += (st.Renders - base.Renders) / max(st.Updates-base.Updates, 1)
		b.Logf("real relay: %.0f updates, %.0f frames", st.Updates-base.Updates, st.Frames-base.Frames)
		fresh = append(fresh, st.Fresh[len(base.Fresh):]...)
	}
	n := float64(b.N)
	if len(fresh) == 0 {
		b.Fatal("no accept-to-screen samples through the real relay")
	}
	b.ReportMetric(coldBytes/n, "cold-bytes")
	b.ReportMetric(coldMs/n, "cold-first-chart-ms")
	b.ReportMetric(warmMs/n, "warm-first-chart-ms")
	b.ReportMetric(applyMean/n, "apply-ms-mean")
	b.ReportMetric(percentile(applyAll, 99), "apply-ms-p99")
	b.ReportMetric(percentile(applyAll, 100), "apply-ms-max")
	b.ReportMetric(perUpdate/n, "frames/update")
	b.ReportMetric(decodeMean/n, "decode-ms-mean")
	b.ReportMetric(listMean/n, "list-ms-mean")
	b.ReportMetric(renderMean/n, "render-ms-mean")
	b.ReportMetric(renders/n, "renders/update")
	b.ReportMetric(realRenders/n, "real-renders/update")
	b.ReportMetric(percentile(fresh, 50), "real-accept-to-screen-p50-ms")
	b.ReportMetric(percentile(fresh, 99), "real-accept-to-screen-p99-ms")
	b.ReportMetric(percentile(realApply, 99), "real-apply-ms-p99")
	b.ReportMetric(0, "ns/op")
	fmt.Fprintf(os.Stderr, "dashboard: cold %.0f bytes, first chart cold %.0f ms, warm %.0f ms; under 2,000 events/s an update takes %.1f ms on average, p99 %.1f ms, max %.1f ms, for %.1f frames; through the real relay accept-to-screen p50 %.0f ms, p99 %.0f ms (%d samples)\n",
		coldBytes/n, coldMs/n, warmMs/n, applyMean/n, percentile(applyAll, 99), percentile(applyAll, 100), perUpdate/n,
		percentile(fresh, 50), percentile(fresh, 99), len(fresh))
}

// stats is what window.hookpipeStats holds.
type stats struct {
	Updates, Frames, SumMs, DecodeMs, ListMs, RenderMs, Renders float64
	// Apply holds every update's time, Fresh every accept-to-screen time.
	Apply, Fresh []float64
}

func pageStats(b testing.TB, ctx context.Context) stats {
	return eval[stats](b, ctx, `(() => { const s = window.hookpipeStats || {};
		return {Updates: s.updates || 0, Frames: s.frames || 0, SumMs: s.sumMs || 0, DecodeMs: s.decodeMs || 0,
			ListMs: s.listMs || 0, RenderMs: s.renderMs || 0, Renders: s.renders || 0, Apply: s.applyMsList || [], Fresh: s.freshMs || []}; })()`)
}

// percentile returns the p-th percentile of v (100: the largest).
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(int(float64(len(s))*p/100), len(s)-1)]
}

// load sends perSecond tasks per second through the receiver for d, each
// with a webhook id of its own, from a few senders paced evenly.
func (s *system) load(perSecond int, d time.Duration) {
	s.t.Helper()
	end := time.Now().Add(d)
	s.pace(perSecond, int(d/time.Second+1)*perSecond, func() bool { return time.Now().Before(end) })
}

// loadN sends n tasks, at most perSecond a second: however slow the
// machine, all of them.
func (s *system) loadN(perSecond, n int) {
	s.t.Helper()
	s.pace(perSecond, n, func() bool { return true })
}

// pace sends up to n tasks from 16 senders, at most perSecond a second,
// while more holds.
func (s *system) pace(perSecond, n int, more func() bool) {
	s.t.Helper()
	const senders = 16
	per := time.Second * senders / time.Duration(perSecond)
	first := s.reserve(n)
	var wg sync.WaitGroup
	var failed, sent atomic.Int64
	for k := range senders {
		wg.Go(func() {
			next := time.Now().Add(per * time.Duration(k) / senders)
			for i := k; i < n && more(); i += senders {
				if w := time.Until(next); w > 0 {
					time.Sleep(w) // pacing, not waiting for an outcome
				}
				next = next.Add(per)
				n := first + i
				tk := task.Task{BatchID: batchA, ID: int64(n), Owner: "Owner " + strconv.Itoa(n), Priority: task.Priorities[n%4]}
				req, _ := http.NewRequest(http.MethodPost, s.recv.URL, bytes.NewReader(tk.Encode()))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(task.HeaderID, "load-"+strconv.Itoa(n))
				sent.Add(1)
				res, err := httpClient.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		})
	}
	start := time.Now()
	wg.Wait()
	s.t.Logf("load: %d requests in %v, %d not answered 200", sent.Load(), time.Since(start).Round(time.Millisecond), failed.Load())
}
