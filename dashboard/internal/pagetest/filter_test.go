package pagetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const batchB = "0f8fad5b-d9cb-469f-a165-70867728950e"

// rowsAre is a condition on the list: it has n rows, and every row passes
// the JavaScript predicate on li.
func rowsAre(n int, pred string) string {
	return fmt.Sprintf(`(() => { const rows = [...document.querySelectorAll('#messages li')];
		return rows.length === %d && rows.every(li => %s); })()`, n, pred)
}

// TestFilters filters the live list by priority (from the select and by
// clicking a bar), batch and owner, shows the filter, keeps it on new
// events, and clears it.
func TestFilters(t *testing.T) {
	relay := newFakeRelay(t)
	relay.publish(tasks(batchA, 0, 20)...) // 5 of each priority, owners 0-19
	relay.publish(tasks(batchB, 20, 8)...) // 2 of each priority
	ctx := openLive(t, relay)
	waitJS(t, ctx, 5*time.Second, rowsAre(28, "true"), "not every event listed")

	// A bar filters by its priority; the filter says so.
	run(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`rect.bar[data-priority="Critical"]`)))
	waitJS(t, ctx, 5*time.Second, rowsAre(7, `li.dataset.priority === 'Critical'`), "clicking the Critical bar did not filter the list")
	waitJS(t, ctx, 2*time.Second, `document.querySelector('#filter-text').textContent === 'Showing Critical' && document.querySelector('#filters').dataset.active === 'true'`,
		"the filter is not shown")
	// New events pass the filter or not as they come.
	relay.publish(tasks(batchA, 28, 8)...)
	waitJS(t, ctx, 10*time.Second, rowsAre(9, `li.dataset.priority === 'Critical'`), "new events did not follow the filter")
	// The same bar again lifts the filter.
	run(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`rect.bar[data-priority="Critical"]`)))
	waitJS(t, ctx, 5*time.Second, rowsAre(36, "true"), "clicking the bar again did not lift the filter")

	// The select, then owner text, then a batch.
	if !eval[bool](t, ctx, `(() => { const s = document.querySelector('#filter-priority'); s.value = 'Moderate'; s.dispatchEvent(new Event('change')); return true; })()`) {
		t.Fatal("could not pick a priority")
	}
	waitJS(t, ctx, 5*time.Second, rowsAre(9, `li.dataset.priority === 'Moderate'`), "the priority select did not filter")
	run(t, ctx, 10*time.Second, chromedp.SendKeys(chromedp.CSS("#filter-owner"), "owner 2"))
	// Moderate owners among 0-35 are 1, 5, 9, ...: with "owner 2" in their name, 21, 25, 29.
	waitJS(t, ctx, 5*time.Second, rowsAre(3, `li.dataset.priority === 'Moderate' && li.querySelector('.owner').textContent.startsWith('Owner 2')`),
		"the owner filter did not narrow the list")
	waitJS(t, ctx, 2*time.Second, `document.querySelector('#filter-text').textContent === 'Showing Moderate · owner owner 2'`, "the combined filter is not shown")
	run(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS("#filter-clear")))
	waitJS(t, ctx, 5*time.Second, rowsAre(36, "true")+` && document.querySelector('#filter-text').textContent === '' && document.querySelector('#filter-owner').value === ''`,
		"Clear did not lift every filter")
	run(t, ctx, 10*time.Second, chromedp.SendKeys(chromedp.CSS("#filter-batch"), batchB[:8]))
	waitJS(t, ctx, 5*time.Second, rowsAre(8, `li.querySelector('.meta').textContent.includes('batch `+batchB[:8]+`')`), "the batch filter did not narrow the list")

	// Filters change the list only: the chart still shows everything.
	seq, counts := relay.state()
	if !eval[bool](t, ctx, shows(seq, counts)) {
		t.Errorf("a filter changed the chart or totals: %s", pageState(ctx))
	}
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		saveArtifact(t, "dashboard-filtered.png", png)
	}
}
