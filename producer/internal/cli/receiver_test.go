package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/hookpipe/hookpipe/devenv/proc"
	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/task"
)

// workspaceRoot finds the folder of go.work, where the receiver is built.
func workspaceRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOWORK: %w", err)
	}
	gowork := strings.TrimSpace(string(out))
	if gowork == "" || gowork == "off" {
		return "", fmt.Errorf("not in a Go workspace")
	}
	return filepath.Dir(gowork), nil
}

// receiver is a real receiver process with real NATS and Redis behind it.
type receiver struct {
	url    string // the webhook endpoint
	addr   string
	bin    string
	env    []string
	keys   task.Keys
	rdb    *redis.Client
	js     jetstream.JetStream
	cmd    *exec.Cmd
	output *syncBuffer
}

type receiverOptions struct {
	secret string
	// addr, when set, is the address to listen on; otherwise a free port.
	addr string
	// noStart leaves the process to be started by start().
	noStart bool
	// redisURL, when set, is the Redis to use instead of testenv.Redis.
	redisURL string
}

func newReceiver(t testing.TB, o receiverOptions) *receiver {
	t.Helper()
	bin := testenv.Binary(t, "github.com/hookpipe/hookpipe/receiver")
	ns := testenv.NATS(t)
	redisURL, prefix := o.redisURL, testenv.KeyPrefix(t)
	if redisURL == "" {
		redisURL, prefix = testenv.Redis(t)
	}
	addr := o.addr
	if addr == "" {
		port, err := proc.FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		addr = "127.0.0.1:" + strconv.Itoa(port)
	}
	opt, _ := redis.ParseURL(redisURL)
	opt.MaxRetries = -1
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	// Without o.secret the variable is left unset, which is unsigned: set
	// but blank, it would stop the receiver.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "HOOKPIPE_WEBHOOK_SECRET=") })
	env = append(env, "NATS_URL="+ns.ClientURL(), "REDIS_URL="+redisURL, "HOOKPIPE_KEY_PREFIX="+prefix, "HOOKPIPE_LOG_FORMAT=text")
	if o.secret != "" {
		env = append(env, "HOOKPIPE_WEBHOOK_SECRET="+o.secret)
	}
	r := &receiver{
		url:    "http://" + addr + "/consumetasks",
		addr:   addr,
		bin:    bin,
		env:    env,
		keys:   task.Keys{Prefix: prefix},
		rdb:    rdb,
		js:     testenv.JetStream(t, ns.ClientURL()),
		output: &syncBuffer{},
	}
	t.Cleanup(r.stop)
	if !o.noStart {
		r.start(t)
	}
	return r
}

func (r *receiver) start(t testing.TB) {
	t.Helper()
	r.cmd = exec.Command(r.bin, "--addr", r.addr)
	r.cmd.Env = r.env
	r.cmd.Stdout = r.output
	r.cmd.Stderr = r.output
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start receiver: %v", err)
	}
	testenv.Eventually(t, testenv.ReadyTimeout, func() bool {
		res, err := http.Get("http://" + r.addr + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, "receiver at %s not ready; its output:\n%s", r.addr, r.output)
}

func (r *receiver) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// counts reads the receiver's totals from Redis, once its fold has
// reached the end of the stream.
func (r *receiver) counts(t testing.TB) task.Counts {
	t.Helper()
	r.settled(t)
	return r.hashCounts(t, r.keys.Counts())
}

// settled waits until Redis's watermark is the stream's last sequence.
func (r *receiver) settled(t testing.TB) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() bool {
		st, err := r.js.Stream(context.Background(), task.StreamName)
		if err != nil {
			return errors.Is(err, jetstream.ErrStreamNotFound) // nothing stored yet
		}
		info, err := st.Info(context.Background())
		if err != nil {
			return false
		}
		_, w, ok, err := redisconn.ReadCounts(context.Background(), r.rdb, r.keys)
		return err == nil && ok && w == info.State.LastSeq
	}, "the fold did not reach the stream's end")
}

// batch reads one batch's totals and its recorded size.
func (r *receiver) batch(t testing.TB, id string) (task.Counts, int64) {
	t.Helper()
	r.settled(t)
	c := r.hashCounts(t, r.keys.Batch(id))
	size, _ := r.rdb.HGet(context.Background(), r.keys.Batch(id), task.BatchSizeField).Int64()
	return c, size
}

func (r *receiver) hashCounts(t testing.TB, key string) task.Counts {
	t.Helper()
	m, err := r.rdb.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	var c task.Counts
	for _, p := range task.Priorities {
		if v, ok := m[p.String()]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s %s = %q", key, p, v)
			}
			c[p.Index()] = n
		}
	}
	return c
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
