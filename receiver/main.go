// Command receiver takes task webhooks over HTTP, counts them in Redis and
// publishes them to NATS JetStream. Run it with --help for its settings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hookpipe/hookpipe/receiver/internal/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := service.NewMain()
	if err := m.ParseFlags(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := m.Run(ctx); err != nil {
		m.Log.Error("start", "err", err)
		os.Exit(1)
	}
	<-ctx.Done()
	m.Log.Info("shutting down")
	if err := m.Close(); err != nil {
		m.Log.Error("shutdown", "err", err)
		os.Exit(1)
	}
}
