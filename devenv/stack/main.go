package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hookpipe/hookpipe/devenv/proc"
	"github.com/hookpipe/hookpipe/plumbing/envflag"
	"github.com/hookpipe/hookpipe/plumbing/logging"
	"github.com/hookpipe/hookpipe/plumbing/program"
)

// Config is run-all's command line. Each setting has one flag and one
// environment variable; a flag wins over the environment, which wins over
// the default. run-all passes its whole environment on to the components,
// so a variable they share (HOOKPIPE_WEB_DIR, HOOKPIPE_LOG_LEVEL) means the
// same to all.
type Config struct {
	// Options are the stack's. Its folders, host and ports are settings:
	// --bin-dir (HOOKPIPE_BIN_DIR), --data-dir (HOOKPIPE_DATA_DIR),
	// --web-dir (HOOKPIPE_WEB_DIR), --host (HOOKPIPE_HOST),
	// --receiver-port (HOOKPIPE_RECEIVER_PORT), --relay-port
	// (HOOKPIPE_RELAY_PORT), --dashboard-port (HOOKPIPE_DASHBOARD_PORT) and
	// --producer-port (HOOKPIPE_PRODUCER_PORT), with the defaults of
	// DefaultOptions. NATSURL and RedisURL come from NATS_URL and REDIS_URL.
	Options Options
	// Log says how run-all logs its own lines; default text at info
	// (--log-format, HOOKPIPE_LOG_FORMAT; --log-level, HOOKPIPE_LOG_LEVEL).
	// The components take the variables, not the flags.
	Log logging.Config
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Options: DefaultOptions(), Log: logging.DefaultConfig()}
}

const about = `Starts receiver, relay, dashboard and producer, and passes its environment on
to each. NATS and Redis are taken from NATS_URL and REDIS_URL when they answer;
otherwise an embedded NATS server (JetStream under --data-dir) and a
redis-server from PATH, or else an embedded in-memory Redis-compatible server,
are started.`

// Parse reads c from the environment (with getenv), then args, and
// validates it. --help prints every flag with its environment variable to
// out and returns flag.ErrHelp.
func (c *Config) Parse(args []string, getenv func(string) string, out io.Writer) error {
	o := &c.Options
	fs := envflag.New("run-all", about, getenv, out)
	fs.Group("Folders")
	fs.String(&o.BinDir, "bin-dir", "HOOKPIPE_BIN_DIR", "folder of the receiver, relay, dashboard and producer binaries")
	fs.String(&o.DataDir, "data-dir", "HOOKPIPE_DATA_DIR", "folder for the embedded NATS server's and local Redis's data")
	fs.String(&o.WebDir, "web-dir", "HOOKPIPE_WEB_DIR", "the dashboard's static files (app.wasm)")
	fs.Group("Listening")
	fs.String(&o.Host, "host", "HOOKPIPE_HOST", "interface every component listens on")
	fs.Int(&o.ReceiverPort, "receiver-port", "HOOKPIPE_RECEIVER_PORT", "receiver port; -1 picks a free one")
	fs.Int(&o.RelayPort, "relay-port", "HOOKPIPE_RELAY_PORT", "relay port; -1 picks a free one")
	fs.Int(&o.DashboardPort, "dashboard-port", "HOOKPIPE_DASHBOARD_PORT", "dashboard port; -1 picks a free one")
	fs.Int(&o.ProducerPort, "producer-port", "HOOKPIPE_PRODUCER_PORT", "producer page port; -1 picks a free one")
	fs.Group("Logging")
	c.Log.Bind(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return c.Validate()
}

// Validate reports every setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	o := c.Options
	for _, p := range []struct {
		flag string
		port int
	}{{"receiver-port", o.ReceiverPort}, {"relay-port", o.RelayPort}, {"dashboard-port", o.DashboardPort}, {"producer-port", o.ProducerPort}} {
		if p.port < -1 || p.port > 65535 {
			errs = append(errs, fmt.Errorf("--%s %d is not a port (or -1 for a free one)", p.flag, p.port))
		}
	}
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("run-all config: %w", err)
	}
	return nil
}

// Main is run-all as a program: ParseFlags reads the configuration, Run
// starts the stack and says what to open, Close stops it. Its work ends
// when a component exits, which is a failure.
type Main struct {
	Config Config

	stack  *Stack
	done   chan struct{}
	exited string // the component that exited, once done is closed
}

var (
	_ program.Main = (*Main)(nil)
	_ program.Job  = (*Main)(nil)
)

// NewMain returns a Main with the default configuration.
func NewMain() *Main { return &Main{Config: DefaultConfig()} }

// ParseFlags reads the configuration from args and the environment.
func (m *Main) ParseFlags(_ context.Context, args []string) error {
	return m.Config.Parse(args, os.Getenv, os.Stderr)
}

// Run starts the stack, returns once every component answers its health
// check, and prints the URLs to open.
func (m *Main) Run(ctx context.Context) error {
	o := m.Config.Options
	if o.Out == nil {
		o.Out = os.Stderr
	}
	if o.Log == nil {
		o.Log = m.Config.Log.New(&proc.LineWriter{Name: "run-all", Out: o.Out})
	}
	s, err := Start(ctx, o)
	if err != nil {
		return err
	}
	m.stack = s
	m.done = make(chan struct{})
	exited := s.Exited()
	go func() {
		select {
		case name := <-exited:
			s.log.Error("a component exited; stopping everything", "component", name)
			m.exited = name
			close(m.done)
		case <-s.done:
		}
	}()
	fmt.Fprintf(o.Out, `
  hookpipe is running. Open:
    dashboard  %s
    producer   %s   (press "Produce Tasks")
  webhooks go to %s
  relay      %s   NATS %s   Redis %s
%s  Ctrl-C stops everything.

`, s.DashboardURL, s.ProducerURL, s.ReceiverURL, s.RelayURL, s.NATSURL, s.RedisURL, credentialsNote(s))
	return nil
}

// Done is closed when a component exits by itself.
func (m *Main) Done() <-chan struct{} { return m.done }

// Close stops the components in order, then the servers the stack
// started. It fails when a component had exited by itself.
func (m *Main) Close() error {
	if m.stack == nil {
		return nil
	}
	var err error
	select {
	case <-m.done:
		err = fmt.Errorf("%s exited", m.exited)
	default:
	}
	return errors.Join(err, m.stack.Close())
}

// credentialsNote says where the users of the NATS and Redis that the stack
// started are kept, when it started either.
func credentialsNote(s *Stack) string {
	if _, err := os.Stat(s.ToolEnvPath()); err != nil {
		return ""
	}
	return "  NATS and Redis take a user per component: see " + s.CredentialsPath() + "\n" +
		"  (make verify, loadtest and replay read " + s.ToolEnvPath() + ")\n"
}
