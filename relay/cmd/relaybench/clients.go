package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookpipe/hookpipe/task"
)

// client is one load-client connection. It reads frames, keeps the newest,
// and times the oldest event of each from the stream's timestamp without
// decoding the whole frame.
type client struct {
	conn   *websocket.Conn
	frames atomic.Int64
	mu     sync.Mutex
	seq    uint64 // newest sequence the client has; under mu
	last   []byte
	err    error
	hist   []uint32 // latencies of this client's events, by bucketOf; under mu
	// baseline: the client reads the baseline's frames, not the relay's.
	baseline bool
}

var seqKey = []byte(`"seq":`)

// acks holds, per stream sequence after from, when the task was accepted
// (the stream acknowledged it): the moment the receiver answers 200. from
// is where the stream ended when the bench began, so that a stream that
// already holds events, a running cluster's, is timed too.
type acks struct {
	from uint64
	at   []atomic.Int64
}

func (a *acks) set(seq uint64, t time.Time) {
	if seq > a.from && seq-a.from < uint64(len(a.at)) {
		a.at[seq-a.from].Store(t.UnixNano())
	}
}

func (a *acks) get(seq uint64) int64 {
	if seq > a.from && seq-a.from < uint64(len(a.at)) {
		return a.at[seq-a.from].Load()
	}
	return 0
}

var ackTimes *acks

func (c *client) read(lat *histogram, first chan<- error) {
	// Two buffers, swapped with c.last, so that keeping the newest frame
	// costs no copy: the load client should cost little.
	var spare []byte
	for {
		buf := bytes.NewBuffer(spare[:0])
		_, r, err := c.conn.NextReader()
		if err == nil {
			_, err = buf.ReadFrom(r)
		}
		data := buf.Bytes()
		if first != nil {
			first <- err
			first = nil
		}
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		now := time.Now()
		c.frames.Add(1)
		c.mu.Lock()
		if c.baseline {
			if lat.on.Load() {
				c.recordBaseline(data, now)
			}
		} else {
			c.record(data, now, lat.on.Load())
		}
		c.last, spare = data, c.last
		c.mu.Unlock()
	}
}

// record notes the latency of every event in frame data, from the time
// its task was accepted: when the stream acknowledged it to the bench, or
// when the receiver answered 200 with its sequence.
//
// A frame accounts for every event after the client's previous frame up to
// its own seq, whether it carries the event or only counts it
// (--max-update-events): that is when the client has the event.
func (c *client) record(data []byte, now time.Time, on bool) {
	last, ok := seqAfter(data, 0)
	if !ok {
		return
	}
	prev := c.seq
	c.seq = max(c.seq, last)
	if !on || prev == 0 {
		return // off, or the client's first frame: where it starts from
	}
	first := prev + 1
	if first > last {
		return // no events
	}
	if !exactLatency {
		// Every event is charged the latency of the oldest: an upper
		// bound that costs one lookup per frame.
		c.addN(sinceAck(first, now), uint32(last-first+1))
		return
	}
	// Up to maxTimed events spread evenly over the range, each standing
	// for its share of it: exact for the usual frame, and a fair sample of
	// a wide one at a bounded cost per frame.
	n := last - first + 1
	k := min(n, maxTimed)
	b := -1
	for j := range k {
		lo, hi := first+n*j/k, first+n*(j+1)/k
		b = bucketNear(sinceAck(lo, now), b)
		c.addBucket(b, uint32(hi-lo))
	}
}

// exactLatency charges each event its own latency, at a cost per event
// in the load client.
var exactLatency bool

// maxTimed is the most events of one frame timed one by one.
const maxTimed = 64

// sinceAck returns how long ago the event of sequence seq was accepted; 0
// when it arrived before the publisher saw its acknowledgement.
func sinceAck(seq uint64, now time.Time) time.Duration {
	if at := ackTimes.get(seq); at != 0 {
		return time.Duration(now.UnixNano() - at)
	}
	return 0
}

func (c *client) addN(d time.Duration, n uint32) { c.addBucket(bucketOf(d), n) }

func (c *client) addBucket(b int, n uint32) {
	if c.hist == nil {
		c.hist = make([]uint32, numBuckets)
	}
	c.hist[b] += n
}

// seqAfter parses the first "seq": number in data from offset from.
func seqAfter(data []byte, from int) (uint64, bool) {
	i := bytes.Index(data[from:], seqKey)
	if i < 0 {
		return 0, false
	}
	rest := data[from+i+len(seqKey):]
	j := bytes.IndexAny(rest, ",}")
	if j < 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(rest[:j]), 10, 64)
	return n, err == nil
}

// current reports whether the client's newest frame is at seq with counts.
func (c *client) current(seq uint64, counts task.Counts) bool {
	c.mu.Lock()
	defer c.mu.Unlock() // the reader reuses the bytes of older frames
	data := c.last
	i := bytes.Index(data, seqKey)
	if i < 0 {
		return false
	}
	rest := data[i+len(seqKey):]
	j := bytes.IndexByte(rest, ',')
	if j < 0 {
		return false
	}
	if n, err := strconv.ParseUint(string(rest[:j]), 10, 64); err != nil || n != seq {
		return false
	}
	var f task.Frame
	return json.Unmarshal(data, &f) == nil && f.Counts == counts
}

// connect opens n clients to the server at base (the relay, or the
// baseline), each with its first frame.
func connect(ctx context.Context, base string, n int, baseline bool, lat *histogram) ([]*client, error) {
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	clients := make([]*client, n)
	d := &websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 32 << 10, WriteBufferSize: 256}
	t0 := time.Now()
	sem := make(chan struct{}, 64)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range clients {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conn, res, err := d.DialContext(ctx, wsURL, nil)
			if err != nil {
				if res != nil {
					body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
					err = fmt.Errorf("%w: %s %s", err, res.Status, bytes.TrimSpace(body))
				}
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			c := &client{conn: conn, baseline: baseline}
			clients[i] = c
			first := make(chan error, 1)
			go c.read(lat, first)
			if err := <-first; err != nil {
				errs <- fmt.Errorf("client %d first frame: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	fmt.Printf("connected %d clients in %v, each with its first frame\n", n, time.Since(t0).Round(time.Millisecond))
	return clients, nil
}
