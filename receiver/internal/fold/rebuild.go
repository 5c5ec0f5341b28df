package fold

import (
	"context"
	"time"

	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go/jetstream"
)

// rebuildSeen writes the seen keys of the stream's messages from..to again
// from their message ids, in the background, after Redis lost them: until
// it is done, a retry of an id older than the stream's duplicate window is
// not known as a duplicate. Later messages get theirs from the fold.
func (f *Fold) rebuildSeen(ctx context.Context, from, to uint64) {
	if from == 0 {
		from = 1
	}
	if to < from {
		return
	}
	f.bg.Go(func() {
		f.rebuilding.Lock()
		defer f.rebuilding.Unlock()
		start := time.Now()
		n, err := f.RebuildSeen(ctx, from, to)
		if err != nil {
			f.log.Warn("seen keys not all rebuilt from the stream", "from", from, "to", to, "rebuilt", n, "err", err)
			return
		}
		f.log.Info("rebuilt seen keys from the stream", "from", from, "to", to, "keys", n, "took", time.Since(start).Round(time.Millisecond))
	})
}

// RebuildSeen writes the seen keys of the stream's messages from..to, and
// returns how many it wrote.
func (f *Fold) RebuildSeen(ctx context.Context, from, to uint64) (int, error) {
	st, err := f.js.Stream(ctx, task.StreamName)
	if err != nil {
		return 0, err
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
	})
	if err != nil {
		return 0, err
	}
	n := 0
	next := from
	evs := make([]Event, 0, 1000)
	flush := func() error {
		err := f.call(ctx, func(ctx context.Context) error { return f.proj.writeSeen(ctx, evs, f.opts.SeenTTL, time.Now()) })
		for _, ev := range evs {
			if ev.MsgID != "" {
				n++
			}
		}
		evs = evs[:0]
		return err
	}
	for {
		batch, err := cons.Fetch(int(min(1000, to-next+1)), jetstream.FetchMaxWait(f.opts.Timeout))
		if err != nil {
			return n, err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			evs = f.take(evs, m)
			if len(evs) > 0 {
				next = evs[len(evs)-1].Seq + 1
			}
			if len(evs) > 0 && evs[len(evs)-1].Seq >= to {
				if err := flush(); err != nil {
					return n, err
				}
				f.m.seenRebuilt.Add(float64(n))
				return n, nil
			}
		}
		if err := batch.Error(); err != nil {
			return n, err
		}
		if err := flush(); err != nil {
			return n, err
		}
		if got == 0 {
			f.m.seenRebuilt.Add(float64(n))
			return n, nil // the stream holds nothing more
		}
	}
}
