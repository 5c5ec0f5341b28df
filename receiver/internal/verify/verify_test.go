package verify_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/natsconn"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/receiver/internal/service"
	"github.com/hookpipe/hookpipe/receiver/internal/verify"
	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

func TestVerifyFailsOnACorruptedCountAndPassesAfterRepair(t *testing.T) {
	ns := testenv.NATS(t)
	url, prefix := testenv.Redis(t)
	m := service.NewMain()
	m.Config.Addr = "127.0.0.1:0"
	m.Config.NATS.URL, m.Config.Redis.URL, m.Config.KeyPrefix = ns.ClientURL(), url, prefix
	m.Log = slog.New(slog.DiscardHandler)
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	var last uint64
	for i := range 60 {
		tk := task.Task{BatchID: fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i%3), ID: int64(i), Owner: "Ann", Priority: task.Priorities[i%4]}
		testenv.Eventually(t, 10*time.Second, func() bool {
			req, _ := http.NewRequest(http.MethodPost, m.URL(), bytes.NewReader(tk.Encode()))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(task.HeaderID, fmt.Sprintf("msg_%d", i))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			last = task.ParseAnswer(b).Seq
			return res.StatusCode == 200
		}, "task %d not accepted", i)
	}
	// A message that did not come through a receiver: the fold and verify
	// skip it alike.
	ack, err := testenv.JetStream(t, ns.ClientURL()).Publish(context.Background(), task.Priorities[3].Subject(), []byte("not a task"))
	if err != nil {
		t.Fatal(err)
	}
	last = ack.Sequence
	opt, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	keys := task.Keys{Prefix: prefix}
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, w, ok, err := redisconn.ReadCounts(context.Background(), rdb, keys)
		return err == nil && ok && w == last
	}, "not folded up to %d", last)

	run := func(repair bool) (string, error) {
		v := verify.NewMain()
		v.Config.NATS = natsconn.Options{URL: ns.ClientURL()}
		v.Config.Redis = redisconn.Options{URL: url}
		v.Config.KeyPrefix = prefix
		v.Config.Repair = repair
		var out bytes.Buffer
		v.Out = &out
		v.Log = slog.New(slog.DiscardHandler)
		err := v.Run(context.Background())
		return out.String(), err
	}
	if out, err := run(false); err != nil || !strings.Contains(out, "OK:") || !strings.Contains(out, "skipped 1 stored message") {
		t.Fatalf("verify of a healthy Redis, one stored message not a task: %v\n%s", err, out)
	}
	rdb.HIncrBy(context.Background(), keys.Counts(), "Low", 5)
	rdb.HIncrBy(context.Background(), keys.Batch("00000000-0000-4000-8000-000000000001"), "Major", -2)
	out, err := run(false)
	if !errors.Is(err, verify.ErrDifferent) || !strings.Contains(out, "+5") || !strings.Contains(out, "1 differ") {
		t.Fatalf("verify of a corrupted count: %v\n%s", err, out)
	}
	if out, err := run(true); err != nil || !strings.Contains(out, "repaired") || !strings.HasSuffix(strings.TrimSpace(out), "as of sequence 61") {
		t.Fatalf("verify --repair: %v\n%s", err, out)
	}
	if out, err := run(false); err != nil {
		t.Fatalf("verify after the repair: %v\n%s", err, out)
	}
}
