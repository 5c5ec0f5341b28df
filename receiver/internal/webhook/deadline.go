package webhook

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadline is the context of one request's Redis and stream work: it ends
// at a fixed time. Unlike context.WithTimeout, which allocates a context,
// a timer and a channel per request, it is reused: a request done before
// its deadline stops the timer and puts the deadline back in the pool with
// its channel still open. Nothing may keep it after release.
type deadline struct {
	at    time.Time
	done  chan struct{}
	timer *time.Timer
	ended atomic.Bool
}

var deadlines sync.Pool // of *deadline

func newDeadline(d time.Duration) *deadline {
	dl, _ := deadlines.Get().(*deadline)
	if dl == nil {
		dl = &deadline{done: make(chan struct{})}
		dl.timer = time.AfterFunc(d, dl.end)
	} else {
		dl.timer.Reset(d)
	}
	dl.at = time.Now().Add(d)
	return dl
}

func (dl *deadline) end() {
	dl.ended.Store(true)
	close(dl.done)
}

// release ends the request's use of dl. One that ended (its channel is
// closed) is left to the garbage collector.
func (dl *deadline) release() {
	if dl.timer.Stop() {
		deadlines.Put(dl)
	}
}

func (dl *deadline) Deadline() (time.Time, bool) { return dl.at, true }
func (dl *deadline) Done() <-chan struct{}       { return dl.done }
func (dl *deadline) Value(any) any               { return nil }

func (dl *deadline) Err() error {
	if dl.ended.Load() {
		return context.DeadlineExceeded
	}
	return nil
}
