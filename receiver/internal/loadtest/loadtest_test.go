package loadtest_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/receiver/internal/loadtest"
	"github.com/hookpipe/hookpipe/receiver/internal/service"
)

// sample is hey v0.1.5's summary, which doubles its percent signs.
const sample = `Summary:
  Total:	1.2345 secs
  Requests/sec:	8100.1234

Latency distribution:
  10%% in 0.0010 secs
  50%% in 0.0050 secs
  99%% in 0.0200 secs

Status code distribution:
  [200]	9990 responses
  [503]	5 responses

Error distribution:
  [5]	Post "http://127.0.0.1:1/": dial tcp: connection refused
`

func TestParse(t *testing.T) {
	r, err := loadtest.Parse(sample)
	if err != nil {
		t.Fatal(err)
	}
	if r.PerSecond != 8100.1234 || r.Statuses[200] != 9990 || r.Statuses[503] != 5 || r.Errors != 5 || r.Requests != 10000 {
		t.Fatalf("got %+v", r)
	}
	if r.P50.Milliseconds() != 5 || r.P99.Milliseconds() != 20 {
		t.Fatalf("p50 %v p99 %v, want 5ms and 20ms", r.P50, r.P99)
	}
	if _, err := loadtest.Parse("nothing"); err == nil {
		t.Fatal("Parse accepted output without a summary")
	}
}

// TestHeyCountsEqualRedis runs hey against the real receiver and checks
// that Redis counted exactly the requests hey saw answered 200.
func TestHeyCountsEqualRedis(t *testing.T) {
	hey, err := loadtest.FindHey()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ns := testenv.NATS(t)
	redisURL, prefix := testenv.Redis(t)
	m := service.NewMain()
	m.Config.Addr = "127.0.0.1:0"
	m.Config.NATS.URL, m.Config.Redis.URL, m.Config.KeyPrefix = ns.ClientURL(), redisURL, prefix
	m.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	base := strings.TrimSuffix(m.URL(), m.Config.Path)
	testenv.Eventually(t, testenv.ReadyTimeout, func() bool {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, "receiver not ready")
	res, err := loadtest.Hey(ctx, hey, m.URL(), 3000, 20, loadtest.Body)
	if err != nil {
		t.Fatal(err)
	}
	c, err := loadtest.Counts(ctx, ns.ClientURL(), redisURL, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if res.Statuses[200] == 0 || c.Total() != int64(res.Statuses[200]) {
		t.Fatalf("hey saw %d answered 200 (%s); Redis counted %d", res.Statuses[200], res.Summary(), c.Total())
	}
}
