package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
)

// TestMain lets the test binary play the bench's child processes, as the
// bench binary does.
func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) != "" {
		serveRelay()
		return
	}
	if v := os.Getenv(baselineEnv); v != "" {
		serveBaseline(v)
		return
	}
	if v := os.Getenv(natsEnv); v != "" {
		serveNATS(v)
		return
	}
	os.Exit(m.Run())
}

// smallRun runs the whole bench, small: child NATS and relay (and the
// receiver binary recvBin, when given), clients, traffic, and the bench's
// own check that every client ends current.
func smallRun(t *testing.T, recvBin string) {
	t.Helper()
	url, prefix := testenv.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	err := run(ctx, options{
		clients:    20,
		rate:       200,
		duration:   time.Second,
		redisURL:   url,
		prefix:     prefix,
		recvBin:    recvBin,
		webhookIDs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The whole bench, small, through the real receiver built for the test and
// run as the bench runs it: webhooks posted, stored, folded and fanned
// out, each task timed from the receiver's answer, then the baseline.
func TestBenchThroughReceiver(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the receiver and starts child processes")
	}
	bin := testenv.Binary(t, "github.com/hookpipe/hookpipe/receiver")
	saved := ackTimes
	defer func() { ackTimes = saved }()
	smallRun(t, bin)
	timed := 0
	for i := range ackTimes.at {
		if ackTimes.at[i].Load() != 0 {
			timed++
		}
	}
	if timed < 150 {
		t.Fatalf("%d tasks timed from the receiver's answer, want about 200", timed)
	}
}

// A baseline frame's events are each timed from their arrival.
func TestRecordBaseline(t *testing.T) {
	now := time.Now()
	c := &client{baseline: true}
	frame := fmt.Sprintf(`{"seq":3,"times":[%d,%d],"pad":"xx"}`, now.Add(-2*time.Millisecond).UnixNano(), now.Add(-time.Millisecond).UnixNano())
	c.recordBaseline([]byte(frame), now)
	var n uint32
	for _, v := range c.hist {
		n += v
	}
	if n != 2 || c.hist[bucketOf(2*time.Millisecond)] != 1 {
		t.Fatalf("timed %d events, histogram %v", n, c.hist)
	}
}

// A frame that carries only its newest events (--max-update-events) still
// accounts for every event since the client's previous frame: each of them
// is timed, from its own accept time.
func TestRecordTimesEveryEventAFrameAccountsFor(t *testing.T) {
	saved, savedExact := ackTimes, exactLatency
	defer func() { ackTimes, exactLatency = saved, savedExact }()
	ackTimes = &acks{at: make([]atomic.Int64, 100)}
	exactLatency = true
	now := time.Now()
	for seq := uint64(1); seq <= 20; seq++ {
		// Sequence 20 was accepted 1ms ago, sequence 1 20ms ago.
		ackTimes.set(seq, now.Add(-time.Duration(21-seq)*time.Millisecond))
	}
	c := &client{}
	c.record([]byte(`{"type":"snapshot","seq":5,"counts":{},"events":[{"seq":5}]}`), now, true)
	if c.hist != nil {
		t.Fatalf("the first frame is the client's starting point, timed nothing: %v", c.hist)
	}
	c.record([]byte(`{"type":"update","seq":15,"counts":{},"events":[{"seq":14},{"seq":15}]}`), now, true)
	var n uint32
	oldest := -1 // the highest bucket timed
	for i, v := range c.hist {
		n += v
		if v > 0 {
			oldest = i
		}
	}
	if n != 10 {
		t.Fatalf("timed %d events, want the 10 of sequences 6 to 15", n)
	}
	if got, want := oldest, bucketOf(15*time.Millisecond); got != want {
		t.Fatalf("oldest latency in bucket %d, want %d (sequence 6, accepted 15ms ago)", got, want)
	}
}

// Bucket i holds the latencies above bucket i-1's upper bound up to its own.
func TestBucketOf(t *testing.T) {
	if got := bucketOf(0); got != 0 {
		t.Errorf("bucketOf(0) = %d, want 0", got)
	}
	for i := range numBuckets - 1 {
		if got := bucketOf(bucketTop(i)); got != i {
			t.Errorf("bucketOf(top of %d) = %d", i, got)
		}
		if got := bucketOf(bucketTop(i) + 1); got != i+1 {
			t.Errorf("bucketOf(just over top of %d) = %d", i, got)
		}
	}
	if got := bucketOf(time.Hour); got != numBuckets-1 {
		t.Errorf("bucketOf(1h) = %d, want the last bucket", got)
	}
	// Walking from any bucket finds the same one as the search.
	for _, d := range []time.Duration{0, 10 * time.Microsecond, 15 * time.Millisecond, 150 * time.Millisecond, time.Hour} {
		for _, from := range []int{-1, 0, 50, 200, numBuckets - 1} {
			if got, want := bucketNear(d, from), bucketOf(d); got != want {
				t.Errorf("bucketNear(%v, %d) = %d, want %d", d, from, got, want)
			}
		}
	}
}
