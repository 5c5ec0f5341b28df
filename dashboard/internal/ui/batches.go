package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hookpipe/hookpipe/dashboard/internal/board"
	"github.com/hookpipe/hookpipe/task"
	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// batchListLimit is how many recent batches the picker offers.
const batchListLimit = 20

// batchView lets the user pick a recent batch and shows its counts and
// progress, as Redis holds them, refreshed every other second.
type batchView struct {
	d        *Dashboard
	list     []task.BatchSummary
	selected string
	current  *task.BatchSummary
	err      string
	loading  bool
	listAge  int
	listedAt time.Time // when the list was last asked for
}

// notice is told the batch of the newest event: a batch the list does not
// have yet is fetched at once instead of at the next refresh, at most
// twice a second.
func (b *batchView) notice(ctx app.Context, batchID string) {
	for i := range b.list {
		if b.list[i].BatchID == batchID {
			return
		}
	}
	if time.Since(b.listedAt) >= 500*time.Millisecond {
		b.fetchList(ctx)
	}
}

// load fetches the list of recent batches.
func (b *batchView) load(ctx app.Context, d *Dashboard) {
	b.d = d
	b.fetchList(ctx)
}

func (b *batchView) fetchList(ctx app.Context) {
	if b.d == nil || b.loading {
		return
	}
	b.loading = true
	b.listedAt = time.Now()
	u := board.BatchesURL(b.d.relay(), batchListLimit)
	tok := b.d.token.Token
	ctx.Async(func() {
		var list []task.BatchSummary
		err := getJSON(u, &list, tok)
		ctx.Dispatch(func(ctx app.Context) {
			b.loading = false
			if err != nil {
				b.err = err.Error()
				return
			}
			b.err = ""
			b.list = list
			if b.selected == "" && len(list) > 0 {
				b.selected = list[0].BatchID
				b.current = &list[0]
			}
		})
	})
}

func (b *batchView) fetchSelected(ctx app.Context) {
	if b.d == nil || b.selected == "" {
		return
	}
	id := b.selected
	u := board.BatchURL(b.d.relay(), id)
	tok := b.d.token.Token
	ctx.Async(func() {
		var s task.BatchSummary
		err := getJSON(u, &s, tok)
		ctx.Dispatch(func(ctx app.Context) {
			if id != b.selected {
				return
			}
			if err != nil {
				b.err = err.Error()
				return
			}
			b.err = ""
			b.current = &s
		})
	})
}

// refresh runs every other second: the selected batch each time, the list
// every tenth time.
func (b *batchView) refresh(ctx app.Context, d *Dashboard) {
	if d.connState() != StateLive {
		return
	}
	b.listAge++
	if b.listAge%10 == 0 || len(b.list) == 0 {
		b.fetchList(ctx)
	}
	b.fetchSelected(ctx)
}

func (b *batchView) render(d *Dashboard) app.UI {
	options := make([]app.UI, 0, len(b.list)+1)
	if len(b.list) == 0 {
		options = append(options, app.Option().Value("").Text("No batches yet"))
	}
	for _, s := range b.list {
		options = append(options, app.Option().
			Value(s.BatchID).
			Selected(s.BatchID == b.selected).
			Text(shortID(s.BatchID)+" · "+strconv.FormatInt(s.Counts.Total(), 10)+" tasks · "+s.Updated.Local().Format("15:04:05")))
	}
	return app.Section().ID("batches").Class("panel batches-panel").Body(
		app.H2().Text("Batch"),
		app.Label().For("batch-select").Class("sr-only").Text("Batch"),
		app.Select().ID("batch-select").
			OnChange(func(ctx app.Context, e app.Event) {
				b.selected = ctx.JSSrc().Get("value").String()
				b.current = nil
				for i := range b.list {
					if b.list[i].BatchID == b.selected {
						b.current = &b.list[i]
					}
				}
				b.fetchSelected(ctx)
			}).
			Body(options...),
		app.If(b.current != nil, func() app.UI { return batchDetail(*b.current) }),
		app.If(b.err != "", func() app.UI {
			return app.P().Class("error").Text("Batches unavailable: " + b.err)
		}),
	)
}

func batchDetail(s task.BatchSummary) app.UI {
	p := board.BatchProgress(s)
	rows := make([]app.UI, 0, task.NumPriorities)
	for i, name := range priorityNames {
		rows = append(rows, app.Li().DataSet("priority", name).Body(
			app.Span().Class("prio prio-"+name).Text(name),
			app.Span().Class("batch-count").Text(strconv.FormatInt(s.Counts[i], 10)),
		))
	}
	progress := strconv.FormatInt(p.Done, 10) + " tasks"
	if p.Size > 0 {
		progress = fmt.Sprintf("%d of %d tasks (%.0f%%)", p.Done, p.Size, p.Percent)
	}
	return app.Div().ID("batch").Class("batch").DataSet("batch", s.BatchID).DataSet("done", p.Done).Body(
		app.P().Class("batch-id").Text(s.BatchID),
		app.Ul().Class("batch-counts").Body(rows...),
		app.If(p.Size > 0, func() app.UI {
			return app.Progress().Max(p.Size).Value(strconv.FormatInt(p.Done, 10)).Aria("label", "batch progress")
		}),
		app.P().Class("batch-progress").Text(progress),
	)
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// getJSON fetches u, with bearer as its credential when not empty, and
// decodes its JSON body into v.
func getJSON(u string, v any, bearer string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("get %s: %w", u, err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", u, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", u, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", u, err)
	}
	return nil
}
