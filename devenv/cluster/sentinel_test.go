package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/task"
)

// TestSentinelMasterLoss runs a receiver on Redis behind three Sentinels
// (a master and a replica) and kills the master under load: the Sentinels
// promote the replica, the receiver follows them, and every acknowledged
// task is in the stream once and counted once. The master stays down: it
// is the last fault.
func TestSentinelMasterLoss(t *testing.T) {
	binDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	c := &Cluster{opts: Options{Out: testWriter{t}}}
	c.opts.setDefaults()
	c.opts.Out = testWriter{t}
	defer c.Close()

	var ports [5]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	redisNode := func(name string, port int, extra ...string) *Node {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return &Node{Name: name, Addr: addr(port), bin: "redis-server",
			args: append([]string{"--bind", host, "--port", strconv.Itoa(port), "--dir", d, "--appendonly", "yes", "--save", ""}, extra...)}
	}
	master := redisNode("redis-master", ports[0])
	replica := redisNode("redis-replica", ports[1], "--replicaof", host, strconv.Itoa(ports[0]))
	c.Redis = []*Node{master, replica}
	for _, n := range c.Redis {
		if err := c.spawn(n, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.waitRedis(ctx, n.Addr); err != nil {
			t.Fatal(err)
		}
	}
	url := ""
	for i, p := range ports[2:] {
		conf := filepath.Join(dir, "sentinel-"+strconv.Itoa(i+1)+".conf")
		body := fmt.Sprintf("port %d\nbind %s\nsentinel monitor hookpipe %s %d 2\nsentinel down-after-milliseconds hookpipe 1000\nsentinel failover-timeout hookpipe 5000\n",
			p, host, host, ports[0])
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		n := &Node{Name: "sentinel-" + strconv.Itoa(i+1), Addr: addr(p), bin: "redis-server", args: []string{conf, "--sentinel"}}
		c.Redis = append(c.Redis, n)
		if err := c.spawn(n, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.waitRedis(ctx, n.Addr); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			url = "redis://" + n.Addr + "?master_name=hookpipe"
		} else {
			url += "&addr=" + n.Addr
		}
	}

	ns := testenv.NATS(t)
	prefix := testenv.KeyPrefix(t)
	recv := testenv.Receiver(t, ns.ClientURL(), url, prefix, "HOOKPIPE_REDIS_MODE=sentinel")
	js := testenv.JetStream(t, ns.ClientURL())
	rdb, err := redisconn.New(redisconn.Options{URL: url, Mode: redisconn.ModeSentinel}, redisconn.Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	keys := task.Keys{Prefix: prefix}

	load := startSender(recv.URL, 100, 100*time.Millisecond) // about 1,000 a second, when the machine keeps up
	load.progress(t, "before the failover", 1000)
	f := load.mark("Sentinel master " + master.Name)
	master.Kill()
	load.progress(t, "after the master died", 1000)
	load.settle(t, ctx, f, js, rdb, keys)
	load.resume()
	load.close()
}

// testWriter sends the nodes' log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if os.Getenv("HOOKPIPE_TEST_LOG") != "" {
		w.t.Logf("%s", p)
	}
	return len(p), nil
}
