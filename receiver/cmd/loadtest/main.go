// Command loadtest load-tests the receiver with hey.
//
//	loadtest run     hey against a running receiver; checks that Redis
//	                 counted exactly the requests answered 200
//	loadtest bench   hey against a receiver it starts (Redis and JetStream
//	                 writes on) and against a bare fasthttp handler, in the
//	                 same run with the same settings, and prints the ratio
//	loadtest cluster hey against the receivers of a NATS and Redis cluster and
//	                 of the same topology on one node each, same run, with
//	                 the ratio; -relaybench adds the relay bench on both
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hookpipe/hookpipe/devenv/proc"
	"github.com/hookpipe/hookpipe/plumbing/natsconn"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/receiver/internal/loadtest"
	"github.com/hookpipe/hookpipe/receiver/internal/service"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/redis/go-redis/v9"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if len(os.Args) == 4 && os.Args[1] == natsServerCmd {
		if err := serveNATS(ctx, os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) < 2 || !slices.Contains([]string{"run", "bench", "cluster"}, os.Args[1]) {
		fmt.Fprintln(os.Stderr, "usage: loadtest run|bench|cluster [flags]   (loadtest run --help for the flags)")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(ctx, os.Args[2:])
	case "bench":
		err = bench(ctx, os.Args[2:])
	case "cluster":
		err = benchCluster(ctx, os.Args[2:])
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("loadtest run", flag.ContinueOnError)
	url := fs.String("url", env("WEBHOOK_RECEIVER_URL", task.DefaultReceiverURL()), "receiver URL ($WEBHOOK_RECEIVER_URL)")
	redisURL := fs.String("redis-url", env("REDIS_URL", redisconn.DefaultURL), "the receiver's Redis ($REDIS_URL)")
	natsURL := fs.String("nats-url", env("NATS_URL", natsconn.DefaultURL), "the receiver's NATS, whose stream the counts must reach ($NATS_URL)")
	prefix := fs.String("key-prefix", env("HOOKPIPE_KEY_PREFIX", task.DefaultKeyPrefix), "the receiver's key prefix ($HOOKPIPE_KEY_PREFIX)")
	n := fs.Int("n", 50000, "requests")
	c := fs.Int("c", 50, "concurrent connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	hey, err := loadtest.FindHey()
	if err != nil {
		return err
	}
	before, err := loadtest.Counts(ctx, *natsURL, *redisURL, *prefix)
	if err != nil {
		return err
	}
	fmt.Printf("hey -n %d -c %d -m POST -T application/json %s\n", *n, *c, *url)
	res, err := loadtest.Hey(ctx, hey, *url, *n, *c, loadtest.Body)
	if err != nil {
		return err
	}
	fmt.Print(res.Output)
	after, err := loadtest.Counts(ctx, *natsURL, *redisURL, *prefix)
	if err != nil {
		return err
	}
	added := after.Total() - before.Total()
	fmt.Printf("\nRedis total before %d, after %d: added %d; hey got %d answered 200\n", before.Total(), after.Total(), added, res.Statuses[200])
	if added != int64(res.Statuses[200]) {
		return fmt.Errorf("MISMATCH: Redis added %d, hey saw %d answered 200 (another sender may be running)", added, res.Statuses[200])
	}
	fmt.Println("OK: every 200 is counted once")
	return nil
}

func bench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("loadtest bench", flag.ContinueOnError)
	n := fs.Int("n", 50000, "requests per run")
	c := fs.Int("c", 50, "concurrent connections")
	redisURL := fs.String("redis-url", env("REDIS_URL", redisconn.DefaultURL), "Redis to count in, under a private key prefix that is deleted afterwards ($REDIS_URL)")
	rounds := fs.Int("rounds", 3, "alternating bare and receiver runs; the ratio reported is the median of the rounds'")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the receiver's runs to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	hey, err := loadtest.FindHey()
	if err != nil {
		return err
	}
	if err := pingRedis(ctx, *redisURL); err != nil {
		return fmt.Errorf("no Redis at %s (start one, or make run-all): %w", *redisURL, err)
	}

	// A private NATS server, so the bench's events stay out of any real
	// TASKS stream, in a process of its own as in production: embedded in
	// this one, its heap would be scanned by the receiver's garbage
	// collector.
	natsURL, natsPID, stopNATS, err := startNATSProcess(ctx)
	if err != nil {
		return err
	}
	defer stopNATS()

	prefix := "bench:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	m := service.NewMain()
	m.Config.Addr = "127.0.0.1:0"
	m.Config.NATS.URL, m.Config.Redis.URL, m.Config.KeyPrefix = natsURL, *redisURL, prefix
	m.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := m.Run(ctx); err != nil {
		return err
	}
	defer m.Close()
	defer cleanup(*redisURL, prefix)
	bareURL, stopBare, err := loadtest.Bare()
	if err != nil {
		return err
	}
	defer stopBare()

	// Wait for the stream, then warm both up.
	for deadline := time.Now().Add(10 * time.Second); ; {
		r, err := loadtest.Hey(ctx, hey, m.URL(), 200, 10, loadtest.Body)
		if err == nil && r.Statuses[200] == 200 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("receiver not accepting: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	loadtest.Hey(ctx, hey, bareURL, 2000, *c, loadtest.Body)

	fmt.Printf("hey -n %d -c %d, body %d bytes, %d rounds, %s\n\n", *n, *c, len(loadtest.Body), *rounds, time.Now().Format(time.RFC3339))
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var ratios []float64
	for round := 1; round <= *rounds; round++ {
		cpu0 := cpuNow(ctx, *redisURL, natsPID)
		bare, err := loadtest.Hey(ctx, hey, bareURL, *n, *c, loadtest.Body)
		if err != nil {
			return err
		}
		cpu1 := cpuNow(ctx, *redisURL, natsPID)
		before, err := loadtest.Counts(ctx, natsURL, *redisURL, prefix)
		if err != nil {
			return err
		}
		lag0 := loadtest.Histogram(m.Metrics.Registry, "hookpipe_fold_lag_seconds")
		cpu2 := cpuNow(ctx, *redisURL, natsPID)
		recv, err := loadtest.Hey(ctx, hey, m.URL(), *n, *c, loadtest.Body)
		if err != nil {
			return err
		}
		// Once the fold has counted the run, so that its work is in the
		// receiver's CPU too.
		after, err := loadtest.Counts(ctx, natsURL, *redisURL, prefix)
		if err != nil {
			return err
		}
		cpu3 := cpuNow(ctx, *redisURL, natsPID)
		lag := loadtest.Histogram(m.Metrics.Registry, "hookpipe_fold_lag_seconds").Sub(lag0)
		ratio := recv.PerSecond / bare.PerSecond
		ratios = append(ratios, ratio)
		fmt.Printf("round %d  bare fasthttp  %s\n", round, bare.Summary())
		fmt.Printf("          CPU per request: %s\n", cpu1.sub(cpu0).perRequest(bare, *n))
		fmt.Printf("round %d  receiver       %s\n", round, recv.Summary())
		fmt.Printf("          CPU per request: %s (the receiver's includes its fold)\n", cpu3.sub(cpu2).perRequest(recv, *n))
		fmt.Printf("          fold lag, stream ack to counted: p50 %v p99 %v\n", lag.Quantile(0.5), lag.Quantile(0.99))
		added := after.Total() - before.Total()
		fmt.Printf("round %d  ratio %.1f%%; Redis counted %d, hey saw %d answered 200\n\n", round, 100*ratio, added, recv.Statuses[200])
		if added != int64(recv.Statuses[200]) {
			return fmt.Errorf("MISMATCH between Redis and hey")
		}
	}
	slices.Sort(ratios)
	fmt.Printf("receiver/bare throughput: median %.1f%% over %d rounds (lowest %.1f%%, highest %.1f%%)\n",
		100*ratios[len(ratios)/2], len(ratios), 100*ratios[0], 100*ratios[len(ratios)-1])
	return nil
}

func pingRedis(ctx context.Context, url string) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	opt.MaxRetries = -1
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	return rdb.Ping(ctx).Err()
}

func cleanup(url, prefix string) {
	opt, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	keys, _ := rdb.Keys(ctx, prefix+"*").Result()
	if len(keys) > 0 {
		rdb.Del(ctx, keys...)
	}
}

// natsServerCmd is the hidden subcommand the bench starts itself with to
// run its NATS server in another process.
const natsServerCmd = "nats-server"

func serveNATS(ctx context.Context, port, dir string) error {
	p, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	ns, err := server.NewServer(&server.Options{Host: task.LoopbackHost, Port: p, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("nats did not start")
	}
	<-ctx.Done()
	ns.Shutdown()
	return nil
}

func startNATSProcess(ctx context.Context) (url string, pid int, stop func(), err error) {
	dir, err := os.MkdirTemp("", "hookpipe-bench-nats")
	if err != nil {
		return "", 0, nil, err
	}
	port, err := proc.FreePort(task.LoopbackHost)
	if err != nil {
		os.RemoveAll(dir)
		return "", 0, nil, err
	}
	self, err := os.Executable()
	if err != nil {
		os.RemoveAll(dir)
		return "", 0, nil, err
	}
	cmd := exec.CommandContext(ctx, self, natsServerCmd, strconv.Itoa(port), filepath.Join(dir, "js"))
	cmd.Stderr = os.Stderr
	// The server dies with the bench even when the bench is killed. In a
	// process group of its own it no longer gets Ctrl-C from the terminal,
	// so the bench's context, which Ctrl-C ends, stops it as stop does.
	cmd.SysProcAttr = proc.ChildAttr()
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", 0, nil, err
	}
	stop = func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		os.RemoveAll(dir)
	}
	addr := task.LoopbackAddr(port)
	url = "nats://" + addr
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return url, cmd.Process.Pid, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", 0, nil, errors.New("nats server process did not start")
		}
	}
}

// cpuTimes are the CPU times used so far by the processes of a run, hey's
// aside (hey reports its own).
type cpuTimes struct{ self, nats, redis time.Duration }

func cpuNow(ctx context.Context, redisURL string, natsPID int) cpuTimes {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t := cpuTimes{self: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	// utime and stime, fields 14 and 15 of /proc/PID/stat, in clock ticks
	// (100 a second on Linux).
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", natsPID)); err == nil {
		if i := strings.LastIndexByte(string(b), ')'); i > 0 {
			f := strings.Fields(string(b)[i+2:])
			if len(f) > 12 {
				u, _ := strconv.ParseInt(f[11], 10, 64)
				s, _ := strconv.ParseInt(f[12], 10, 64)
				t.nats = time.Duration(u+s) * 10 * time.Millisecond
			}
		}
	}
	if opt, err := redis.ParseURL(redisURL); err == nil {
		rdb := redis.NewClient(opt)
		info, _ := rdb.Info(ctx, "cpu").Result()
		rdb.Close()
		for _, line := range strings.Split(info, "\n") {
			k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
			if k == "used_cpu_sys" || k == "used_cpu_user" {
				f, _ := strconv.ParseFloat(v, 64)
				t.redis += time.Duration(f * float64(time.Second))
			}
		}
	}
	return t
}

func (a cpuTimes) sub(b cpuTimes) cpuTimes {
	return cpuTimes{a.self - b.self, a.nats - b.nats, a.redis - b.redis}
}

func (a cpuTimes) perRequest(r loadtest.Result, n int) string {
	per := func(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/float64(n)/1e3) }
	return fmt.Sprintf("hey %s, server process %s, NATS %s, Redis %s", per(r.CPU), per(a.self), per(a.nats), per(a.redis))
}
