package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

// Main is the running dashboard server. Tests use it to run the real
// wiring on a free port.
type Main struct {
	Config Config
	// Log is where the server logs; ParseFlags sets it from the config when
	// nil.
	Log *slog.Logger
	// Handler is the dashboard's handler, set by Run.
	Handler *Handler

	srv  *http.Server
	ln   net.Listener
	done chan error
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main { return &Main{Config: DefaultConfig()} }

// ParseFlags reads the configuration from args and the environment.
func (m *Main) ParseFlags(_ context.Context, args []string) error {
	if err := m.Config.Parse(args, os.Getenv, os.Stderr); err != nil {
		return err
	}
	if m.Log == nil {
		m.Log = m.Config.Log.New(os.Stderr)
	}
	return nil
}

// Run reads the wasm, listens and serves in the background.
func (m *Main) Run(ctx context.Context) error {
	if err := m.Config.Validate(); err != nil {
		return err
	}
	if m.Log == nil {
		m.Log = m.Config.Log.New(os.Stderr)
	}
	h, err := NewHandler(m.Config, m.Log)
	if err != nil {
		return err
	}
	m.Handler = h
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", m.Config.Addr)
	if err != nil {
		return fmt.Errorf("dashboard: listen: %w", err)
	}
	m.ln = ln
	m.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.Log.Handler(), slog.LevelWarn),
	}
	m.done = make(chan error, 1)
	go func() { m.done <- m.srv.Serve(ln) }()
	relay := m.Config.RelayURL
	if relay == "" {
		relay = "(page host):" + strconv.Itoa(task.RelayPort)
	}
	sizes := []any{}
	for enc, f := range h.Wasm {
		if enc == "" {
			enc = "raw"
		}
		sizes = append(sizes, "wasm_"+enc, len(f.Body))
	}
	m.Log.Info("dashboard listening", append([]any{"addr", ln.Addr().String(), "web_dir", h.WebDir,
		"relay", relay, "version", h.Version}, sizes...)...)
	return nil
}

// Addr returns the address the server listens on.
func (m *Main) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// Close stops accepting connections and waits, up to the shutdown timeout,
// for requests in flight to finish. Calls after the first do nothing.
func (m *Main) Close() error {
	if m.srv == nil {
		return nil
	}
	defer func() { m.srv = nil }()
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	err := m.srv.Shutdown(ctx)
	if serr := <-m.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("dashboard: shutdown: %w", err)
	}
	return nil
}
