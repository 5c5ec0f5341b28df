package relay

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/program"
)

// Main is the relay as a program: ParseFlags reads the configuration, Run
// opens the relay and serves in the background, Close shuts it down.
type Main struct {
	Config Config
	// Log is where the relay logs; ParseFlags sets it from the
	// configuration when nil.
	Log *slog.Logger

	server *Server
	cancel context.CancelFunc
	done   chan error
}

var _ program.Main = (*Main)(nil)

// NewMain returns a Main with the default configuration.
func NewMain() *Main { return &Main{Config: DefaultConfig()} }

// ParseFlags reads the configuration from args and the environment.
func (m *Main) ParseFlags(_ context.Context, args []string) error {
	cfg, err := ParseConfig(args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	m.Config = cfg
	if m.Log == nil {
		m.Log = cfg.Log.New(os.Stderr)
	}
	return nil
}

// Run opens the relay and serves until Close.
func (m *Main) Run(ctx context.Context) error {
	if m.Log == nil {
		m.Log = m.Config.Log.New(os.Stderr)
	}
	s, err := Open(m.Config, m.Log)
	if err != nil {
		return err
	}
	m.server = s
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.done = make(chan error, 1)
	go func() { m.done <- s.Run(ctx) }()
	return nil
}

// Addr returns the address the relay listens on, once Run returned.
func (m *Main) Addr() string { return m.server.Addr() }

// Close shuts the relay down: clients are told to go elsewhere, NATS is
// drained, Redis closed.
func (m *Main) Close() error {
	if m.server == nil {
		return nil
	}
	m.cancel()
	select {
	case err := <-m.done:
		return err
	case <-time.After(2 * m.Config.ShutdownTimeout):
		return errors.New("relay: not stopped after twice the shutdown timeout")
	}
}
