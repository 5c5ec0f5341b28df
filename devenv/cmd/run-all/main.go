// Command run-all starts the whole hookpipe pipeline on one machine, with
// NATS and Redis where they answer and embedded ones where they do not, and
// stops it all on Ctrl-C. make run-all builds everything and runs it. Run it
// with --help for its settings.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hookpipe/hookpipe/devenv/stack"
	"github.com/hookpipe/hookpipe/plumbing/program"
)

func main() {
	// run-all lives in a terminal, and its components in process groups of
	// their own: when the terminal closes, SIGHUP reaches run-all alone,
	// which then stops them in order as on Ctrl-C.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	code := program.Execute(ctx, "run-all", stack.NewMain(), os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
