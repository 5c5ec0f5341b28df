package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// sender posts tasks with webhook ids of their own to the receivers' port,
// each retried until it is answered 200, as a webhook sender would: what it
// counts as acknowledged must all be in the stream and the counts, once.
type sender struct {
	url         string
	hc          *http.Client
	next        atomic.Int64
	acked       [task.NumPriorities]atomic.Int64
	unavailable atomic.Int64 // attempts answered 503
	failed      atomic.Int64 // other attempts not answered 200: errors, timeouts, other statuses
	lastAck     atomic.Int64 // when the latest 200 came, in Unix nanoseconds
	maxGap      atomic.Int64 // the longest time without a 200 since the last mark
	// gate is held for reading by every send; pause takes it whole, so
	// that it returns once every task begun has been acknowledged.
	gate sync.RWMutex
	stop chan struct{}
	wg   sync.WaitGroup
}

func startSender(url string, workers int, every time.Duration) *sender {
	s := &sender{url: url, stop: make(chan struct{}),
		hc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}}
	for range workers {
		s.wg.Go(func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-s.stop:
					return
				case <-tick.C:
				}
				s.gate.RLock()
				s.send(s.next.Add(1))
				s.gate.RUnlock()
			}
		})
	}
	return s
}

const clusterBatch = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"

// send delivers task n, retrying with a short pause until it is answered
// 200; a 200 is the acknowledgement that must never be lost.
func (s *sender) send(n int64) {
	tk := task.Task{BatchID: clusterBatch, ID: n, Owner: "Owner " + strconv.FormatInt(n, 10), Priority: task.Priorities[n%task.NumPriorities]}
	body := tk.Encode()
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(task.HeaderID, "cluster-"+strconv.FormatInt(n, 10))
		res, err := s.hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				s.acked[tk.Priority.Index()].Add(1)
				s.noteAck()
				return
			}
		}
		if err == nil && res.StatusCode == http.StatusServiceUnavailable {
			s.unavailable.Add(1)
		} else {
			s.failed.Add(1)
		}
		time.Sleep(min(time.Duration(attempt+1)*50*time.Millisecond, time.Second)) // a sender's backoff
	}
}

func (s *sender) noteAck() {
	now := time.Now().UnixNano()
	gap := now - s.lastAck.Swap(now)
	for {
		m := s.maxGap.Load()
		if gap <= m || s.maxGap.CompareAndSwap(m, gap) {
			return
		}
	}
}

// counts is what was acknowledged so far.
func (s *sender) counts() task.Counts {
	var c task.Counts
	for i := range c {
		c[i] = s.acked[i].Load()
	}
	return c
}

func (s *sender) total() int64 { return s.counts().Total() }

// progress waits until n more tasks are acknowledged: the pipeline goes on
// through a loss.
func (s *sender) progress(t *testing.T, what string, n int64) {
	t.Helper()
	from := s.total()
	testenv.Eventually(t, 90*time.Second, func() bool { return s.total() >= from+n }, "no progress %s (%d acknowledged)", what, s.total())
}

// pause waits until every task begun is acknowledged and holds the workers;
// resume lets them go on.
func (s *sender) pause()  { s.gate.Lock() }
func (s *sender) resume() { s.gate.Unlock() }

func (s *sender) close() task.Counts {
	close(s.stop)
	s.wg.Wait()
	return s.counts()
}

// fault is one loss under load, from the kill until the stream and the
// counts settle again: a row of the fault table the tests print.
type fault struct {
	name              string
	at                time.Time
	unavailable, fail int64
}

// mark starts a fault: the longest time without a 200 and the failed
// attempts are counted from here.
func (s *sender) mark(name string) *fault {
	now := time.Now()
	s.lastAck.Store(now.UnixNano())
	s.maxGap.Store(0)
	return &fault{name: name, at: now, unavailable: s.unavailable.Load(), fail: s.failed.Load()}
}

// settle pauses the load, waits until the stream holds every acknowledged
// task once and the fold counted exactly those, prints the fault's row and
// returns the stream's last sequence with the load still paused. The test
// fails when they do not match within a minute and a half.
func (s *sender) settle(t *testing.T, ctx context.Context, f *fault, js jetstream.JetStream, rdb redis.UniversalClient, keys task.Keys) (uint64, task.Counts) {
	t.Helper()
	s.pause()
	want := s.counts()
	var (
		last, msgs uint64
		got        task.Counts
		w          uint64
	)
	deadline := time.Now().Add(90 * time.Second)
	for {
		if st, err := js.Stream(ctx, task.StreamName); err == nil {
			if info, err := st.Info(ctx); err == nil {
				last, msgs = info.State.LastSeq, info.State.Msgs
			}
		}
		if c, wm, ok, err := redisconn.ReadCounts(ctx, rdb, keys); err == nil && ok {
			got, w = c, wm
		}
		if (w == last && msgs == uint64(want.Total()) && got == want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("fault table | %s | 200s answered %d | counted %d | in stream %d | difference %d | longest without a 200 %v | 503s %d | other failed attempts %d | settled %v after the fault",
		f.name, want.Total(), got.Total(), msgs, got.Total()-want.Total(), time.Duration(s.maxGap.Load()).Round(time.Millisecond),
		s.unavailable.Load()-f.unavailable, s.failed.Load()-f.fail, time.Since(f.at).Round(100*time.Millisecond))
	if w != last || msgs != uint64(want.Total()) || got != want {
		t.Fatalf("%s: the stream holds %d messages up to %d and the fold counted %v up to %d; acknowledged %v", f.name, msgs, last, got, w, want)
	}
	return last, want
}

// wsClient is a dashboard without a browser: it follows the relays in
// turn, resuming with ?since= when its relay goes away, and checks that
// the events it gets follow each other with no gap and no repeat.
type wsClient struct {
	relays    []string
	mu        sync.Mutex
	seq       uint64
	counts    task.Counts
	bad       []string
	moves     int
	downAt    time.Time     // when its relay went away, until the next frame
	maxOutage time.Duration // the longest time from losing a relay to a frame from the next
	stop      chan struct{}
	done      chan struct{}
}

func startWSClient(relays []string, first int) *wsClient {
	c := &wsClient{relays: relays, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run(first)
	return c
}

func (c *wsClient) run(at int) {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		c.mu.Lock()
		since := c.seq
		c.mu.Unlock()
		u := strings.Replace(c.relays[at], "http://", "ws://", 1) + "/ws"
		if since > 0 {
			u += "?since=" + strconv.FormatUint(since, 10)
		}
		conn, _, err := websocket.DefaultDialer.Dial(u, nil)
		if err == nil {
			c.read(conn)
		}
		at = (at + 1) % len(c.relays)
		c.mu.Lock()
		c.moves++
		if c.downAt.IsZero() {
			c.downAt = time.Now()
		}
		c.mu.Unlock()
		select {
		case <-c.stop:
			return
		case <-time.After(200 * time.Millisecond): // a reconnect delay
		}
	}
}

func (c *wsClient) read(conn *websocket.Conn) {
	defer conn.Close()
	go func() { <-c.stop; conn.Close() }()
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var f task.Frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.mu.Lock()
			c.bad = append(c.bad, "bad frame: "+err.Error())
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		if !c.downAt.IsZero() {
			c.maxOutage = max(c.maxOutage, time.Since(c.downAt))
			c.downAt = time.Time{}
		}
		switch f.Type {
		case task.FrameSnapshot:
			if f.Seq < c.seq {
				c.bad = append(c.bad, fmt.Sprintf("snapshot at %d after %d", f.Seq, c.seq))
			}
		case task.FrameUpdate:
			want := c.seq + 1
			for _, e := range f.Events {
				if e.Seq != want {
					c.bad = append(c.bad, fmt.Sprintf("event %d after %d", e.Seq, want-1))
				}
				want = e.Seq + 1
			}
			if f.Seq < c.seq {
				c.bad = append(c.bad, fmt.Sprintf("update at %d after %d", f.Seq, c.seq))
			}
		}
		c.seq, c.counts = max(c.seq, f.Seq), f.Counts
		c.mu.Unlock()
	}
}

func (c *wsClient) state() (uint64, task.Counts, []string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq, c.counts, append([]string(nil), c.bad...), c.moves
}

func (c *wsClient) outage() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxOutage
}

// caughtUp waits until every client is at the stream's last sequence with
// the exact counts, and fails the test for any gap, repeat or step back.
func caughtUp(t *testing.T, clients []*wsClient, last uint64, want task.Counts) {
	t.Helper()
	for i, w := range clients {
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			seq, counts, _, _ := w.state()
			if seq == last && counts == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("client %d does not reach the stream's end within 60s: at %d with %v, want %d with %v", i, seq, counts, last, want)
			}
		}
		if _, _, bad, _ := w.state(); len(bad) > 0 {
			t.Errorf("client %d: %v", i, bad[:min(len(bad), 5)])
		}
	}
}
