package webhook

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDeadlineEnds(t *testing.T) {
	dl := newDeadline(20 * time.Millisecond)
	if dl.Err() != nil {
		t.Fatalf("Err before the deadline: %v", dl.Err())
	}
	if at, ok := dl.Deadline(); !ok || time.Until(at) > 20*time.Millisecond {
		t.Fatalf("Deadline() = %v, %v", at, ok)
	}
	select {
	case <-dl.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("deadline never ended")
	}
	if !errors.Is(dl.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err after the deadline: %v", dl.Err())
	}
	dl.release()
	// A deadline that ended is not reused: the next one starts afresh.
	next := newDeadline(time.Hour)
	defer next.release()
	if next == dl || next.Err() != nil {
		t.Fatal("an ended deadline came back from the pool")
	}
	select {
	case <-next.Done():
		t.Fatal("a fresh deadline is done")
	default:
	}
}

func TestDeadlineReleasedEarlyIsReusable(t *testing.T) {
	dl := newDeadline(10 * time.Millisecond)
	dl.release()
	time.Sleep(30 * time.Millisecond) // past the first deadline: its timer must not fire
	select {
	case <-dl.Done():
		t.Fatal("a released deadline fired")
	default:
	}
	again := newDeadline(10 * time.Millisecond)
	defer again.release()
	select {
	case <-again.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a reused deadline never ended")
	}
}

func BenchmarkDeadline(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		dl := newDeadline(2 * time.Second)
		dl.release()
	}
}

func BenchmarkContextWithTimeout(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = ctx.Done() // as the waits on it do: the channel is made on demand
		cancel()
	}
}
