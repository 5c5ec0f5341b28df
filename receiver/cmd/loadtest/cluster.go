package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookpipe/hookpipe/devenv/cluster"
	"github.com/hookpipe/hookpipe/receiver/internal/loadtest"
	"github.com/hookpipe/hookpipe/task"
)

// benchCluster runs hey against the receivers of the cluster topology (a
// stream on three replicas over three NATS nodes, a Redis Cluster of three
// masters with a replica each) and of the same topology on one NATS node
// and one Redis, alternating, in the same run, and prints the ratio. With
// -relaybench it then runs the relay bench on both, its clients spread
// over the two relays.
func benchCluster(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("loadtest cluster", flag.ContinueOnError)
	n := fs.Int("n", 50000, "requests per run")
	c := fs.Int("c", 50, "concurrent connections")
	rounds := fs.Int("rounds", 3, "alternating single-node and cluster runs; the ratio reported is the median of the rounds'")
	binDir := fs.String("bin", "bin", "folder of the hookpipe binaries and nats-server (make build-cluster)")
	relaybench := fs.String("relaybench", "", "run this relaybench binary against both topologies' two relays after the receiver rounds")
	clients := fs.Int("clients", 1000, "WebSocket clients of the relay bench")
	rate := fs.Int("rate", 2000, "tasks per second of the relay bench")
	logFile := fs.String("log", filepath.Join(os.TempDir(), "hookpipe-bench-cluster.log"), "where the processes' log lines go")
	if err := fs.Parse(args); err != nil {
		return err
	}
	hey, err := loadtest.FindHey()
	if err != nil {
		return err
	}
	out, err := os.Create(*logFile)
	if err != nil {
		return err
	}
	defer out.Close()

	type topology struct {
		name string
		*cluster.Cluster
	}
	var tops []topology
	for _, single := range []bool{true, false} {
		dir, err := os.MkdirTemp("", "hookpipe-bench-cluster")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cl, err := cluster.Start(ctx, cluster.Options{BinDir: *binDir, DataDir: dir, Single: single, NoDashboard: true,
			ReceiverPort: -1, RelayPorts: [2]int{-1, -1}, DashboardPort: -1, ProducerPort: -1, Out: out})
		if err != nil {
			return fmt.Errorf("%w (the processes' log: %s)", err, *logFile)
		}
		defer cl.Close()
		name := "cluster (NATS x3, stream R3, Redis Cluster 3+3)"
		if single {
			name = "single (one NATS, one Redis)"
		}
		tops = append(tops, topology{name, cl})
	}
	// Wait for each stream, then warm both up.
	for _, tp := range tops {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			r, err := loadtest.Hey(ctx, hey, tp.ReceiverURL, 200, 10, loadtest.Body)
			if err == nil && r.Statuses[200] == 200 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: receivers not accepting: %v", tp.name, err)
			}
		}
		loadtest.Hey(ctx, hey, tp.ReceiverURL, 2000, *c, loadtest.Body)
	}

	fmt.Printf("hey -n %d -c %d, body %d bytes, %d rounds, two receivers on one port in each topology, %s\n\n",
		*n, *c, len(loadtest.Body), *rounds, time.Now().Format(time.RFC3339))
	var ratios []float64
	for round := 1; round <= *rounds; round++ {
		var perSecond [2]float64
		for i, tp := range tops {
			before, err := loadtest.Counts(ctx, tp.NATSURL, tp.RedisURL, task.DefaultKeyPrefix)
			if err != nil {
				return err
			}
			r, err := loadtest.Hey(ctx, hey, tp.ReceiverURL, *n, *c, loadtest.Body)
			if err != nil {
				return err
			}
			after, err := loadtest.Counts(ctx, tp.NATSURL, tp.RedisURL, task.DefaultKeyPrefix)
			if err != nil {
				return err
			}
			perSecond[i] = r.PerSecond
			fmt.Printf("round %d  %-48s %s\n", round, tp.name, r.Summary())
			fmt.Printf("          Redis counted %d, hey saw %d answered 200\n", after.Total()-before.Total(), r.Statuses[200])
			if after.Total()-before.Total() != int64(r.Statuses[200]) {
				return fmt.Errorf("MISMATCH between Redis and hey on the %s", tp.name)
			}
		}
		ratios = append(ratios, perSecond[1]/perSecond[0])
		fmt.Printf("round %d  cluster/single %.1f%%\n\n", round, 100*ratios[len(ratios)-1])
	}
	slices.Sort(ratios)
	fmt.Printf("cluster/single throughput: median %.1f%% over %d rounds (lowest %.1f%%, highest %.1f%%)\n",
		100*ratios[len(ratios)/2], len(ratios), 100*ratios[0], 100*ratios[len(ratios)-1])

	if *relaybench == "" {
		return nil
	}
	for _, tp := range tops {
		fmt.Printf("\nrelay bench on the %s, two relays\n", tp.name)
		cmd := exec.CommandContext(ctx, *relaybench, "-relay", strings.Join(tp.RelayURLs, " "), "-receiver", tp.ReceiverURL,
			"-nats-url", tp.NATSURL, "-redis-url", tp.RedisURL, "-key-prefix", task.DefaultKeyPrefix,
			"-clients", strconv.Itoa(*clients), "-rate", strconv.Itoa(*rate), "-duration", "10s", "-exact-latency")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("relaybench on the %s: %w", tp.name, err)
		}
	}
	return nil
}
