package ui

import (
	"strconv"
	"time"

	"github.com/hookpipe/hookpipe/dashboard/internal/board"
	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// exportView is the Export button and what the last export wrote.
func (d *Dashboard) exportView() app.UI {
	return app.Div().ID("export").Class("export").Body(
		app.Button().ID("export-button").Class("pause").Text("Export").
			Title("Download the events in view as JSON Lines for producer replay --same-ids").
			OnClick(d.export),
		app.Span().ID("export-text").Class("filter-text").Aria("live", "polite").Text(d.exportText),
	)
}

// export downloads the events in view (filtered, and as shown while
// paused) as a recording.
func (d *Dashboard) export(ctx app.Context, _ app.Event) {
	upTo := d.state.Seq
	if d.paused != nil {
		upTo = d.paused.seq
	}
	x := d.state.Export(d.filter, upTo)
	d.exportText = exportText(x)
	if x.Lines == 0 {
		return
	}
	name := "hookpipe-events-" + time.Now().UTC().Format("20060102-150405") + ".jsonl"
	download(name, "application/jsonl", x.Data)
}

// exportText says what an export wrote and what it left out.
func exportText(x board.Export) string {
	s := "Exported " + strconv.Itoa(x.Lines) + " events"
	if x.Lines == 1 {
		s = "Exported 1 event"
	}
	if x.Unnamed > 0 {
		s += " · " + strconv.Itoa(x.Unnamed) + " without a webhook id left out"
	}
	return s
}

// download makes the browser save data as a file called name.
func download(name, contentType string, data []byte) {
	arr := app.Window().Get("Uint8Array").New(len(data))
	app.CopyBytesToJS(arr, data)
	blob := app.Window().Get("Blob").New([]any{arr}, map[string]any{"type": contentType})
	url := app.Window().Get("URL").Call("createObjectURL", blob)
	a := app.Window().Get("document").Call("createElement", "a")
	a.Set("href", url)
	a.Set("download", name)
	a.Call("click")
	app.Window().Get("URL").Call("revokeObjectURL", url)
}
