package relay_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/relay/internal/fanout"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go/jetstream"
)

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestSnapshot(t *testing.T) {
	e := newEnv(t)
	e.publish(t, 150, 0)
	cfg := e.config()
	cfg.SnapshotEvents = 100
	r := startRelay(t, cfg)

	c := dial(t, wsURL(r, ""), nil)
	f := c.firstFrame(t)
	if f.Type != task.FrameSnapshot {
		t.Fatalf("first frame type %q, want snapshot", f.Type)
	}
	if f.Seq != 150 {
		t.Errorf("snapshot seq %d, want 150", f.Seq)
	}
	var got []uint64
	for _, ev := range f.Events {
		got = append(got, ev.Seq)
		if err := ev.Task.Validate(); err != nil {
			t.Errorf("event %d: %v", ev.Seq, err)
		}
		if ev.Time.IsZero() {
			t.Errorf("event %d has no time", ev.Seq)
		}
	}
	if want := seqRange(51, 150); !slices.Equal(got, want) {
		t.Errorf("snapshot events %v, want 51..150", got)
	}
	if want := e.redisCounts(t); f.Counts != want {
		t.Errorf("snapshot counts %v, want Redis %v", f.Counts, want)
	}
	if f.Counts.Total() != 150 {
		t.Errorf("snapshot total %d, want 150", f.Counts.Total())
	}
}

func TestUpdatesCoalesced(t *testing.T) {
	e := newEnv(t)
	r := startRelay(t, e.config())
	c := dial(t, wsURL(r, ""), nil)
	if f := c.firstFrame(t); f.Type != task.FrameSnapshot || f.Seq != 0 || len(f.Events) != 0 {
		t.Fatalf("first frame on an empty stream: %+v", f)
	}
	e.publish(t, 500, 0)
	c.waitCurrent(t, e, 500)
	c.v.check(t)
	if !slices.Equal(c.v.events, seqRange(1, 500)) {
		t.Errorf("client saw %d events, want 1..500 once each", len(c.v.events))
	}
	if c.v.frames >= 500 {
		t.Errorf("%d frames for 500 events: updates not coalesced", c.v.frames)
	}
}

func TestResumeAfterDrop(t *testing.T) {
	e := newEnv(t)
	r := startRelay(t, e.config())
	v := &view{}
	c := dial(t, wsURL(r, ""), v)
	e.publish(t, 40, 0)
	c.waitCurrent(t, e, 40)
	c.conn.Close()
	<-c.done

	e.publish(t, 60, 0) // missed while away
	seq, _ := v.state()
	c2 := dial(t, wsURL(r, strconv.FormatUint(seq, 10)), v)
	f := c2.firstFrame(t)
	if f.Type != task.FrameUpdate {
		t.Fatalf("resume got a %q frame, want update", f.Type)
	}
	e.publish(t, 50, 0) // live again
	c2.waitCurrent(t, e, 150)
	v.check(t)
	if !slices.Equal(v.events, seqRange(1, 150)) {
		t.Errorf("events across the reconnect %v, want 1..150 each once", v.events)
	}
	if v.snapshots != 1 {
		t.Errorf("%d snapshots, want only the first", v.snapshots)
	}
}

func TestResumeAfterStreamDroppedRange(t *testing.T) {
	e := newEnv(t)
	e.publish(t, 50, 0)
	// The stream's limits removed everything before 41.
	st, err := e.js.Stream(context.Background(), task.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(context.Background(), jetstream.WithPurgeKeep(10)); err != nil {
		t.Fatal(err)
	}
	r := startRelay(t, e.config())

	tests := []struct {
		since    string
		wantType task.FrameType
		wantFrom uint64 // first event
	}{
		{"5", task.FrameSnapshot, 41},  // missed range is gone
		{"39", task.FrameSnapshot, 41}, // 40 is gone
		{"40", task.FrameUpdate, 41},   // everything after 40 is there
		{"45", task.FrameUpdate, 46},
		{"", task.FrameSnapshot, 41},
	}
	for _, tt := range tests {
		t.Run("since="+tt.since, func(t *testing.T) {
			c := dial(t, wsURL(r, tt.since), nil)
			f := c.firstFrame(t)
			if f.Type != tt.wantType {
				t.Errorf("frame type %q, want %q", f.Type, tt.wantType)
			}
			if len(f.Events) == 0 || f.Events[0].Seq != tt.wantFrom || f.Seq != 50 {
				t.Errorf("frame seq %d with %d events, want events from %d to 50", f.Seq, len(f.Events), tt.wantFrom)
			}
		})
	}
}

func TestResumeBeyondRing(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.RingSize = 20
	cfg.SnapshotEvents = 5
	r := startRelay(t, cfg)
	e.publish(t, 50, 0)
	c := dial(t, wsURL(r, ""), nil)
	c.waitCurrent(t, e, 50)

	c2 := dial(t, wsURL(r, "10"), nil) // 11..30 no longer kept
	if f := c2.firstFrame(t); f.Type != task.FrameSnapshot || len(f.Events) != 5 || f.Events[0].Seq != 46 {
		t.Errorf("resume from beyond the ring: %q with %d events, want a snapshot of 46..50", f.Type, len(f.Events))
	}
	c3 := dial(t, wsURL(r, "30"), nil) // 31..50 kept
	if f := c3.firstFrame(t); f.Type != task.FrameUpdate || len(f.Events) != 20 {
		t.Errorf("resume within the ring: %q with %d events, want an update of 31..50", f.Type, len(f.Events))
	}
}

func TestSlowClientCutFastKept(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.QueueSize = 4
	cfg.Interval = 5 * time.Millisecond
	cfg.MaxInterval = 5 * time.Millisecond
	cfg.SendBuffer = 16 << 10
	r := startRelay(t, cfg)

	fast := dial(t, wsURL(r, ""), nil)
	fast.firstFrame(t)
	slow := dialStalled(t, r)

	// Big events fill the slow client's socket buffers and then its queue.
	published := make(chan struct{})
	go func() {
		defer close(published)
		e.publish(t, 3000, task.MaxOwnerLen)
	}()
	code, reason := slow.closed(t)
	if code != task.CloseTryAgainLater || reason != fanout.ReasonSlow {
		t.Errorf("slow client closed with %d %q, want %d %q", code, reason, task.CloseTryAgainLater, fanout.ReasonSlow)
	}
	// However long 3,000 requests one after the other take on a busy
	// machine: each is retried until answered, and fails the test itself
	// after its own deadline.
	<-published
	fast.waitCurrent(t, e, 3000)
	fast.v.check(t)
	if got := len(fast.v.events); got != 3000 {
		t.Errorf("fast client saw %d events, want 3000", got)
	}
	if st := r.Stats(); st.SlowCuts != 1 {
		t.Errorf("slow disconnects %d, want 1", st.SlowCuts)
	}
	lat := slices.Clone(fast.v.lat)
	slices.Sort(lat)
	t.Logf("fast client: %d frames, latency p50 %v p99 %v", fast.v.frames, lat[len(lat)/2], lat[len(lat)*99/100])
}

func TestTwoRelaysSameView(t *testing.T) {
	e := newEnv(t)
	e.publish(t, 30, 0)
	r1 := startRelay(t, e.config())
	r2 := startRelay(t, e.config())
	c1 := dial(t, wsURL(r1, ""), nil)
	c2 := dial(t, wsURL(r2, ""), nil)
	e.publish(t, 300, 0)
	last := e.streamLast(t)
	c1.waitCurrent(t, e, last)
	c2.waitCurrent(t, e, last)
	c1.v.check(t)
	c2.v.check(t)
	s1, n1 := c1.v.state()
	s2, n2 := c2.v.state()
	if s1 != s2 || n1 != n2 {
		t.Errorf("relays differ: %d %v and %d %v", s1, n1, s2, n2)
	}

	// A client moving from one relay to the other resumes exactly.
	c1.conn.Close()
	<-c1.done
	e.publish(t, 20, 0)
	c3 := dial(t, wsURL(r2, strconv.FormatUint(s1, 10)), c1.v)
	c3.waitCurrent(t, e, last+20)
	c1.v.check(t)
	if !slices.Equal(c1.v.events[len(c1.v.events)-21:], seqRange(last-0, last+20)) {
		t.Errorf("events after moving relays end with %v", c1.v.events[len(c1.v.events)-21:])
	}
}

func TestNATSRestartUnderTraffic(t *testing.T) {
	e := newEnv(t)
	port := testenv.Port(e.ns)
	dir := e.ns.StoreDir()
	r := startRelay(t, e.config())
	c := dial(t, wsURL(r, ""), nil)
	c.firstFrame(t)

	done := make(chan struct{})
	go func() {
		defer close(done)
		e.publish(t, 400, 0)
	}()
	testenv.Eventually(t, 10*time.Second, func() bool { return e.next.Load() >= 100 }, "no traffic before the restart")
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
	e.ns = testenv.StartNATS(t, port, dir)
	<-done
	e.publish(t, 50, 0)
	c.waitCurrent(t, e, e.streamLast(t))
	c.v.check(t)
	seq, counts := c.v.state()
	if counts.Total() != 450 || seq < 450 {
		t.Errorf("after the restart: seq %d, total %d; want every one of 450 tasks", seq, counts.Total())
	}
	if !slices.Equal(c.v.events, seqRange(1, seq)) {
		t.Errorf("client events not 1..%d each once (%d events)", seq, len(c.v.events))
	}
}

func TestConnectionLimitAndOrigin(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.MaxConns = 1
	r := startRelay(t, cfg)
	c := dial(t, wsURL(r, ""), nil)
	c.firstFrame(t)
	over := dial(t, wsURL(r, ""), nil)
	if code, reason := over.closed(t); code != task.CloseTryAgainLater || reason != fanout.ReasonFull {
		t.Errorf("over the limit: closed with %d %q, want %d %q", code, reason, task.CloseTryAgainLater, fanout.ReasonFull)
	}
	c.conn.Close()
	<-c.done

	tests := []struct {
		origin string
		ok     bool
	}{
		{"http://localhost:8080", true},
		{"http://127.0.0.1:8080", true},
		{"http://127.0.0.1:9999", false}, // another site on the same host: a rebinding page
		{"http://evil.example", false},
		{"null", false},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			h := map[string][]string{"Origin": {tt.origin}}
			conn, resp, err := dialer().Dial(wsURL(r, ""), h)
			if tt.ok {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				conn.Close()
				testenv.Eventually(t, 5*time.Second, func() bool { return r.Stats().Conns == 0 }, "connection not released")
				return
			}
			if err == nil {
				conn.Close()
				t.Fatal("origin admitted")
			}
			if resp == nil || resp.StatusCode != 403 {
				t.Errorf("refused with %v, want 403", resp)
			}
		})
	}
}

func TestShutdownTellsClientsToReconnect(t *testing.T) {
	e := newEnv(t)
	r := startRelay(t, e.config())
	c := dial(t, wsURL(r, ""), nil)
	c.firstFrame(t)
	r.stop(t)
	if code, reason := c.closed(t); code != task.CloseGoingAway || reason != fanout.ReasonShutdown {
		t.Errorf("closed with %d %q, want %d %q", code, reason, task.CloseGoingAway, fanout.ReasonShutdown)
	}
}

func TestBadSinceChangesNothing(t *testing.T) {
	e := newEnv(t)
	r := startRelay(t, e.config())
	for _, since := range []string{"-1", "abc", "1e3"} {
		code, body := httpGet(t, "http://"+r.Addr()+"/ws?since="+since, nil)
		if code != 400 {
			t.Errorf("since=%s: status %d %q, want 400", since, code, body)
		}
	}
	if st := r.Stats(); st.Conns != 0 || st.Clients != 0 {
		t.Errorf("after bad requests: %d connections, %d clients", st.Conns, st.Clients)
	}
}

// A stream message that is not a valid task is left out of every frame,
// counted in the metrics, and changes nothing else: the sequence moves on
// and no client sees a gap.
func TestInvalidStreamMessageLeftOut(t *testing.T) {
	e := newEnv(t)
	r := startRelay(t, e.config())
	c := dial(t, wsURL(r, ""), nil)
	c.firstFrame(t)
	e.publish(t, 3, 0)
	ctx := context.Background()
	if _, err := e.js.Publish(ctx, task.Low.Subject(), []byte(`{"batchid":"nope"}`)); err != nil {
		t.Fatal(err)
	}
	e.publish(t, 3, 0)
	testenv.Eventually(t, 10*time.Second, func() bool { s, _ := c.v.state(); return s == 7 }, "client not at seq 7: %v", c.v)
	c.v.mu.Lock()
	events, problems := slices.Clone(c.v.events), len(c.v.problems)
	c.v.mu.Unlock()
	if want := []uint64{1, 2, 3, 5, 6, 7}; !slices.Equal(events, want) {
		t.Errorf("events %v, want %v", events, want)
	}
	// The client's gap check flags the skipped sequence: 4 is not a task.
	if problems != 1 {
		t.Errorf("%d problems, want exactly the one hole at 4", problems)
	}
	if st := r.Stats(); st.BadEvents != 1 {
		t.Errorf("invalid events %d, want 1", st.BadEvents)
	}
	if got := e.redisCounts(t).Total(); got != 6 {
		t.Errorf("Redis total %d, want 6", got)
	}
}

// A stream deleted and created anew restarts its sequences: the relay
// notices, tells its clients to reconnect, and serves the new stream.
func TestStreamRecreated(t *testing.T) {
	e := newEnv(t)
	r := startRelay(t, e.config())
	c := dial(t, wsURL(r, ""), nil)
	e.publish(t, 20, 0)
	c.waitCurrent(t, e, 20)

	ctx := context.Background()
	if err := e.js.DeleteStream(ctx, task.StreamName); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.CreateStream(ctx, streamConfig()); err != nil {
		t.Fatal(err)
	}
	e.publish(t, 5, 0)
	if code, reason := c.closed(t); code != task.CloseTryAgainLater || reason != fanout.ReasonReset {
		t.Fatalf("closed with %d %q, want %d %q", code, reason, task.CloseTryAgainLater, fanout.ReasonReset)
	}
	c2 := dial(t, wsURL(r, "20"), nil)
	f := c2.firstFrame(t)
	if f.Type != task.FrameSnapshot || f.Seq != 5 || len(f.Events) != 5 {
		t.Errorf("after the reset: %q seq %d with %d events, want a snapshot of the 5 new events", f.Type, f.Seq, len(f.Events))
	}
	c2.waitCurrent(t, e, 5)
}

// With a cap on update events, a burst reaches clients as its newest
// events, and counts and sequence stay exact; a resume still gets every
// missed event.
func TestMaxUpdateEvents(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.MaxUpdateEvents = 5
	cfg.Interval = 200 * time.Millisecond // a burst lands in one frame
	cfg.MaxInterval = cfg.Interval
	r := startRelay(t, cfg)
	c := dial(t, wsURL(r, ""), nil)
	c.firstFrame(t)
	e.publish(t, 50, 0)
	c.waitCurrent(t, e, 50)
	c.v.mu.Lock()
	events, frames, capped, unsent := len(c.v.events), c.v.frames, c.v.capped, c.v.unsent
	c.v.mu.Unlock()
	if events > 5*(frames-1) || events == 50 {
		t.Errorf("%d events in %d updates, want at most 5 per update", events, frames-1)
	}
	// Each update says how many it left out, and when it was sent.
	if events+capped != 50 || unsent != 0 {
		t.Errorf("%d events shown and %d said left out, want 50 in all; %d frames without a send time", events, capped, unsent)
	}
	c2 := dial(t, wsURL(r, "10"), nil)
	if f := c2.firstFrame(t); f.Type != task.FrameUpdate || len(f.Events) != 40 {
		t.Errorf("resume: %q with %d events, want an update with all 40 missed", f.Type, len(f.Events))
	}
}

// Clients have nothing to say: a message over the read limit ends the
// connection with 1009 and leaves the others alone.
func TestReadLimit(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.ReadLimit = 64
	r := startRelay(t, cfg)
	other := dial(t, wsURL(r, ""), nil)
	other.firstFrame(t)
	c := dial(t, wsURL(r, ""), nil)
	c.firstFrame(t)
	if err := c.conn.WriteMessage(websocket.TextMessage, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.closed(t); code != websocket.CloseMessageTooBig {
		t.Errorf("closed with %d, want %d", code, websocket.CloseMessageTooBig)
	}
	e.publish(t, 3, 0)
	other.waitCurrent(t, e, 3)
}

// TestSluggishClientCatchesUp reads slowly through a tiny receive buffer,
// so that the relay's writes to it stop part-way through frames and its
// writer has to finish them, but never so slowly that it is cut off. It
// must still get every event once, in order, in well-formed frames, while
// a fast client is unaffected.
func TestSluggishClientCatchesUp(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.QueueSize = 100000
	cfg.Interval = 5 * time.Millisecond
	cfg.MaxInterval = 5 * time.Millisecond
	cfg.SendBuffer = 8 << 10
	r := startRelay(t, cfg)

	fast := dial(t, wsURL(r, ""), nil)
	fast.firstFrame(t)
	sluggish := dialWith(t, smallReceiveDialer(2048), wsURL(r, ""), nil, func(n int) {
		if n%5 == 0 {
			time.Sleep(20 * time.Millisecond) // let the relay's socket fill
		}
	})
	slow := sluggish.v

	e.publish(t, 2000, task.MaxOwnerLen)
	fast.waitCurrent(t, e, 2000)
	testenv.Eventually(t, 60*time.Second, func() bool {
		seq, _ := slow.state()
		return seq == 2000
	}, "sluggish client did not catch up: %s", slow)
	slow.check(t)
	fast.v.check(t)
	slow.mu.Lock()
	got, closeErr := len(slow.events), slow.closeErr
	slow.mu.Unlock()
	if got != 2000 || closeErr != nil {
		t.Fatalf("sluggish client saw %d events (want 2000), connection error %v", got, closeErr)
	}
	if st := r.Stats(); st.SlowCuts != 0 {
		t.Fatalf("a client was cut off as slow: %d", st.SlowCuts)
	}
}
