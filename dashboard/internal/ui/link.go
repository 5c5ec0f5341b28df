package ui

import (
	"sync"
	"time"

	"github.com/hookpipe/hookpipe/dashboard/internal/board"
	"github.com/hookpipe/hookpipe/plumbing/backoff"
	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// link is the WebSocket to the relay. Frames are queued as they arrive and
// applied together once per animation frame, so that a burst of frames costs
// one update of the page, not one each. When the socket closes it reconnects
// after a backoff delay and resumes from the last applied sequence.
type link struct {
	d       *Dashboard
	backoff backoff.Backoff
	opened  int // sockets opened so far: every one after the first is a reconnect, counted in window.hookpipeStats.reconnects

	mu      sync.Mutex
	pending [][]byte
	// pendingAt is when the newest pending frame arrived.
	pendingAt time.Time
	scheduled bool
	closed    bool

	// gen tells the current socket's callbacks from those of sockets already
	// replaced, which may still fire.
	gen   int
	ws    app.Value
	funcs []app.Func
	flush app.Func
}

func newLink(ctx app.Context, d *Dashboard) *link {
	l := &link{d: d, backoff: board.ReconnectBackoff()}
	l.flush = app.FuncOf(func(app.Value, []app.Value) any {
		l.flushPending(ctx)
		return nil
	})
	return l
}

// connect opens a socket to the current relay that resumes after the
// last applied sequence, with a fresh connection token from the dashboard
// server when the relays need one. It runs on the UI goroutine.
func (l *link) connect(ctx app.Context) {
	if l.closed {
		return
	}
	// Frames still queued come before the resume point.
	l.applyPending(ctx)
	l.release()
	gen := l.nextGen()
	if l.d.conn != StateReconnecting {
		l.d.conn = StateConnecting
	}
	stale := l.d.token.Expires != 0 && time.Until(time.Unix(l.d.token.Expires, 0)) < time.Minute
	if l.d.tokenChecked && !stale {
		l.open(ctx, gen)
		return
	}
	ctx.Async(func() {
		var tok RelayToken
		err := getJSON(tokenURL(), &tok, "")
		ctx.Dispatch(func(ctx app.Context) {
			if gen != l.currentGen() || l.closed {
				return
			}
			if err != nil {
				app.Logf("dashboard: no connection token: %v", err)
				l.retry(ctx)
				return
			}
			l.d.token, l.d.tokenChecked = tok, true
			l.open(ctx, gen)
		})
	})
}

// tokenURL is where the page asks its own server for a connection token.
func tokenURL() string {
	u := *app.Window().URL()
	u.Path, u.RawQuery, u.Fragment = RelayTokenPath, "", ""
	return u.String()
}

// RelayTokenPath is the dashboard server's path of connection tokens.
const RelayTokenPath = "/relay-token"

// open opens the socket of generation gen.
func (l *link) open(ctx app.Context, gen int) {
	u := board.SocketURL(l.d.relay(), l.d.state.Seq, l.d.token.Token)
	ws := app.Window().Get("WebSocket").New(u)
	l.ws = ws
	on := func(event string, fn func(app.Value)) {
		f := app.FuncOf(func(_ app.Value, args []app.Value) any {
			if len(args) > 0 {
				fn(args[0])
			}
			return nil
		})
		l.funcs = append(l.funcs, f)
		ws.Set(event, f)
	}
	on("onopen", func(app.Value) {
		ctx.Dispatch(func(ctx app.Context) {
			if gen != l.currentGen() {
				return
			}
			l.backoff.Reset()
			l.d.conn = StateLive
			if l.opened > 0 {
				addStat("reconnects", 1)
			}
			l.opened++
		})
	})
	on("onmessage", func(ev app.Value) {
		data := ev.Get("data").String()
		l.mu.Lock()
		if gen != l.gen {
			l.mu.Unlock()
			return
		}
		l.pending = append(l.pending, []byte(data))
		l.pendingAt = time.Now()
		schedule := !l.scheduled
		l.scheduled = true
		l.mu.Unlock()
		if schedule {
			l.schedule()
		}
	})
	on("onclose", func(app.Value) {
		ctx.Dispatch(func(ctx app.Context) {
			if gen != l.currentGen() || l.closed {
				return
			}
			l.retry(ctx)
		})
	})
}

// retry waits for the next backoff delay, then connects again, to the
// next relay when there are several: the one that went away may be gone
// for good, and any relay resumes from the same sequence.
func (l *link) retry(ctx app.Context) {
	gen := l.nextGen() // late events of the closed socket are ignored
	l.d.nextRelay()
	delay := l.backoff.Next()
	l.d.conn = StateReconnecting
	l.d.retryAt = time.Now().Add(delay)
	ctx.Async(func() {
		// Count the seconds down on the page while waiting.
		for left := delay; left > 0; left -= time.Second {
			time.Sleep(min(left, time.Second))
			ctx.Dispatch(nil)
		}
		ctx.Dispatch(func(ctx app.Context) {
			if gen == l.currentGen() {
				l.connect(ctx)
			}
		})
	})
}

// now skips the wait of a pending retry, as when the browser comes online.
func (l *link) now(ctx app.Context) {
	if l.d.conn == StateReconnecting {
		l.backoff.Reset()
		l.connect(ctx)
	}
}

// schedule asks for a flush at the next animation frame, or soon when the
// page is hidden and animation frames are paused.
func (l *link) schedule() {
	w := app.Window()
	if w.Get("document").Get("visibilityState").String() == "hidden" {
		w.Call("setTimeout", l.flush, 250)
		return
	}
	w.Call("requestAnimationFrame", l.flush)
}

// flushPending hands the queued frames to the UI goroutine. It runs in the
// browser's animation frame callback.
func (l *link) flushPending(ctx app.Context) {
	start := now()
	ctx.Dispatch(func(ctx app.Context) {
		t := now()
		n, direct := l.applyPending(ctx)
		if n == 0 {
			return
		}
		decode := now() - t
		if direct { // the page reflects the frames already
			recordApply(start, decode, n)
			return
		}
		// Defer runs once go-app has drawn the frames.
		ctx.Defer(func(app.Context) {
			recordApply(start, decode, n)
		})
	})
}

// applyPending applies every queued frame and returns how many there were,
// and whether the page was patched rather than rendered.
func (l *link) applyPending(ctx app.Context) (n int, direct bool) {
	l.mu.Lock()
	frames, at := l.pending, l.pendingAt
	l.pending = nil
	l.scheduled = false
	l.mu.Unlock()
	if len(frames) == 0 {
		return 0, false
	}
	_, direct = l.d.apply(ctx, frames, at)
	return len(frames), direct
}

func (l *link) nextGen() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gen++
	return l.gen
}

func (l *link) currentGen() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen
}

// release closes the current socket and frees its callbacks.
func (l *link) release() {
	if l.ws != nil {
		for _, ev := range []string{"onopen", "onmessage", "onclose"} {
			l.ws.Set(ev, app.Null())
		}
		l.ws.Call("close")
		l.ws = nil
	}
	for _, f := range l.funcs {
		f.Release()
	}
	l.funcs = nil
}

func (l *link) close() {
	l.mu.Lock()
	l.closed = true
	l.gen++
	l.mu.Unlock()
	l.release()
}

// recordApply publishes how long applying and drawing the frames of one
// animation frame took, for benchmarks and curious people:
// window.hookpipeStats.
func recordApply(start, decodeMs float64, frames int) {
	w := app.Window()
	ms := now() - start
	st := w.Get("hookpipeStats")
	if !st.Truthy() {
		// firstMs is when the first frame was drawn, in ms since the
		// navigation started: the time to the first real chart.
		st = app.ValueOf(map[string]any{"updates": 0, "frames": 0, "lastMs": 0.0, "maxMs": 0.0, "sumMs": 0.0, "decodeMs": 0.0,
			"firstMs": w.Get("performance").Call("now").Float()})
		w.Set("hookpipeStats", st)
	}
	if list := st.Get("applyMsList"); !list.Truthy() {
		st.Set("applyMsList", w.Get("Array").New())
	}
	if list := st.Get("applyMsList"); list.Length() < maxFreshSamples {
		list.Call("push", ms)
	}
	st.Set("updates", st.Get("updates").Int()+1)
	st.Set("frames", st.Get("frames").Int()+frames)
	st.Set("lastMs", ms)
	st.Set("sumMs", st.Get("sumMs").Float()+ms)
	st.Set("decodeMs", st.Get("decodeMs").Float()+decodeMs)
	if ms > st.Get("maxMs").Float() {
		st.Set("maxMs", ms)
	}
}

// navigatorOnline reports whether the browser believes it has a network.
func navigatorOnline() bool {
	on := app.Window().Get("navigator").Get("onLine")
	return !on.Truthy() && on.IsUndefined() || on.Bool()
}

// watchOnline follows the browser's online and offline events.
func watchOnline(ctx app.Context, d *Dashboard) {
	set := func(online bool) app.Func {
		return app.FuncOf(func(app.Value, []app.Value) any {
			ctx.Dispatch(func(ctx app.Context) {
				d.online = online
				if online && d.link != nil {
					d.link.now(ctx)
				}
			})
			return nil
		})
	}
	app.Window().Call("addEventListener", "online", set(true))
	app.Window().Call("addEventListener", "offline", set(false))
}

// now returns the page's clock in milliseconds.
func now() float64 { return app.Window().Get("performance").Call("now").Float() }

// maxFreshSamples bounds window.hookpipeStats.freshMs, which a page kept
// open would otherwise grow for ever.
const maxFreshSamples = 20000

// recordFresh adds one accept-to-screen time to window.hookpipeStats.freshMs,
// for the benchmark's percentiles.
func recordFresh(ms float64) {
	st := app.Window().Get("hookpipeStats")
	if !st.Truthy() {
		return
	}
	arr := st.Get("freshMs")
	if !arr.Truthy() {
		arr = app.Window().Get("Array").New()
		st.Set("freshMs", arr)
	}
	if arr.Length() < maxFreshSamples {
		arr.Call("push", ms)
	}
}

// addStat adds v to the named figure of window.hookpipeStats.
func addStat(name string, v float64) {
	st := app.Window().Get("hookpipeStats")
	if st.Truthy() {
		old := st.Get(name)
		if old.IsUndefined() {
			st.Set(name, v)
			return
		}
		st.Set(name, old.Float()+v)
	}
}
