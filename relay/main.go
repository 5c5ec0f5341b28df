// Command relay pushes hookpipe's accepted tasks to dashboards over
// WebSocket: a snapshot on connect, then coalesced updates, with exact
// resume after a reconnect. Run it with --help for its settings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hookpipe/hookpipe/relay/internal/relay"
)

func main() {
	cfg, err := relay.ParseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := relay.NewLogger(cfg, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := relay.Open(cfg, log)
	if err != nil {
		log.Error("relay failed to start", "err", err)
		os.Exit(1)
	}
	if err := s.Run(ctx); err != nil {
		log.Error("relay failed", "err", err)
		os.Exit(1)
	}
}
