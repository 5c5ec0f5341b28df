package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go/jetstream"
)

// sumRates adds up a frame's rate buckets.
func sumRates(r *task.Rates) (n int64) {
	for _, b := range r.Counts {
		for _, c := range b {
			n += c
		}
	}
	return n
}

// A relay that starts reads the last five minutes of the stream again, so
// its first snapshot's rate buckets hold every event of them; when the
// stream no longer holds part of the window (retention removed the oldest
// events), the snapshot says from when it knows anything.
func TestRatesRebuiltFromTheStream(t *testing.T) {
	e := newEnv(t)
	e.publish(t, 50, 0)
	e.redisCounts(t) // folded: Redis's counts need none of the stream

	r := startRelay(t, e.config())
	f := dial(t, wsURL(r, ""), nil).firstFrame(t)
	if f.Rates == nil || len(f.Rates.Counts) != task.RateWindow || sumRates(f.Rates) != 50 || f.Rates.KnownFrom != 0 {
		t.Fatalf("snapshot's rates %+v, want %d buckets holding the 50 events, all known", f.Rates, task.RateWindow)
	}
	r.stop(t)

	// The oldest 30 events go, as retention would remove them.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, task.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(31)); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r = startRelay(t, e.config())
	f = dial(t, wsURL(r, ""), nil).firstFrame(t)
	if f.Rates == nil || sumRates(f.Rates) != 20 || f.Rates.KnownFrom != info.State.FirstTime.Unix() {
		t.Fatalf("snapshot's rates hold %d events known from %d, want the 20 left, known from %d (the stream's first event)",
			sumRates(f.Rates), f.Rates.KnownFrom, info.State.FirstTime.Unix())
	}
	if total := f.Counts.Total(); total != 50 {
		t.Errorf("counts total %d after the purge, want Redis's 50", total)
	}
}
