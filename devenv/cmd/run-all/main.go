// Command run-all starts the whole hookpipe pipeline on one machine, with
// NATS and Redis where they answer and embedded ones where they do not, and
// stops it all on Ctrl-C. make run-all builds everything and runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hookpipe/hookpipe/devenv/stack"
	"github.com/hookpipe/hookpipe/task"
)

func main() {
	var o stack.Options
	fs := flag.NewFlagSet("run-all", flag.ContinueOnError)
	fs.StringVar(&o.BinDir, "bin-dir", "bin", "folder of the receiver, relay, dashboard and producer binaries")
	fs.StringVar(&o.DataDir, "data-dir", ".data", "folder for the embedded NATS server's and local Redis's data")
	fs.StringVar(&o.WebDir, "web-dir", "dashboard/web", "the dashboard's static files (app.wasm)")
	fs.StringVar(&o.Host, "host", task.LoopbackHost, "interface every component listens on")
	fs.IntVar(&o.ReceiverPort, "receiver-port", task.ReceiverPort, "receiver port")
	fs.IntVar(&o.RelayPort, "relay-port", task.RelayPort, "relay port")
	fs.IntVar(&o.DashboardPort, "dashboard-port", task.DashboardPort, "dashboard port")
	fs.IntVar(&o.ProducerPort, "producer-port", task.ProducerPort, "producer page port")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: run-all [flags]\n\nStarts receiver, relay, dashboard and producer. NATS and Redis are taken from\nNATS_URL and REDIS_URL when they answer; otherwise an embedded NATS server\n(JetStream under --data-dir) and a redis-server from PATH, or else an embedded\nin-memory Redis-compatible server, are started.\n\nFlags:")
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
	s, err := stack.Start(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "run-all:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, `
  hookpipe is running. Open:
    dashboard  %s
    producer   %s   (press "Produce Tasks")
  webhooks go to %s
  relay      %s   NATS %s   Redis %s
%s  Ctrl-C stops everything.

`, s.DashboardURL, s.ProducerURL, s.ReceiverURL, s.RelayURL, s.NATSURL, s.RedisURL, credentialsNote(s))
	code := 0
	select {
	case <-ctx.Done():
	case name := <-s.Exited():
		fmt.Fprintf(os.Stderr, "run-all: %s exited; stopping everything\n", name)
		code = 1
	}
	stop()
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "run-all:", err)
		code = 1
	}
	os.Exit(code)
}

// credentialsNote says where the users of the NATS and Redis that the stack
// started are kept, when it started either.
func credentialsNote(s *stack.Stack) string {
	if _, err := os.Stat(s.ToolEnvPath()); err != nil {
		return ""
	}
	return "  NATS and Redis take a user per component: see " + s.CredentialsPath() + "\n" +
		"  (make verify, loadtest and replay read " + s.ToolEnvPath() + ")\n"
}
