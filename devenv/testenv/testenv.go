// Package testenv starts the real servers hookpipe's tests talk to: an
// embedded nats-server with JetStream on a free port, and Redis, either the
// one at REDIS_URL or a redis-server process of the test's own.
//
// Everything it starts is stopped by t.Cleanup; nothing is mocked.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/proc"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// JetStream connects to the NATS server at url for the test's own look at
// the stream; the connection is closed when the test ends.
func JetStream(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// NATS starts an embedded nats-server with JetStream stored in a temporary
// folder, on a free port of 127.0.0.1. It is shut down when the test ends.
func NATS(t testing.TB) *server.Server {
	t.Helper()
	return StartNATS(t, -1, t.TempDir())
}

// StartNATS starts an embedded nats-server on port (-1 for a free one) with
// JetStream in storeDir. Tests that restart NATS call it again with the
// port and folder of the server they shut down.
func StartNATS(t testing.TB, port int, storeDir string) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      port,
		JetStream: true,
		StoreDir:  storeDir,
		NoLog:     true,
		NoSigs:    true,
	}
	var s *server.Server
	var err error
	// A restarted server may find its port still held for a moment.
	for range 50 {
		if s, err = server.NewServer(opts); err != nil {
			t.Fatalf("testenv: nats server: %v", err)
		}
		go s.Start()
		if s.ReadyForConnections(5 * time.Second) {
			break
		}
		s.Shutdown()
		s = nil
		time.Sleep(100 * time.Millisecond)
	}
	if s == nil {
		t.Fatalf("testenv: nats server on port %d not ready", port)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// Port returns the client port of a running nats-server.
func Port(s *server.Server) int {
	return s.Addr().(*net.TCPAddr).Port
}

var prefixSeq atomic.Int64

// KeyPrefix returns a Redis key prefix no other test of this run uses.
func KeyPrefix(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_", "{", "", "}", "").Replace(t.Name())
	return fmt.Sprintf("test:%s:%d:%d:", name, os.Getpid(), prefixSeq.Add(1))
}

var (
	sharedOnce sync.Once
	sharedURL  string
	sharedErr  error
)

// Redis returns the URL of a real Redis server and a key prefix unique to
// this test. It uses REDIS_URL (default redisconn.DefaultURL) when that
// answers and otherwise starts one redis-server from PATH for the whole test
// binary. The test fails when neither is possible.
func Redis(t testing.TB) (url, prefix string) {
	t.Helper()
	sharedOnce.Do(func() {
		url := os.Getenv("REDIS_URL")
		if url == "" {
			url = redisconn.DefaultURL
		}
		if Ping(url) == nil {
			sharedURL = url
			return
		}
		// Outlives the first test on purpose: it serves the whole binary and
		// dies with it (see startRedis).
		dir, err := os.MkdirTemp("", "hookpipe-redis")
		if err == nil {
			var p *RedisProcess
			if p, err = startRedis(dir, 0); err == nil {
				sharedURL = p.URL()
				return
			}
		}
		if err != nil {
			sharedErr = fmt.Errorf("no Redis at %s and %w", url, err)
			return
		}
	})
	if sharedErr != nil {
		t.Fatalf("testenv: %v", sharedErr)
	}
	return sharedURL, KeyPrefix(t)
}

// Ping reports whether a Redis server answers at url.
func Ping(url string) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	opt.DialTimeout = time.Second
	opt.MaxRetries = -1
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// RedisProcess is a redis-server started by a test, for tests that stop
// and restart Redis under load.
type RedisProcess struct {
	Port int
	dir  string
	cmd  *exec.Cmd
}

// StartRedis starts a redis-server of the test's own on a free port, and
// stops it when the test ends.
func StartRedis(t testing.TB) *RedisProcess {
	t.Helper()
	p, err := startRedis(t.TempDir(), 0)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(p.Stop)
	return p
}

// URL returns the redis:// URL of the process.
func (p *RedisProcess) URL() string { return "redis://127.0.0.1:" + strconv.Itoa(p.Port) }

// Stop kills the server at once, as a crash would. Data is kept only in
// memory, so a restarted server starts empty unless the test saved it.
func (p *RedisProcess) Stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		p.cmd = nil
	}
}

// Restart starts the server again on the same port, with the data of its
// append-only file, as after a crash of a durable Redis.
func (p *RedisProcess) Restart(t testing.TB) {
	t.Helper()
	np, err := startRedis(p.dir, p.Port)
	if err != nil {
		t.Fatalf("testenv: restart redis: %v", err)
	}
	p.cmd = np.cmd
}

// RestartEmpty kills the server and starts it again on the same port with
// nothing: as a Redis that keeps nothing on disk comes back from a crash.
func (p *RedisProcess) RestartEmpty(t testing.TB) {
	t.Helper()
	p.Stop()
	if err := os.RemoveAll(filepath.Join(p.dir, "appendonlydir")); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	p.Restart(t)
}

// Client returns a go-redis client of the process, closed when the test
// ends.
func (p *RedisProcess) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(p.Port)})
	t.Cleanup(func() { c.Close() })
	return c
}

func startRedis(dir string, port int) (*RedisProcess, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("no redis-server on PATH: %w", err)
	}
	var lastErr error
	for range 20 {
		pt := port
		if pt == 0 {
			if pt, err = proc.FreePort("127.0.0.1"); err != nil {
				return nil, err
			}
		}
		cmd := exec.Command(bin, "--port", strconv.Itoa(pt), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "yes", "--appendfsync", "always",
			"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
		// Dies with the test binary even when it is killed.
		cmd.SysProcAttr = proc.ChildAttr()
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		p := &RedisProcess{Port: pt, dir: dir, cmd: cmd}
		for range 100 {
			if Ping(p.URL()) == nil {
				return p, nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.Stop()
		lastErr = fmt.Errorf("redis-server on port %d did not answer", pt)
	}
	return nil, lastErr
}

// ReadyTimeout is how long a server a test started may take to answer that
// it is ready. It is generous: on a machine whose cores are busy with
// other tests, a start that takes a second when quiet can take many.
const ReadyTimeout = time.Minute

// Eventually polls cond every 10 ms until it holds, and fails the test with
// msg when it still does not after timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
