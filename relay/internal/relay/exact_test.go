package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go/jetstream"
)

// prefixCounts reads the stream and returns, for every sequence, the
// counts of the tasks stored up to it: what a frame at that sequence must
// carry.
func prefixCounts(t *testing.T, e *env) []task.Counts {
	t.Helper()
	last := e.streamLast(t)
	out := make([]task.Counts, last+1)
	st, err := e.js.Stream(context.Background(), task.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var run task.Counts
	for seq := uint64(1); seq <= last; {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		meta, _ := m.Metadata()
		for ; seq < meta.Sequence.Stream; seq++ {
			out[seq] = run
		}
		if tk, err := task.DecodeStored(m.Data(), m.Headers().Get(task.HeaderFingerprint)); err == nil {
			run[tk.Priority.Index()]++
		}
		out[seq] = run
		seq++
	}
	return out
}

// checkFrames checks that every frame a client got carries the counts of
// the stream up to its sequence: bars and list never disagree.
func checkFrames(t *testing.T, name string, v *view, want []task.Counts) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	bad := 0
	for i, seq := range v.frameSeqs {
		if seq >= uint64(len(want)) || v.frameCounts[i] != want[seq] {
			if bad < 5 {
				t.Errorf("%s: frame %d at seq %d has counts %v, the stream %v", name, i, seq, v.frameCounts[i], want[min(seq, uint64(len(want)-1))])
			}
			bad++
		}
	}
	if len(v.frameSeqs) < 10 {
		t.Errorf("%s: only %d frames", name, len(v.frameSeqs))
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d frames not exact", name, bad, len(v.frameSeqs))
	}
}

// Under load from several senders, with messages that are not tasks among
// them, every frame of every client, joined early or late, resumed or
// not, is exact as of its sequence.
func TestEveryFrameIsExactAsOfItsSequence(t *testing.T) {
	e := newEnv(t)
	r := startRelay(t, e.config())
	early := dial(t, wsURL(r, ""), nil)
	early.firstFrame(t)
	var wg sync.WaitGroup
	var late, resumed *wsClient
	for w := range 4 {
		wg.Go(func() {
			e.publish(t, 300, 0)
			if w == 0 {
				e.nc.Publish("tasks.low", []byte(`{"batchid":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","id":1,"owner":"x","priority":"Low"}`))
				e.nc.Flush()
			}
		})
	}
	// Join and resume while the load goes on.
	testenv.Eventually(t, 20*time.Second, func() bool { s, _ := early.v.state(); return s > 300 }, "no traffic")
	late = dial(t, wsURL(r, ""), nil)
	s, _ := early.v.state()
	resumed = dial(t, wsURL(r, fmt.Sprint(s-100)), nil)
	wg.Wait()
	last := e.streamLast(t)
	for _, c := range []*wsClient{early, late, resumed} {
		testenv.Eventually(t, 20*time.Second, func() bool { s, _ := c.v.state(); return s == last }, "client not at the end")
	}
	want := prefixCounts(t, e)
	if want[last].Total() != 1200 {
		t.Fatalf("the stream holds %d tasks, want 1200 (the message not from a receiver left out)", want[last].Total())
	}
	checkFrames(t, "early", early.v, want)
	checkFrames(t, "late", late.v, want)
	checkFrames(t, "resumed", resumed.v, want)
}

// A Redis whose counts were corrupted is repaired by receiver verify
// --repair: relays that started on the corrupted counts take the repaired
// ones, and their frames are exact again.
func TestRelayTakesRepairedCounts(t *testing.T) {
	e := newEnv(t)
	e.publish(t, 50, 0)
	e.redisCounts(t)
	e.rdb.HIncrBy(context.Background(), e.keys.Counts(), "Critical", 7)
	r := startRelay(t, e.config())
	c := dial(t, wsURL(r, ""), nil)
	if f := c.firstFrame(t); f.Counts.Total() != 57 {
		t.Fatalf("first frame total %d, want the corrupted 57", f.Counts.Total())
	}
	bin := testenv.Binary(t, "github.com/hookpipe/hookpipe/receiver")
	cmd := exec.Command(bin, "verify", "--repair")
	cmd.Env = append(os.Environ(), "NATS_URL="+e.natsURL, "REDIS_URL="+e.redisURL, "HOOKPIPE_KEY_PREFIX="+e.prefix)
	if out, err := cmd.CombinedOutput(); err != nil && !bytes.Contains(out, []byte("OK:")) {
		t.Fatalf("receiver verify --repair: %v\n%s", err, out)
	}
	e.publish(t, 10, 0)
	testenv.Eventually(t, 20*time.Second, func() bool {
		s, counts := c.v.state()
		return s == 60 && counts.Total() == 60
	}, "the relay did not take the repaired counts: %v", c.v)
}

// A client with a small receive buffer that reads slowly and pings as fast
// as it can while frames pour in gets only well-formed frames, and its
// pings are answered all along: every byte of the connection has one
// writer, and pongs go through it.
func TestPingingSluggishClientGetsValidFramesAndPongs(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.QueueSize = 100000
	cfg.Interval = 5 * time.Millisecond
	cfg.MaxInterval = 5 * time.Millisecond
	cfg.SendBuffer = 8 << 10
	r := startRelay(t, cfg)
	var pongs atomic.Int64
	var c *wsClient
	c = dialWith(t, smallReceiveDialer(2048), wsURL(r, ""), nil, func(n int) {
		if n%2 == 0 {
			time.Sleep(2 * time.Millisecond) // let the relay's socket fill mid-frame
		}
	})
	c.conn.SetPongHandler(func(string) error { pongs.Add(1); return nil })
	stop := make(chan struct{})
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}

			if c.conn.WriteControl(websocket.PingMessage, []byte(fmt.Sprint(i)), time.Now().Add(time.Second)) != nil {
				return
			}
		}
	}()
	e.publish(t, 1500, task.MaxOwnerLen)
	testenv.Eventually(t, 60*time.Second, func() bool { s, _ := c.v.state(); return s == 1500 }, "sluggish client did not catch up: %s", c.v)
	mid := pongs.Load()
	testenv.Eventually(t, 10*time.Second, func() bool { return pongs.Load() > mid }, "pongs stopped coming")
	close(stop)
	<-pinged
	c.v.check(t)
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if len(c.v.events) != 1500 || c.v.closeErr != nil {
		t.Fatalf("saw %d events (want 1500), connection error %v", len(c.v.events), c.v.closeErr)
	}
	if mid == 0 {
		t.Fatal("no pong during the load")
	}
	t.Logf("%d pongs during the load", mid)
}
