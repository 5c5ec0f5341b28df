package fanout

import (
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

func testEvent(seq uint64, owner string) task.Event {
	return task.Event{
		Seq:  seq,
		Time: time.Date(2026, 11, 30, 5, 0, 0, int(seq)*1000+7, time.UTC),
		Task: task.Task{
			BatchID:  "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
			ID:       int64(seq),
			Owner:    owner,
			Priority: task.Priorities[seq%task.NumPriorities],
		},
	}
}

// The hand-built frame must be the same JSON document encoding/json makes
// of the same task.Frame (escapes may differ: \t or \u0009), so that any
// JSON decoder, the dashboard's included, reads it as the contract says.
func TestFrameEncodingMatchesEncodingJSON(t *testing.T) {
	owners := []string{"Ada Lovelace", `quote " and \ backslash`, "<script>&", "tab\tnew\nline\x01", "line\u2028sep", "émile 漢字 🙂"}
	tests := []struct {
		name  string
		frame task.Frame
	}{
		{"empty snapshot", task.Frame{Type: task.FrameSnapshot, Events: []task.Event{}}},
		{"update", task.Frame{Type: task.FrameUpdate, Seq: 42, Counts: task.Counts{1, 2, 3, 4}}},
		{"with batch size", task.Frame{Type: task.FrameUpdate, Seq: 9, Events: []task.Event{func() task.Event {
			e := testEvent(9, "x")
			e.BatchSize = 20
			return e
		}()}}},
		{"sent, healthy", task.Frame{Type: task.FrameUpdate, Seq: 3, Sent: time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)}},
		{"sent, degraded", task.Frame{Type: task.FrameUpdate, Seq: 3, Sent: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC),
			Health: &task.Health{IntervalMS: 40, Capped: 7, StreamLag: 1 << 40, FoldLag: 12}}},
		{"rates", task.Frame{Type: task.FrameSnapshot, Seq: 3, Rates: &task.Rates{Start: 1796204917, Counts: [][4]int64{{1, 0, 0, 1}, {0, 0, 0, 0}, {5, 1 << 40, 2, 0}}}}},
		{"rates known from", task.Frame{Type: task.FrameUpdate, Seq: 3, Rates: &task.Rates{Start: 1796204917, Counts: [][4]int64{{1, 2, 3, 4}}, KnownFrom: 1796204900}}},
		{"only a fold lag", task.Frame{Type: task.FrameUpdate, Seq: 3, Health: &task.Health{FoldLag: 5}}},
		{"with webhook ids", task.Frame{Type: task.FrameUpdate, Seq: 11, Events: []task.Event{func() task.Event {
			e := testEvent(10, "x")
			e.WebhookID = "msg_2fG8bq0Zkq1xTQ9uVzLrP3cX4mS"
			return e
		}(), testEvent(11, "no id")}}},
	}
	var evs []task.Event
	for i, o := range owners {
		evs = append(evs, testEvent(uint64(i+1), o))
	}
	tests = append(tests, struct {
		name  string
		frame task.Frame
	}{"awkward owners", task.Frame{Type: task.FrameUpdate, Seq: uint64(len(evs)), Counts: task.Counts{5, 0, 0, 1 << 40}, Events: evs}})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.frame.Events == nil {
				tt.frame.Events = []task.Event{}
			}
			var encoded [][]byte
			for i := range tt.frame.Events {
				encoded = append(encoded, appendEvent(nil, &tt.frame.Events[i]))
			}
			m := &meta{sent: tt.frame.Sent, rates: tt.frame.Rates}
			if tt.frame.Health != nil {
				m.health = *tt.frame.Health
			}
			got := appendFrame(nil, tt.frame.Type, tt.frame.Seq, &tt.frame.Counts, encoded, m)
			want, err := json.Marshal(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			var gotDoc, wantDoc any
			if err := json.Unmarshal(got, &gotDoc); err != nil {
				t.Fatalf("frame is not JSON: %v: %s", err, got)
			}
			json.Unmarshal(want, &wantDoc)
			if !reflect.DeepEqual(gotDoc, wantDoc) {
				t.Errorf("frame\n got %s\nwant %s", got, want)
			}
			var back task.Frame
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(back, tt.frame) {
				t.Errorf("decoded %+v, want %+v", back, tt.frame)
			}
		})
	}
}

func TestRing(t *testing.T) {
	r := newRing(5, 3)
	seqs := func(b [][]byte) []uint64 {
		var out []uint64
		for _, e := range b {
			n, _ := strconv.ParseUint(string(e), 10, 64)
			out = append(out, n)
		}
		return out
	}
	push := func(s uint64) { r.push(entry{seq: s, json: []byte(strconv.FormatUint(s, 10))}) }
	for _, s := range []uint64{3, 4, 6, 7} { // 5 was not a task
		push(s)
	}
	tests := []struct {
		name string
		got  []uint64
		want []uint64
	}{
		{"after 2", seqs(r.after(nil, 2, 7)), []uint64{3, 4, 6, 7}},
		{"after 4", seqs(r.after(nil, 4, 7)), []uint64{6, 7}},
		{"after 4 upto 6", seqs(r.after(nil, 4, 6)), []uint64{6}},
		{"after 7", seqs(r.after(nil, 7, 7)), nil},
		{"last 2", seqs(r.last(nil, 2, 7)), []uint64{6, 7}},
		{"last 2 upto 4", seqs(r.last(nil, 2, 4)), []uint64{3, 4}},
		{"last 10", seqs(r.last(nil, 10, 7)), []uint64{3, 4, 6, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !slices.Equal(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	if !r.covers(2) || r.covers(1) {
		t.Errorf("a ring from 3 covers since=2 and not since=1")
	}
	push(8)
	push(9) // evicts 3
	if r.covers(2) || !r.covers(3) {
		t.Errorf("after evicting 3: covers(2)=%v covers(3)=%v, want false true", r.covers(2), r.covers(3))
	}
	if got := seqs(r.after(nil, 3, 9)); !slices.Equal(got, []uint64{4, 6, 7, 8, 9}) {
		t.Errorf("after eviction: %v", got)
	}
}

func TestAdaptInterval(t *testing.T) {
	p := newPacer(10*time.Millisecond, 80*time.Millisecond)
	steps := []struct {
		backlog, clients int
		want             time.Duration
	}{
		{0, 100, 10 * time.Millisecond},
		{50, 100, 20 * time.Millisecond},
		{50, 100, 40 * time.Millisecond},
		{50, 100, 80 * time.Millisecond},
		{50, 100, 80 * time.Millisecond}, // capped
		{5, 100, 80 * time.Millisecond},  // between: hold
		{1, 100, 60 * time.Millisecond},  // drained: narrow
		{0, 100, 45 * time.Millisecond},
		{0, 100, 33750 * time.Microsecond},
		{0, 100, 25312500},
		{0, 100, 18984375},
		{0, 100, 14238281},
		{0, 100, 10678710},
		{0, 100, 10 * time.Millisecond}, // floor
	}
	for i, s := range steps {
		p.adapt(s.backlog, s.clients)
		if p.interval != s.want {
			t.Fatalf("step %d (%d of %d behind): interval %v, want %v", i, s.backlog, s.clients, p.interval, s.want)
		}
	}
}

func BenchmarkAppendEvent(b *testing.B) {
	ev := testEvent(123456, "Ada Lovelace")
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendEvent(buf[:0], &ev)
	}
}

func BenchmarkEncodingJSONEvent(b *testing.B) {
	ev := testEvent(123456, "Ada Lovelace")
	b.ReportAllocs()
	for b.Loop() {
		json.Marshal(&ev)
	}
}

// BenchmarkUpdate measures bringing many clients up to date once, without
// the pauses that pace it: cut a frame per part, offer its bytes to every
// queue (these clients have no socket).
func BenchmarkUpdate(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(strconv.Itoa(n)+"clients", func(b *testing.B) {
			h := liveHub(fanoutPart, n)
			seq := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				for range 20 { // 2,000 events/s at 10 ms
					seq++
					eventMsg{ev: testEvent(seq, "Ada Lovelace")}.takeIn(h)
				}
				h.broadcast(0, h.cutFor)
				for _, c := range h.list {
					c.pending, c.writing = c.pending[:0], false
					<-c.wake
				}
			}
		})
	}
}

// framesOf decodes the frames queued for a client without a socket.
func framesOf(t *testing.T, c *client) []task.Frame {
	t.Helper()
	var out []task.Frame
	for _, f := range c.pending {
		payload := f.data[2:]
		if f.data[1] == 126 {
			payload = f.data[4:]
		}
		var fr task.Frame
		if err := json.Unmarshal(payload, &fr); err != nil {
			t.Fatalf("frame %q: %v", payload, err)
		}
		out = append(out, fr)
	}
	return out
}

// liveHub returns a hub that is live on a stream starting at sequence 1,
// serves in parts of part, and has n clients without sockets, whose
// frames stay in their queues.
func liveHub(part, n int) *Hub {
	h := New(Config{QueueSize: 100}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.part = part
	beginMsg{from: 1}.takeIn(h)
	for range n {
		c := &client{wake: make(chan struct{}, 1), done: make(chan struct{}), capacity: 100}
		h.clients[c] = struct{}{}
		c.idx = len(h.list)
		h.list = append(h.list, c)
	}
	return h
}

// Clients are served a part at a time and each part's frame is cut with
// the events that came in meanwhile; every client still gets every event
// once, and the clients of the first parts catch up at the next tick.
func TestFanoutInPartsIsExact(t *testing.T) {
	h := liveHub(2, 5)
	for seq := uint64(1); seq <= 3; seq++ {
		eventMsg{ev: testEvent(seq, "a")}.takeIn(h)
	}
	// These arrive while the first part is being written.
	for seq := uint64(4); seq <= 6; seq++ {
		h.in <- eventMsg{ev: testEvent(seq, "b")}
	}
	h.tick(time.Now())
	if got := framesOf(t, h.list[0]); len(got) != 1 || got[0].Seq != 3 {
		t.Fatalf("first part: %+v, want one frame at seq 3", got)
	}
	if got := framesOf(t, h.list[4]); len(got) != 1 || got[0].Seq != 6 {
		t.Fatalf("last part: %+v, want one frame at seq 6", got)
	}
	h.tick(time.Now())
	h.tick(time.Now()) // nothing new: no frame
	for i, c := range h.list {
		var seqs []uint64
		frames := framesOf(t, c)
		for _, f := range frames {
			for _, e := range f.Events {
				seqs = append(seqs, e.Seq)
			}
		}
		if last := frames[len(frames)-1].Seq; last != 6 || !slices.Equal(seqs, []uint64{1, 2, 3, 4, 5, 6}) {
			t.Errorf("client %d: frames end at seq %d with events %v, want 6 and 1 to 6 once each", i, last, seqs)
		}
	}
}

// A fan-out is spread over the time it is given: part k goes out no
// sooner than k/parts of it.
func TestUpdateSpreadsParts(t *testing.T) {
	h := liveHub(2, 6)
	eventMsg{ev: testEvent(1, "a")}.takeIn(h)
	const spread = 90 * time.Millisecond
	start := time.Now()
	_, _, paused := h.broadcast(spread, h.cutFor)
	if took := time.Since(start); took < spread*2/3 || paused <= 0 {
		t.Fatalf("3 parts over %v: took %v, paused %v; want the last part at 2/3 of it", spread, took, paused)
	}
	for i, c := range h.list {
		if got := framesOf(t, c); len(got) != 1 || got[0].Seq != 1 {
			t.Fatalf("client %d got %+v, want one frame at seq 1", i, got)
		}
	}
}

// A stream recreated while a fan-out is under way (its sequences start
// again from 1) leaves no trace of the old sequences once the fan-out ends.
func TestStreamRecreatedDuringFanout(t *testing.T) {
	h := liveHub(2, 4)
	for seq := uint64(1); seq <= 50; seq++ {
		eventMsg{ev: testEvent(seq, "old")}.takeIn(h)
	}
	// Taken between the first part and the second.
	h.in <- beginMsg{from: 1}
	h.in <- eventMsg{ev: testEvent(1, "new")}
	h.tick(time.Now())
	if h.sent > h.tl.seq {
		t.Fatalf("after the stream was recreated: sent %d beyond the new stream's seq %d", h.sent, h.tl.seq)
	}
	for _, c := range h.list {
		t.Fatalf("a client of the old stream is still served: %+v", c)
	}
}

// A client that left before its join was served (its leave handled first)
// is not added: it would stay among the clients for good.
func TestJoinOfAClientThatLeft(t *testing.T) {
	h := liveHub(fanoutPart, 0)
	c := &client{wake: make(chan struct{}, 1), done: make(chan struct{}), capacity: 100, joined: time.Now()}
	c.close(0, "")
	h.drop(c) // its leave, first
	h.join(c, time.Now())
	if len(h.clients) != 0 || len(h.list) != 0 || len(h.held) != 0 {
		t.Fatalf("a client that left was kept: %d clients, %d listed, %d held", len(h.clients), len(h.list), len(h.held))
	}
}

// Frames carry Redis's counts as of its watermark plus the events after it
// that the hub took in: exact as of the frame's sequence, whatever part of
// the history before the watermark the hub loaded.
func TestCountsExactAsOfEachFrame(t *testing.T) {
	h := New(Config{QueueSize: 1000}, slog.New(slog.DiscardHandler))
	h.part = 2
	// Redis counted 10 events (seq 1..10): 4 Low, 3 Moderate, 2 Major, 1
	// Critical. The hub loads its ring from seq 6.
	base := Base{Counts: task.Counts{4, 3, 2, 1}, Watermark: 10}
	beginMsg{from: 6, last: 10, base: base}.takeIn(h)
	for seq := uint64(6); seq <= 10; seq++ {
		eventMsg{ev: testEvent(seq, "old"), pending: 10 - seq}.takeIn(h)
	}
	if !h.Live() {
		t.Fatal("not live after loading the history")
	}
	c := &client{wake: make(chan struct{}, 1), done: make(chan struct{}), capacity: 1000}
	h.join(c, time.Now())
	want := base.Counts
	for seq := uint64(11); seq <= 30; seq++ {
		ev := testEvent(seq, "new")
		want[ev.Priority.Index()]++
		eventMsg{ev: ev}.takeIn(h)
		if seq%3 == 0 {
			h.tick(time.Now())
		}
	}
	h.tick(time.Now())
	frames := framesOf(t, c)
	if frames[0].Type != task.FrameSnapshot || frames[0].Counts != base.Counts || frames[0].Seq != 10 {
		t.Fatalf("snapshot %+v, want Redis's counts at 10", frames[0])
	}
	counts := base.Counts
	for _, f := range frames[1:] {
		for _, e := range f.Events {
			counts[e.Priority.Index()]++
		}
		if f.Counts != counts {
			t.Fatalf("frame at %d carries %v, its events make %v", f.Seq, f.Counts, counts)
		}
	}
	if counts != want || frames[len(frames)-1].Seq != 30 {
		t.Fatalf("ended at %v, want %v at 30", counts, want)
	}
	// Redis repaired: its counts as of 20 differ from what the hub had.
	// The hub takes them, brought up to 30 by the events it keeps.
	repaired := Base{Counts: task.Counts{1, 1, 1, 1}, Watermark: 20}
	h.rebase(repaired)
	expect := repaired.Counts
	h.tl.ring.countAfter(&expect, 20, 30)
	if h.tl.counts != expect {
		t.Fatalf("rebased to %v, want %v", h.tl.counts, expect)
	}
	// A base ahead of the hub, or one the ring cannot bring up, is ignored.
	before := h.tl.counts
	h.rebase(Base{Counts: task.Counts{9, 9, 9, 9}, Watermark: 31})
	h.rebase(Base{Counts: task.Counts{9, 9, 9, 9}, Watermark: 2})
	if h.tl.counts != before {
		t.Fatalf("an unusable base changed the counts to %v", h.tl.counts)
	}
}

// A client that holds a sequence the stream has and the hub has not sent
// yet is held, past ResumeWait, until the hub gets there: it is never sent
// a frame below what it holds.
func TestResumeNeverGoesBack(t *testing.T) {
	h := New(Config{QueueSize: 100, ResumeWait: time.Millisecond}, slog.New(slog.DiscardHandler))
	beginMsg{from: 1}.takeIn(h)
	eventMsg{ev: testEvent(1, "a"), pending: 9}.takeIn(h) // the stream holds 10
	h.tl.caughtUp = true
	h.maybeLive()
	c := &client{wake: make(chan struct{}, 1), done: make(chan struct{}), capacity: 100, resume: true, since: 8, joined: time.Now().Add(-time.Hour)}
	h.join(c, time.Now())
	if len(h.held) != 1 || len(c.pending) != 0 {
		t.Fatalf("a client at 8 with the hub at 1 was served: held %d, frames %d", len(h.held), len(c.pending))
	}
	for seq := uint64(2); seq <= 10; seq++ {
		eventMsg{ev: testEvent(seq, "b")}.takeIn(h)
	}
	h.tick(time.Now()) // sends up to 10, then serves the held client
	f := framesOf(t, c)
	if len(f) != 1 || f[0].Type != task.FrameUpdate || f[0].Seq != 10 || len(f[0].Events) != 2 || f[0].Events[0].Seq != 9 {
		t.Fatalf("held client got %+v, want an update with 9 and 10", f)
	}
	// A sequence beyond the stream's end is another stream's: a snapshot,
	// after ResumeWait.
	d := &client{wake: make(chan struct{}, 1), done: make(chan struct{}), capacity: 100, resume: true, since: 500, joined: time.Now().Add(-time.Hour)}
	h.join(d, time.Now())
	if f := framesOf(t, d); len(f) != 1 || f[0].Type != task.FrameSnapshot {
		t.Fatalf("client beyond the stream's end got %+v, want a snapshot", f)
	}
}

// The rate buckets follow the events' stream time: an update carries the
// seconds its events fell in, each bucket whole, and a snapshot the whole
// window, so that a client that joins late draws what one that was there
// all along draws.
func TestRatesFollowTheStreamClock(t *testing.T) {
	h := liveHub(fanoutPart, 1)
	t0 := time.Now().Truncate(time.Second).Add(-10 * time.Second)
	ev := func(seq uint64, p task.Priority, at time.Duration) eventMsg {
		e := testEvent(seq, "r")
		e.Priority, e.Time = p, t0.Add(at)
		return eventMsg{ev: e}
	}
	ev(1, task.Low, 0).takeIn(h)
	ev(2, task.Critical, 500*time.Millisecond).takeIn(h)
	ev(3, task.Low, time.Second).takeIn(h)
	ev(4, task.Major, -400*time.Second).takeIn(h) // older than the window
	h.tick(time.Now())
	ev(5, task.Major, 1200*time.Millisecond).takeIn(h)
	h.tick(time.Now())

	frames := framesOf(t, h.list[0])
	if len(frames) != 2 || frames[0].Rates == nil || frames[1].Rates == nil {
		t.Fatalf("frames %+v, want two updates with rates", frames)
	}
	s := t0.Unix()
	// The window ends at the newest second: the event 400 s back is
	// outside it, and the update's buckets start with the window.
	r := frames[0].Rates
	if r.Start != s+1-task.RateWindow+1 || r.Start+int64(len(r.Counts))-1 != s+1 {
		t.Errorf("first update's buckets from %d to %d, want the window %d to %d",
			r.Start, r.Start+int64(len(r.Counts))-1, s+2-task.RateWindow, s+1)
	}
	got := map[int64][task.NumPriorities]int64{}
	for i, c := range r.Counts {
		got[r.Start+int64(i)] = c
	}
	if got[s] != [4]int64{1, 0, 0, 1} || got[s+1] != [4]int64{1, 0, 0, 0} {
		t.Errorf("first update's buckets %+v from %d, want second %d Low 1 Critical 1 and %d Low 1", r.Counts, r.Start, s, s+1)
	}
	if r := frames[1].Rates; r.Start != s+1 || len(r.Counts) != 1 || r.Counts[0] != [4]int64{1, 0, 1, 0} {
		t.Errorf("second update's rates %+v, want second %d whole: Low 1 Major 1", r, s+1)
	}

	c := &client{wake: make(chan struct{}, 1), done: make(chan struct{}), capacity: 100, joined: time.Now()}
	h.join(c, time.Now())
	snap := framesOf(t, c)
	if len(snap) != 1 || snap[0].Type != task.FrameSnapshot || snap[0].Rates == nil {
		t.Fatalf("join: %+v, want a snapshot with rates", snap)
	}
	sr := snap[0].Rates
	if len(sr.Counts) != task.RateWindow || sr.Start+task.RateWindow-1 < time.Now().Unix()-1 {
		t.Fatalf("snapshot's rates from %d, %d buckets; want the %d up to now", sr.Start, len(sr.Counts), task.RateWindow)
	}
	var total int64
	for i, b := range sr.Counts {
		sec := sr.Start + int64(i)
		for _, n := range b {
			total += n
		}
		want := map[int64][4]int64{s: {1, 0, 0, 1}, s + 1: {1, 0, 1, 0}}[sec]
		if b != want {
			t.Errorf("snapshot bucket %d = %v, want %v", sec, b, want)
		}
	}
	if total != 4 {
		t.Errorf("snapshot's buckets hold %d events, want the 4 of the window", total)
	}
}
