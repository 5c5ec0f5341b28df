package send

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Summary totals the results of one batch.
type Summary struct {
	BatchID string `json:"batchid"`
	// Size is the number of tasks in the batch.
	Size int `json:"size"`
	// Sent counts tasks for which at least one request was made.
	Sent       int `json:"sent"`
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Failed     int `json:"failed"`
	// Cancelled counts tasks stopped before an answer or never started.
	Cancelled int `json:"cancelled"`
	// Retries counts attempts after the first, over all tasks.
	Retries  int           `json:"retries"`
	Duration time.Duration `json:"duration_ns"`
}

// Add counts one result.
func (s *Summary) Add(r Result) {
	if r.Attempts > 0 {
		s.Sent++
	}
	s.Retries += r.Retries()
	switch r.Outcome {
	case Accepted:
		s.Accepted++
	case Duplicate:
		s.Duplicates++
	case Failed:
		s.Failed++
	case Cancelled:
		s.Cancelled++
	}
}

// String is the summary line printed at the end of a batch.
func (s Summary) String() string {
	line := fmt.Sprintf("batch %s: %d tasks, %d sent, %d accepted, %d duplicates, %d failed, %d retries, in %v",
		s.BatchID, s.Size, s.Sent, s.Accepted, s.Duplicates, s.Failed, s.Retries, s.Duration.Round(time.Millisecond))
	if s.Cancelled > 0 {
		line += fmt.Sprintf(" (%d cancelled)", s.Cancelled)
	}
	return line
}

// Gap returns the pause before dispatching delivery i (i >= 1) after
// dispatching delivery i-1.
type Gap func(i int) time.Duration

// Every returns a Gap of d between all deliveries, the tutorial's wait.
func Every(d time.Duration) Gap { return func(int) time.Duration { return d } }

// SendBatch delivers ds in order, pausing gap(i) between dispatches and
// keeping within the sender's concurrency and rate limits. It calls
// onResult, one call at a time, as each delivery ends (in completion
// order, which is dispatch order when Concurrency is 1) and returns the
// totals. When ctx ends, deliveries not yet started are reported Cancelled;
// none is left out.
func (s *Sender) SendBatch(ctx context.Context, batchID string, ds []Delivery, gap Gap, onResult func(i int, r Result)) Summary {
	i := 0
	return s.SendStream(ctx, batchID, len(ds), func() Delivery { i++; return ds[i-1] }, gap, onResult)
}

// SendStream is SendBatch over n deliveries that next makes one at a time,
// in order, as they are sent (or reported cancelled), so that a batch is
// never all in memory.
func (s *Sender) SendStream(ctx context.Context, batchID string, n int, next func() Delivery, gap Gap, onResult func(i int, r Result)) Summary {
	sum := Summary{BatchID: batchID, Size: n}
	start := time.Now()
	var mu sync.Mutex
	report := func(i int, r Result) {
		mu.Lock()
		defer mu.Unlock()
		sum.Add(r)
		if onResult != nil {
			onResult(i, r)
		}
	}
	var wg sync.WaitGroup
	for i := range n {
		if i > 0 && gap != nil {
			if g := gap(i); g > 0 && !sleep(ctx, g) {
				cancelRest(ctx, i, n, next, report)
				break
			}
		}
		if err := s.Acquire(ctx); err != nil {
			cancelRest(ctx, i, n, next, report)
			break
		}
		d := next()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The result is reported before the slot is freed, so that with
			// one slot results come in dispatch order.
			defer s.release()
			report(i, s.deliver(ctx, d))
		}()
	}
	wg.Wait()
	sum.Duration = time.Since(start)
	return sum
}

func cancelRest(ctx context.Context, from, n int, next func() Delivery, report func(int, Result)) {
	err := fmt.Errorf("not sent: %w", context.Cause(ctx))
	for j := from; j < n; j++ {
		report(j, Result{Delivery: next(), Outcome: Cancelled, Err: err})
	}
}

// sleep waits for d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
