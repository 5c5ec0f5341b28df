// Package program gives every hookpipe binary the same main: parse the
// flags, run, wait for SIGINT or SIGTERM (or for the job to end), close.
// The work itself is a Main, which end-to-end tests drive directly.
package program

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main is one binary's program.
type Main interface {
	// ParseFlags reads the configuration from args and the environment. It
	// returns flag.ErrHelp after printing --help, and ErrUsage after
	// printing what is wrong with the command line.
	ParseFlags(ctx context.Context, args []string) error
	// Run starts the program. A service returns once it serves, and keeps
	// serving until Close; a command that does a job returns when the job
	// is done, with its outcome.
	Run(ctx context.Context) error
	// Close stops what Run started, within the program's own deadline.
	Close() error
}

// Job is a Main whose work ends by itself: Done is closed then. A Main
// that is not a Job serves until a signal comes.
type Job interface {
	Done() <-chan struct{}
}

// ErrUsage is returned by ParseFlags for a command line that cannot run,
// once it has said why.
var ErrUsage = errors.New("usage")

// Exit codes.
const (
	ExitOK      = 0
	ExitFailed  = 1 // the program failed
	ExitUsage   = 2 // the command line is wrong
	exitTimeout = ExitFailed
)

// Run runs m as the binary name with args, and exits. Errors go to stderr
// prefixed with name.
func Run(name string, m Main, args []string) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Execute(ctx, name, m, args, os.Stderr)
	stop()
	os.Exit(code)
}

// Do runs m with args as Run does, without signals and without printing:
// it parses, runs, waits for ctx to end or the job to be done, closes, and
// returns what went wrong, for tests that drive a whole binary.
func Do(ctx context.Context, m Main, args []string) error {
	if err := m.ParseFlags(ctx, args); err != nil {
		return err
	}
	err := m.Run(ctx)
	if err == nil {
		wait(ctx, m)
	}
	return errors.Join(err, m.Close())
}

func wait(ctx context.Context, m Main) {
	var done <-chan struct{}
	if j, ok := m.(Job); ok {
		done = j.Done()
	}
	select {
	case <-ctx.Done():
	case <-done:
	}
}

// Execute is Run without the signals and the exit: it returns the exit
// code.
func Execute(ctx context.Context, name string, m Main, args []string, stderr io.Writer) int {
	if err := m.ParseFlags(ctx, args); err != nil {
		switch {
		case errors.Is(err, flag.ErrHelp):
			return ExitOK
		case !errors.Is(err, ErrUsage):
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
		}
		return ExitUsage
	}
	code := ExitOK
	if err := m.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		code = ExitFailed
	} else {
		wait(ctx, m)
	}
	if err := m.Close(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		code = exitTimeout
	}
	return code
}
