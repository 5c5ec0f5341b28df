package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hookpipe/hookpipe/devenv/proc"
	"github.com/hookpipe/hookpipe/relay/internal/relay"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/redis/go-redis/v9"
)

// serveRelay runs the relay with its usual configuration from the
// environment, as the child process.
func serveRelay() {
	cfg, err := relay.ParseConfig(nil, os.Getenv, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	raiseFileLimit()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGUSR1 collects garbage and returns it to the OS, so that the
	// bench reads the memory the relay holds rather than what it has not
	// collected yet.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			debug.FreeOSMemory()
		}
	}()
	s, err := relay.Open(cfg, cfg.Log.New(os.Stderr))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if path := os.Getenv(profileEnv); path != "" {
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// serveNATS runs a nats-server with JetStream, as the child process: in a
// process of its own it competes fairly for the CPU with the thousands of
// client goroutines of the load client.
func serveNATS(spec string) {
	port, dir, _ := strings.Cut(spec, " ")
	p, err := strconv.Atoi(port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad", natsEnv, spec)
		os.Exit(2)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: p, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "nats not ready")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	ns.Shutdown()
}

// startChild runs this program again with env added, dying with its parent.
func startChild(env ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = proc.ChildAttr()
	return cmd, cmd.Start()
}

func stopChild(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// raiseFileLimit lifts the soft limit of open files to the hard one: each
// client is a file descriptor.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func startRelay(ctx context.Context, o options) (*exec.Cmd, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd, err := startChild(
		serveEnv+"=1",
		"NATS_URL="+o.natsURL,
		"REDIS_URL="+o.redisURL,
		"HOOKPIPE_KEY_PREFIX="+o.prefix,
		"HOOKPIPE_RELAY_ADDR="+addr,
		"HOOKPIPE_RELAY_MAX_CONNS="+strconv.Itoa(o.clients+100),
		// Every client comes from 127.0.0.1.
		"HOOKPIPE_RELAY_MAX_CONNS_PER_IP="+strconv.Itoa(o.clients+100),
		"HOOKPIPE_RELAY_JOIN_BURST="+strconv.Itoa(o.clients+100),
		"HOOKPIPE_RELAY_JOIN_RATE=1000000",
		"HOOKPIPE_LOG_LEVEL=warn",
	)
	if err != nil {
		return nil, "", fmt.Errorf("start relay: %w", err)
	}
	base := "http://" + addr
	if err := waitReady(ctx, cmd, base, "relay"); err != nil {
		return nil, "", err
	}
	return cmd, base, nil
}

// startReceiver runs the receiver binary o.recvBin on the bench's NATS and
// Redis and returns it with the URL to post webhooks to, once it is ready.
func startReceiver(ctx context.Context, o options) (*exec.Cmd, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(o.recvBin)
	cmd.Env = append(os.Environ(),
		"NATS_URL="+o.natsURL,
		"REDIS_URL="+o.redisURL,
		"HOOKPIPE_KEY_PREFIX="+o.prefix,
		"HOOKPIPE_RECEIVER_ADDR="+addr,
		"HOOKPIPE_LOG_LEVEL=warn",
	)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = proc.ChildAttr()
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start receiver %s: %w", o.recvBin, err)
	}
	base := "http://" + addr
	if err := waitReady(ctx, cmd, base, "receiver"); err != nil {
		return nil, "", err
	}
	return cmd, base + "/consumetasks", nil
}

// waitReady waits for the child cmd serving at base to answer /readyz
// with 200, and stops it when it does not within 20 seconds.
func waitReady(ctx context.Context, cmd *exec.Cmd, base, name string) error {
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stopChild(cmd)
			return fmt.Errorf("%s did not become ready", name)
		}
		time.Sleep(50 * time.Millisecond) // polling for readiness
	}
}

// rssOf returns the resident memory of the child after a garbage
// collection, in bytes; 0 without one.
func rssOf(cmd *exec.Cmd) int64 {
	if cmd == nil {
		return 0
	}
	cmd.Process.Signal(syscall.SIGUSR1)
	time.Sleep(time.Second) // time for the collection, a pause not a condition
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuOf returns the CPU time the child used so far.
func cpuOf(cmd *exec.Cmd) time.Duration {
	if cmd == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func freePort() (int, error) { return proc.FreePort("127.0.0.1") }

func cleanKeys(rdb redis.UniversalClient, prefix string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}
