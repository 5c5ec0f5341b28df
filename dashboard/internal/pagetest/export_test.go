package pagetest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
	"github.com/hookpipe/hookpipe/devenv/testenv"
)

// TestExportReplaysAsDuplicates downloads the events in view from a page on
// the real relay, and replays the file with `producer replay --same-ids`:
// every line is answered as a duplicate, and neither the stream nor a count
// moves. Events sent without a webhook id are left out, and the page says
// how many.
func TestExportReplaysAsDuplicates(t *testing.T) {
	sys := newSystem(t)
	sys.accept(20)
	sys.send(3, false)
	sys.accept(4)
	_, url := startDashboardAt(t, sys.dashPort, sys.relayURL())
	ctx := newBrowser(t)
	dir := t.TempDir()
	run(t, ctx, 10*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir})
		return err
	}))
	run(t, ctx, 60*time.Second, chromedp.Navigate(url))
	seq, counts := sys.truth()
	waitJS(t, ctx, 60*time.Second, shows(seq, counts), "page does not show what Redis holds")

	run(t, ctx, 10*time.Second, chromedp.Click(`#export-button`))
	waitJS(t, ctx, 10*time.Second, `document.querySelector('#export-text').textContent === 'Exported 24 events · 3 without a webhook id left out'`,
		"page does not say what it exported")
	var file string
	testenv.Eventually(t, 30*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "hookpipe-events-*.jsonl"))
		if len(m) != 1 {
			return false
		}
		file = m[0]
		return true
	}, "no export downloaded to %s", dir)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("\n")); n != 24 {
		t.Fatalf("export holds %d lines, want 24:\n%s", n, data)
	}
	saveArtifact(t, "export.jsonl", data)

	out, err := exec.Command(testenv.Binary(t, "github.com/hookpipe/hookpipe/producer"), "replay",
		"--same-ids", "--speed", "max", "--receiver-url", sys.recv.URL, "--log-level", "warn", file).CombinedOutput()
	if err != nil {
		t.Fatalf("replay of the export: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "0 accepted, 24 duplicates, 0 failed") {
		t.Errorf("replay of the export was not 24 duplicates:\n%s", out)
	}
	// The receiver answered every line; the fold has nothing new to apply.
	seq2, counts2 := sys.truth()
	if seq2 != seq || counts2 != counts {
		t.Fatalf("replaying the export moved the stream or the counts: seq %d → %d, counts %v → %v\nreplay said:\n%s",
			seq, seq2, counts, counts2, out)
	}
}
