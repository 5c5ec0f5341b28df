// Package ui is the dashboard page: go-app components that draw the state
// kept by package board, and the WebSocket link to the relay that feeds it.
// The same code is rendered by the server (the page's first paint and the
// offline shell) and run in the browser as WebAssembly; everything that needs
// a browser is guarded by app.IsClient.
package ui

import (
	"net/url"
	"strconv"
	"time"

	"github.com/hookpipe/hookpipe/dashboard/internal/board"
	"github.com/hookpipe/hookpipe/dashboard/internal/chart"
	"github.com/hookpipe/hookpipe/task"
	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// RelayURLEnv names the page environment variable with the relay's base URL,
// set by the dashboard server from its own HOOKPIPE_RELAY_URL.
const RelayURLEnv = "HOOKPIPE_RELAY_URL"

// Connection states, as shown in the data-state of #conn.
const (
	StateConnecting   = "connecting"
	StateLive         = "live"
	StateReconnecting = "reconnecting"
	StateOffline      = "offline"
)

// Route registers the dashboard as the page at "/".
func Route() {
	app.Route("/", func() app.Composer { return New() })
}

// Dashboard is the page: chart, totals and rate, batch view, message list
// and connection state. It holds all the page's state; child views are
// functions of it.
type Dashboard struct {
	app.Compo

	state    *board.State
	layout   chart.Layout
	relays   []*url.URL
	relayAt  int // the relay connected to, or tried next
	relayErr string
	// token is the connection token the relays take; tokenChecked once
	// the server was asked (it answers an empty one when none is needed).
	token        RelayToken
	tokenChecked bool

	// conn is the link's state; retryAt when the next attempt is due.
	conn    string
	retryAt time.Time
	online  bool

	updateReady bool
	batches     batchView
	// paused is what the page shows while its view is paused; frames are
	// still applied to state underneath. Nil when the view is live.
	paused *pausedView
	// filter narrows the message list.
	filter board.Filter
	// rates is the rate chart, frozen while paused.
	rates rateState
	// drawn is what the last render drew, elems the elements patch
	// changes, drawnConn the connection text drawn.
	drawn     live
	elems     liveElems
	drawnConn string
	// exportText says what the last export wrote.
	exportText string
	// fresh is the accept-to-screen time of the newest event drawn, as of
	// update freshN of the state.
	fresh  time.Duration
	freshN uint64

	link *link
	list messageList
	stop chan struct{}
}

// New returns a dashboard with an empty state.
func New() *Dashboard {
	return &Dashboard{
		state:  board.New(board.DefaultLimit),
		layout: chart.DefaultLayout(),
		conn:   StateConnecting,
		online: true,
	}
}

// OnMount starts the link to the relay and the once-a-second refresh of
// the rate, the reconnect countdown and the selected batch. On the server,
// which renders the page once, it does nothing.
func (d *Dashboard) OnMount(ctx app.Context) {
	if !app.IsClient {
		return
	}
	bases, err := board.RelayBases(app.Getenv(RelayURLEnv), app.Window().URL())
	if err != nil {
		d.relayErr = err.Error()
		d.conn = StateOffline
		return
	}
	d.relays = bases
	d.online = navigatorOnline()
	d.stop = make(chan struct{})
	d.link = newLink(ctx, d)
	d.link.connect(ctx)
	d.batches.load(ctx, d)
	watchOnline(ctx, d)
	stop := d.stop
	ctx.Async(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				ctx.Dispatch(func(ctx app.Context) {
					if n%2 == 0 {
						d.batches.refresh(ctx, d)
					}
					if n%600 == 0 {
						app.TryUpdate()
					}
					d.tick(ctx)
				})
			}
		}
	})
	app.TryUpdate()
}

// OnDismount closes the link and stops the refresh.
func (d *Dashboard) OnDismount() {
	if d.stop != nil {
		close(d.stop)
		d.stop = nil
	}
	if d.link != nil {
		d.link.close()
		d.link = nil
	}
}

// OnAppUpdate shows the update prompt once a new version is installed.
//
// go-app reports every worker that becomes active while the page is
// controlled, and the first worker of a page opened before there was one
// claims it while activating: that is the page's own version, not an
// update. An active worker has deleted every cache but its own (see the
// server's worker.js), so the prompt shows only when that cache is not
// this page's version.
func (d *Dashboard) OnAppUpdate(ctx app.Context) {
	if !ctx.AppUpdateAvailable() {
		return
	}
	own := "app-" + app.Getenv("GOAPP_VERSION")
	app.Window().Get("caches").Call("keys").Then(func(keys app.Value) {
		other := false
		for i := 0; i < keys.Length(); i++ {
			other = other || keys.Index(i).String() != own
		}
		ctx.Dispatch(func(ctx app.Context) { d.updateReady = other })
	})
}

// relay returns the base URL of the relay connected to.
func (d *Dashboard) relay() *url.URL { return d.relays[d.relayAt] }

// nextRelay moves to the next relay of the list, for the next connection.
func (d *Dashboard) nextRelay() { d.relayAt = (d.relayAt + 1) % len(d.relays) }

// connState returns what #conn shows: offline whenever the browser says
// so, else the link's state.
func (d *Dashboard) connState() string {
	if !d.online || d.relayErr != "" {
		return StateOffline
	}
	return d.conn
}

func (d *Dashboard) connText(now time.Time) string {
	switch d.connState() {
	case StateLive:
		return "Live"
	case StateReconnecting:
		s := int(d.retryAt.Sub(now).Round(time.Second) / time.Second)
		if s < 1 {
			return "Reconnecting…"
		}
		return "Reconnecting in " + strconv.Itoa(s) + "s"
	case StateOffline:
		if d.relayErr != "" {
			return "Offline: " + d.relayErr
		}
		return "Offline"
	}
	return "Connecting…"
}

// setFilter narrows the list to f and redraws it.
func (d *Dashboard) setFilter(ctx app.Context, f board.Filter) {
	d.filter = f
	if d.paused == nil {
		ctx.Defer(func(app.Context) { d.list.sync(d.state, d.filter) })
	}
}

// filterPriority filters the list by a bar's priority; clicking the bar
// of the priority filtered by lifts that filter.
func (d *Dashboard) filterPriority(ctx app.Context, p string) {
	f := d.filter
	if f.Priority == p {
		p = ""
	}
	f.Priority = p
	d.setFilter(ctx, f)
}

// filterBar draws the list's filters and what they keep, with a button that
// clears them.
func (d *Dashboard) filterBar() app.UI {
	opts := []app.UI{app.Option().Value("").Text("All priorities").Selected(d.filter.Priority == "")}
	for _, n := range priorityNames {
		opts = append(opts, app.Option().Value(n).Text(n).Selected(d.filter.Priority == n))
	}
	text := d.filter.String()
	if text != "" {
		text = "Showing " + text
	}
	return app.Div().ID("filters").Class("filters").DataSet("active", strconv.FormatBool(d.filter.Active())).Body(
		app.Select().ID("filter-priority").Aria("label", "Priority").Body(opts...).
			OnChange(func(ctx app.Context, e app.Event) {
				f := d.filter
				f.Priority = ctx.JSSrc().Get("value").String()
				d.setFilter(ctx, f)
			}),
		app.Input().ID("filter-batch").Type("search").Placeholder("batch id").Aria("label", "Batch").Value(d.filter.Batch).
			OnInput(func(ctx app.Context, e app.Event) {
				f := d.filter
				f.Batch = ctx.JSSrc().Get("value").String()
				d.setFilter(ctx, f)
			}),
		app.Input().ID("filter-owner").Type("search").Placeholder("owner").Aria("label", "Owner").Value(d.filter.Owner).
			OnInput(func(ctx app.Context, e app.Event) {
				f := d.filter
				f.Owner = ctx.JSSrc().Get("value").String()
				d.setFilter(ctx, f)
			}),
		app.Span().ID("filter-text").Class("filter-text").Text(text),
		app.Button().ID("filter-clear").Class("pause").Text("Clear").Disabled(!d.filter.Active()).
			OnClick(func(ctx app.Context, e app.Event) {
				// go-app leaves a field's typed value alone when its
				// value attribute goes empty.
				for _, id := range []string{"filter-priority", "filter-batch", "filter-owner"} {
					if el := app.Window().GetElementByID(id); el.Truthy() {
						el.Set("value", "")
					}
				}
				d.setFilter(ctx, board.Filter{})
			}),
	)
}

// pausedView is the part of the state a paused page keeps showing.
type pausedView struct {
	counts task.Counts
	seq    uint64
	rate   float64
}

// togglePause freezes the view at the current state, or brings it back to
// the state as it is now, list included.
func (d *Dashboard) togglePause(ctx app.Context, _ app.Event) {
	if d.paused == nil {
		d.paused = &pausedView{counts: d.state.Counts, seq: d.state.Seq, rate: d.state.Rate(time.Now())}
		return
	}
	d.paused = nil
	ctx.Defer(func(app.Context) { d.list.sync(d.state, d.filter) })
}

// pauseText says that the view is paused and how many events came since.
func (d *Dashboard) pauseText() string {
	if d.paused == nil {
		return ""
	}
	return "Paused · " + strconv.FormatInt(d.state.Total()-d.paused.counts.Total(), 10) + " new events"
}

// Render draws the page from the state, or from what was shown when the
// view was paused.
func (d *Dashboard) Render() app.UI {
	now := time.Now()
	s := d.state
	v := d.live(now)
	// What is drawn now, for patch; go-app may replace elements.
	d.drawn, d.elems.found = v, false
	d.drawnConn = d.connText(now)
	notice := v.notice
	if d.paused == nil {
		d.rates.sync(&s.Rates, now)
	}
	d.rates.drawn()
	pauseLabel := "Pause"
	if d.paused != nil {
		pauseLabel = "Resume"
	}
	return app.Div().ID("dashboard").Class("dashboard").
		DataSet("seq", v.seqText).
		DataSet("total", v.total).
		DataSet("paused", strconv.FormatBool(d.paused != nil)).
		Body(
			app.Header().Class("top").Body(
				app.H1().Text("hookpipe"),
				app.Div().Class("top-right").Body(
					app.Span().ID("paused").Class("paused").Aria("live", "polite").Text(v.pauseText),
					app.Button().ID("pause").Class("pause").Aria("pressed", strconv.FormatBool(d.paused != nil)).
						Text(pauseLabel).OnClick(d.togglePause),
					app.Span().ID("fresh").Class("fresh").Hidden(!v.freshShown).
						DataSet("ms", v.freshMs).
						Title("Time from the stream accepting the newest event to this page drawing it").
						Text(v.freshText),
					app.Span().ID("conn").Class("conn conn-"+d.connState()).
						DataSet("state", d.connState()).
						Aria("live", "polite").
						Text(d.drawnConn),
				),
			),
			// Always present, so that showing it never shifts the elements
			// after it, which go-app matches by position.
			app.Div().Class("notices").Body(
				app.Div().ID("degraded").Class("notice degraded").Aria("live", "polite").Hidden(notice == "").Text(notice),
				app.Div().ID("update").Class("notice update").Hidden(!d.updateReady).Body(
					app.Span().Text("A new version of the dashboard is ready. "),
					app.Button().Text("Reload").OnClick(func(ctx app.Context, e app.Event) { ctx.Reload() }),
				),
			),
			app.Section().Class("stats").Aria("label", "Totals").Body(
				stat("Total", "total", v.total),
				stat("Events/s", "rate", v.rate),
				stat("Sequence", "seq", v.seqText),
			),
			app.Section().Class("panel chart-panel").Body(
				chartView(v.chart, d.filterPriority),
			),
			d.batches.render(d),
			app.Section().Class("panel rate-panel").Body(
				app.H2().Text(chart.RateTitle),
				d.rates.view(),
			),
			app.Section().Class("panel messages-panel").Body(
				app.H2().Text("Messages"),
				d.filterBar(),
				d.exportView(),
				// Rows are added by messageList, not by go-app.
				app.Ol().ID("messages").Class("messages").Aria("live", "off"),
			),
		)
}

func stat(label, id, value string) app.UI {
	return app.Div().Class("stat").Body(
		app.Span().Class("stat-label").Text(label),
		app.Span().ID("stat-"+id).Class("stat-value").Text(value),
	)
}

// shortID keeps the first block of a UUID, enough to tell batches apart.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// apply applies frames received since the last animation frame, in one
// update of the page; the message list follows once go-app has drawn the
// rest.
//
// Frames change the totals, the bars and the list: when the page's
// structure stays (the chart's scale, the notices), those elements are
// patched at once and go-app does not render (direct is true); otherwise
// go-app renders the page and the list follows.
func (d *Dashboard) apply(ctx app.Context, frames [][]byte, at time.Time) (rejected int, direct bool) {
	for _, f := range frames {
		if err := d.state.ApplyJSON(f, at); err != nil {
			app.Logf("dashboard: frame dropped: %v", err)
			rejected++
		}
	}
	if d.state.Len() > 0 {
		d.batches.notice(ctx, d.state.Event(0).BatchID)
	}
	if v := d.live(time.Now()); v.patchable(&d.drawn) && d.patch(&v) {
		ctx.PreventUpdate()
		d.drawList()
		return rejected, true
	}
	applied := now()
	ctx.Defer(func(app.Context) {
		addStat("renderMs", now()-applied)
		addStat("renders", 1)
		d.drawList()
	})
	return rejected, false
}

// drawList brings the message list up to the state, unless paused, and
// notes how fresh the newest event drawn is.
func (d *Dashboard) drawList() {
	t := now()
	if d.paused == nil {
		d.list.sync(d.state, d.filter)
	}
	addStat("listMs", now()-t)
	f, n := d.state.Fresh()
	if n == d.freshN {
		return
	}
	d.freshN = n
	d.fresh = f.AcceptToScreen(time.Now())
	recordFresh(float64(d.fresh) / float64(time.Millisecond))
	if e := &d.elems; e.found || e.find() {
		e.fresh.Set("hidden", false)
		e.fresh.Call("setAttribute", "data-ms", strconv.FormatInt(d.fresh.Milliseconds(), 10))
		setText(e.fresh, "Fresh · "+d.fresh.Round(time.Millisecond).String())
	}
}

// tick runs every second: the relative texts (events per second, the
// reconnect countdown, notices that expire) and the rate chart move on,
// patched when the page's structure stays, rendered otherwise.
func (d *Dashboard) tick(ctx app.Context) {
	now := time.Now()
	v := d.live(now)
	ratesMoved := d.paused == nil && d.rates.sync(&d.state.Rates, now)
	if d.connText(now) != d.drawnConn || !v.patchable(&d.drawn) || (ratesMoved && !d.rates.patchable()) {
		return // go-app renders
	}
	if !d.patch(&v) || (ratesMoved && !d.rates.patch()) {
		return
	}
	ctx.PreventUpdate()
}

// priorityNames are the four names, for views that list every priority.
var priorityNames = func() (n [task.NumPriorities]string) {
	for i, p := range task.Priorities {
		n[i] = p.String()
	}
	return n
}()

// RelayToken is what the dashboard server answers at its relay-token path:
// a connection token the relays take until Expires (Unix seconds), empty
// when they need none.
type RelayToken struct {
	Token   string `json:"token"`
	Expires int64  `json:"expires,omitempty"`
}
