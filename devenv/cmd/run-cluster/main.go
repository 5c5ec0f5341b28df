// Command run-cluster starts hookpipe as it runs on several machines, on
// this one: three NATS nodes, a Redis Cluster of three masters and three
// replicas, two receivers on one port, two relays, the dashboard and the
// producer, and stops it all on Ctrl-C. make run-cluster builds everything
// and runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hookpipe/hookpipe/devenv/cluster"
)

func main() {
	o := cluster.Options{FixedPorts: true}
	fs := flag.NewFlagSet("run-cluster", flag.ContinueOnError)
	fs.StringVar(&o.BinDir, "bin-dir", "bin", "folder of the hookpipe binaries and nats-server")
	fs.StringVar(&o.DataDir, "data-dir", ".data/cluster", "folder of every node's data")
	fs.StringVar(&o.WebDir, "web-dir", "dashboard/web", "the dashboard's static files (app.wasm)")
	fs.DurationVar(&o.NodeTimeout, "node-timeout", 2*time.Second, "Redis cluster-node-timeout: how long before a replica takes over a lost master")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: run-cluster [flags]\n\nStarts a 3-node NATS cluster (nats-server from --bin-dir), a Redis Cluster of\n3 masters with a replica each (redis-server from PATH), 2 receivers sharing\nport 5001, relays on 5002 and 5003, the dashboard on 8080 and the producer\non 5000, all on 127.0.0.1.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	c, err := cluster.Start(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "run-cluster:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "\n%s  Ctrl-C stops everything.\n\n", c.Describe())
	<-ctx.Done()
	c.Close()
}
