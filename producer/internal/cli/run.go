package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/program"
	"github.com/hookpipe/hookpipe/producer/internal/generate"
	"github.com/hookpipe/hookpipe/producer/internal/page"
	"github.com/hookpipe/hookpipe/producer/internal/record"
	"github.com/hookpipe/hookpipe/producer/internal/send"
	"github.com/hookpipe/hookpipe/task"
)

// Main is the producer's program: ParseFlags picks the command and reads
// its settings, Run runs it, Close stops it. serve serves the page until
// Close; send, record and replay do their job in Run. Tests drive it with
// its inputs and outputs made explicit, so that they run the real wiring.
type Main struct {
	// Stdout receives the send log and summaries; Stderr the logs and
	// usage.
	Stdout, Stderr io.Writer
	// Getenv reads the environment; default os.Getenv.
	Getenv func(string) string
	// Ready, when set, is called with the address serve listens on once it
	// accepts connections.
	Ready func(addr string)

	cmd  string
	cfg  Config
	args []string // replay's files
	log  *slog.Logger
	done chan struct{}
	stop func() error // what Close does for serve
}

var _ program.Job = (*Main)(nil)

var usage = `producer makes batches of fake tasks and sends them as webhooks.

Usage:
  producer [serve] [flags]      serve the page with "Produce Tasks" (default ` + task.LoopbackAddr(task.ProducerPort) + `)
  producer send [flags]         send batches, printing "i out of n -- status -- task"
  producer record [flags]       write generated batches as JSON Lines
  producer replay [flags] FILE...  re-send recorded batches

Run "producer COMMAND --help" for a command's flags.`

// ErrUsage is returned for a command line that cannot be run; its message
// has been printed already.
var ErrUsage = program.ErrUsage

// ErrFailed is returned when some tasks could not be delivered; the
// summaries say which.
var ErrFailed = errors.New("some tasks failed")

// commands are the producer's commands: their flag groups and what their
// --help says.
var commands = map[string]struct {
	groups flagGroups
	about  string
	args   string
}{
	"serve":  {groupServe | groupGenerate | groupSend, usage + "\n\nserve: the page with \"Produce Tasks\" and a live log of every webhook.", ""},
	"send":   {groupGenerate | groupSend, "Sends batches, printing \"i out of n -- status -- task\" per task and a summary per batch.", ""},
	"record": {groupRecord, "Writes generated batches as JSON Lines, webhook ids included, for replay.", ""},
	"replay": {groupSend | groupReplay, "Re-sends recorded batches, at their recorded pace or faster.", "FILE..."},
}

// ParseFlags picks the command named by args[0] (serve when there is none)
// and reads its settings.
func (m *Main) ParseFlags(_ context.Context, args []string) error {
	if m.Getenv == nil {
		m.Getenv = os.Getenv
	}
	if m.Stdout == nil {
		m.Stdout = os.Stdout
	}
	if m.Stderr == nil {
		m.Stderr = os.Stderr
	}
	m.done = make(chan struct{})
	m.cmd = "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		m.cmd, args = args[0], args[1:]
	}
	if m.cmd == "help" {
		fmt.Fprintln(m.Stdout, usage)
		return flag.ErrHelp
	}
	c, ok := commands[m.cmd]
	if !ok {
		fmt.Fprintf(m.Stderr, "producer: unknown command %q\n\n%s\n", m.cmd, usage)
		return ErrUsage
	}
	m.cfg = DefaultConfig()
	fs := newFlagSet("producer "+m.cmd, c.about, c.groups, &m.cfg, m.Getenv, m.Stderr)
	if c.args != "" {
		fs.TakeArgs(c.args)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := m.cfg.Validate(); err != nil {
		return err
	}
	m.args = fs.Args()
	if m.cmd == "replay" && len(m.args) == 0 {
		fmt.Fprintln(m.Stderr, "producer replay: name at least one recording")
		fs.Usage()
		return ErrUsage
	}
	m.log = m.cfg.Log.New(m.Stderr)
	return nil
}

// Run runs the command: serve starts serving and returns; the others
// return when their job is done, with ErrFailed when tasks were not
// delivered.
func (m *Main) Run(ctx context.Context) error {
	if m.cmd == "serve" {
		return m.serve(ctx)
	}
	defer close(m.done)
	switch m.cmd {
	case "send":
		return m.send(ctx)
	case "record":
		return m.record(ctx)
	}
	return m.replay(ctx)
}

// Done is closed once a command other than serve has done its job.
func (m *Main) Done() <-chan struct{} { return m.done }

// Close stops serve: it cancels the running batches, whose summaries reach
// the open pages before their event streams end, and shuts the server
// down within the shutdown timeout.
func (m *Main) Close() error {
	if m.stop == nil {
		return nil
	}
	stop := m.stop
	m.stop = nil
	return stop()
}

// seed returns the configured seed, or a random one.
func seed(cfg Config, log *slog.Logger) int64 {
	if cfg.Seed >= 0 {
		return cfg.Seed
	}
	s := rand.Int64N(1 << 31)
	log.Info("random seed; pass --seed to repeat this run", "seed", s)
	return s
}

// generatorAndSender builds what serve and send both need from cfg.
func generatorAndSender(cfg Config, log *slog.Logger) (*generate.Generator, *send.Sender, error) {
	gen, err := generate.New(seed(cfg, log), cfg.MinTasks, cfg.MaxTasks)
	if err != nil {
		return nil, nil, err
	}
	sender, err := send.New(cfg.senderConfig())
	if err != nil {
		return nil, nil, err
	}
	return gen, sender, nil
}

func (m *Main) serve(ctx context.Context) error {
	cfg, log := m.cfg, m.log
	gen, sender, err := generatorAndSender(cfg, log)
	if err != nil {
		return err
	}
	if err := cfg.Access.Validate(cfg.Addr); err != nil {
		sender.Close()
		return fmt.Errorf("serve: %w", err)
	}
	pg, err := page.New(page.Options{
		Generator: gen, Sender: sender, Wait: cfg.Wait,
		MinTasks: cfg.MinTasks, MaxTasks: cfg.MaxTasks, Logger: log,
		MaxBatchSize: cfg.MaxBatchSize, MaxRunning: cfg.MaxRunning, MaxStreams: cfg.MaxStreams,
		AccessToken: cfg.Access.Token, Hosts: cfg.Access.Hosts,
	})
	if err != nil {
		sender.Close()
		return err
	}
	sender.OnRetry = pg.OnRetry
	if cfg.WebhookSecret == "" {
		log.Info("signing is off: requests carry no webhook-signature")
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		pg.Close()
		sender.Close()
		return fmt.Errorf("serve: listen %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           pg,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			served <- fmt.Errorf("serve: %w", err)
		}
		close(served)
	}()
	log.Info("producer listening", "addr", ln.Addr().String(), "receiver", cfg.ReceiverURL)
	if m.Ready != nil {
		m.Ready(ln.Addr().String())
	}
	m.stop = func() error {
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		pg.Close()
		err := srv.Shutdown(sctx)
		sender.Close()
		if err != nil {
			return fmt.Errorf("serve: shutdown: %w", err)
		}
		return <-served
	}
	return nil
}

// printer writes the send log of one batch.
type printer struct {
	w io.Writer
}

func (p printer) result(n int) func(i int, r send.Result) {
	return func(i int, r send.Result) { fmt.Fprintln(p.w, send.Line(i+1, n, r)) }
}

func (p printer) retry(e send.RetryEvent) {
	status := "no answer"
	if e.Status != 0 {
		status = fmt.Sprint(e.Status)
	}
	fmt.Fprintf(p.w, "  retry: %d out of %d -- attempt %d got %s -- next in %v -- %v\n",
		e.Delivery.Task.ID+1, e.Delivery.Task.BatchSize, e.Attempt, status, e.Delay.Round(time.Millisecond), e.Err)
}

func (m *Main) send(ctx context.Context) error {
	cfg, log := m.cfg, m.log
	gen, sender, err := generatorAndSender(cfg, log)
	if err != nil {
		return err
	}
	defer sender.Close()
	p := printer{w: m.Stdout}
	sender.OnRetry = p.retry
	failed := 0
	for range cfg.Batches {
		if ctx.Err() != nil {
			break
		}
		b := next(gen, cfg.Size)
		sum := sender.SendStream(ctx, b.ID, b.Size, deliveries(&b), send.Every(cfg.Wait), p.result(b.Size))
		fmt.Fprintln(m.Stdout, sum)
		failed += sum.Failed + sum.Cancelled
	}
	if failed > 0 {
		return fmt.Errorf("send: %d tasks not delivered: %w", failed, ErrFailed)
	}
	return ctx.Err()
}

// deliveries makes b's tasks as they are sent, each with a fresh webhook
// id.
func deliveries(b *generate.Batch) func() send.Delivery {
	return func() send.Delivery {
		t, _, _ := b.Next()
		return send.Delivery{WebhookID: send.NewWebhookID(), Task: t}
	}
}

func next(gen *generate.Generator, size int) generate.Batch {
	if size > 0 {
		return gen.NextOfSize(size)
	}
	return gen.Next()
}

func (m *Main) record(ctx context.Context) error {
	cfg, log := m.cfg, m.log
	sd := seed(cfg, log)
	gen, err := generate.New(sd, cfg.MinTasks, cfg.MaxTasks)
	if err != nil {
		return err
	}
	var lines []record.Line
	for range cfg.Batches {
		b := next(gen, cfg.Size)
		for {
			t, id, ok := b.Next()
			if !ok {
				break
			}
			lines = append(lines, record.Line{Task: t, WebhookID: id, Offset: time.Duration(len(lines)) * cfg.Wait})
		}
	}
	out := cfg.Out
	if out == "" {
		out = filepath.Join("testdata", "batches", fmt.Sprintf("seed-%d.jsonl", sd))
	}
	if err := writeFile(out, lines); err != nil {
		return err
	}
	log.Info("recorded", "file", out, "batches", cfg.Batches, "tasks", len(lines), "seed", sd)
	return ctx.Err()
}

// writeFile writes a recording through a temporary file, so that a failed
// write never leaves half a recording behind.
func writeFile(path string, lines []record.Line) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("record: %w", err)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".record-*")
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	defer os.Remove(f.Name())
	if err := record.Write(f, lines); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}
