// Command producer makes batches of fake tasks and sends them as Standard
// Webhooks to hookpipe's receiver: from a web page on :5000 (serve, the
// default), from the command line (send), or from recordings (record,
// replay). Run "producer help" for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hookpipe/hookpipe/producer/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &cli.Main{Stdout: os.Stdout, Stderr: os.Stderr}
	err := m.Run(ctx, os.Args[1:])
	switch {
	case err == nil:
	case errors.Is(err, cli.ErrUsage):
		os.Exit(2)
	case errors.Is(err, cli.ErrFailed):
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(1)
	}
}
