package service_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/proc"
	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// privateEnv is a receiver on a NATS and a redis-server of the test's own,
// for faults that break them.
func privateEnv(t *testing.T) (*env, *testenv.RedisProcess) {
	t.Helper()
	ns := testenv.NATS(t)
	rp := testenv.StartRedis(t)
	return start(t, ns.ClientURL(), rp.URL(), testenv.KeyPrefix(t), nil), rp
}

// Redis loses everything under load, three ways; every id answered 200 is
// counted once, the counts heal to the stream's by themselves.
func TestRedisLossUnderLoad(t *testing.T) {
	for _, fault := range []struct {
		name string
		do   func(t *testing.T, rp *testenv.RedisProcess, rdb *redis.Client)
	}{
		{"Redis FLUSHALL", func(t *testing.T, _ *testenv.RedisProcess, rdb *redis.Client) {
			if err := rdb.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
		}},
		{"Redis restarted without persistence", func(t *testing.T, rp *testenv.RedisProcess, _ *redis.Client) {
			rp.RestartEmpty(t)
		}},
		{"Redis paused past the deadline", func(t *testing.T, _ *testenv.RedisProcess, rdb *redis.Client) {
			// Three seconds against the receiver's 500ms: lookups and runs
			// time out, and some may still run once Redis resumes.
			if err := rdb.Do(context.Background(), "CLIENT", "PAUSE", 3000, "ALL").Err(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second) // the pause itself, not an outcome
		}},
	} {
		t.Run(fault.name, func(t *testing.T) {
			e, rp := privateEnv(t)
			rdb := rp.Client(t)
			l := underLoad(t, []string{e.url}, "loss", 300, func(l *load) {
				testenv.Eventually(t, 10*time.Second, func() bool { return l.Accepted() >= 100 }, "no traffic accepted")
				fault.do(t, rp, rdb)
				n := l.Accepted()
				testenv.Eventually(t, 20*time.Second, func() bool { return l.Accepted() >= n+100 }, "no traffic accepted after the fault")
			})
			e.rdb = rdb
			checkExact(t, e, fault.name, l)
		})
	}
}

// A retry of a webhook accepted before Redis lost its keys, within the
// duplicate window, is a duplicate and counts nothing, whether the stream
// or the rebuilt seen key says so.
func TestRetryAfterRedisLostItsKeysIsADuplicate(t *testing.T) {
	e, rp := privateEnv(t)
	rdb := rp.Client(t)
	e.rdb = rdb
	body := sampleTask(5).Encode()
	first := e.post(t, "msg_before_the_loss", body, nil)
	if first.status != 200 {
		t.Fatalf("%d %s", first.status, first.body)
	}
	e.counts(t)
	rdb.FlushAll(context.Background())
	again := e.post(t, "msg_before_the_loss", body, nil)
	a := task.ParseAnswer([]byte(again.body))
	if again.status != 200 || a.Status != task.StatusDuplicate || a.Seq != task.ParseAnswer([]byte(first.body)).Seq {
		t.Fatalf("retry after the loss: %d %s, want 200 duplicate with the first sequence (%s)", again.status, again.body, first.body)
	}
	if r := e.post(t, "msg_before_the_loss", sampleTask(6).Encode(), nil); r.status != 409 {
		t.Fatalf("the id for another task after the loss: %d %s, want 409", r.status, r.body)
	}
	if got := e.counts(t).Total(); got != 1 {
		t.Fatalf("total %d, want 1", got)
	}
	// Once the fold has rebuilt the seen key, Redis answers it too.
	testenv.Eventually(t, 10*time.Second, func() bool {
		return rdb.Exists(context.Background(), e.keys.Seen("msg_before_the_loss")).Val() == 1
	}, "seen key not rebuilt")
	if r := e.post(t, "msg_before_the_loss", body, nil); !strings.Contains(r.body, "duplicate") {
		t.Fatalf("retry with the seen key rebuilt: %d %s", r.status, r.body)
	}
}

// Two receivers on one stream and one Redis, both folding, take the load
// in turns: counts exact.
func TestTwoReceiversFoldingTheSameStream(t *testing.T) {
	ns := testenv.NATS(t)
	url, prefix := testenv.Redis(t)
	a := start(t, ns.ClientURL(), url, prefix, nil)
	b := start(t, ns.ClientURL(), url, prefix, nil)
	l := underLoad(t, []string{a.url, b.url}, "two", 600, func(l *load) {
		testenv.Eventually(t, 20*time.Second, func() bool { return l.Accepted() >= 500 }, "no traffic accepted")
	})
	checkExact(t, a, "two receivers folding one stream", l)
}

// A receiver process killed with SIGKILL under load, and started again:
// what it answered 200 is in the stream once and counted once.
func TestReceiverKilledUnderLoad(t *testing.T) {
	bin := testenv.Binary(t, "github.com/hookpipe/hookpipe/receiver")
	ns := testenv.NATS(t)
	url, prefix := testenv.Redis(t)
	port, err := proc.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	startProc := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "NATS_URL="+ns.ClientURL(), "REDIS_URL="+url, "HOOKPIPE_KEY_PREFIX="+prefix,
			"HOOKPIPE_RECEIVER_ADDR="+addr, "HOOKPIPE_RECEIVER_TIMEOUT=500ms", "HOOKPIPE_LOG_LEVEL=warn")
		cmd.Stderr = logOut()
		cmd.SysProcAttr = proc.ChildAttr()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, testenv.ReadyTimeout, func() bool {
			res, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == 200
		}, "receiver process not ready")
		return cmd
	}
	cmd := startProc()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	l := underLoad(t, []string{"http://" + addr + task.ReceiverPath}, "killed", 300, func(l *load) {
		testenv.Eventually(t, 10*time.Second, func() bool { return l.Accepted() >= 100 }, "no traffic accepted")
		cmd.Process.Kill()
		cmd.Wait()
		n := l.Refused()
		testenv.Eventually(t, 10*time.Second, func() bool { return l.Refused() > n }, "no request met the dead receiver")
		cmd = startProc()
		n = l.Accepted()
		testenv.Eventually(t, 20*time.Second, func() bool { return l.Accepted() >= n+100 }, "no traffic accepted after the restart")
	})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	opt, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	checkExact(t, &env{js: js, rdb: rdb, keys: task.Keys{Prefix: prefix}}, "receiver SIGKILL", l)
}
