package counts

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/relay/internal/fanout"
	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

type sink struct {
	mu    sync.Mutex
	bases []fanout.Base
}

func (s *sink) Rebase(b fanout.Base) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bases = append(s.bases, b)
}

func (s *sink) last() (fanout.Base, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bases) == 0 {
		return fanout.Base{}, 0
	}
	return s.bases[len(s.bases)-1], len(s.bases)
}

func TestPollerReadsCountsAndWatermarkTogether(t *testing.T) {
	url, prefix := testenv.Redis(t)
	opt, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	keys := task.Keys{Prefix: prefix}
	defer rdb.Del(ctx, keys.Counts())
	s := &sink{}
	p := NewPoller(rdb, keys, s, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	if _, ok, err := p.Read(ctx); ok || err != nil {
		t.Fatalf("no counts hash: ok %v err %v, want no base", ok, err)
	}
	rdb.HSet(ctx, keys.Counts(), "Low", 3, "Critical", 1, task.WatermarkField, 9)
	b, ok, err := p.Read(ctx)
	if err != nil || !ok || b.Watermark != 9 || b.Counts != (task.Counts{3, 0, 0, 1}) {
		t.Fatalf("Read = %+v %v %v", b, ok, err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(runCtx); close(done) }()
	rdb.HSet(ctx, keys.Counts(), "Low", 4, task.WatermarkField, 10)
	testenv.Eventually(t, 5*time.Second, func() bool { b, _ := s.last(); return b.Watermark == 10 && b.Counts[0] == 4 }, "no rebase with the new counts")
	cancel()
	<-done
	if !p.Healthy() || p.Errors() != 0 {
		t.Fatalf("healthy %v errors %d", p.Healthy(), p.Errors())
	}
}

func TestPollerCancelledReadIsNoError(t *testing.T) {
	url, prefix := testenv.Redis(t)
	opt, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	p := NewPoller(rdb, task.Keys{Prefix: prefix}, &sink{}, time.Millisecond, slog.New(slog.DiscardHandler))
	if _, _, err := p.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := p.Read(ctx); err == nil {
		t.Fatal("a read under an ended context returned no error")
	}
	if !p.Healthy() || p.Errors() != 0 {
		t.Fatalf("a cancelled read counted against Redis: healthy %v errors %d", p.Healthy(), p.Errors())
	}
}
