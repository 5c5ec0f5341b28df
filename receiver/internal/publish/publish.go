// Package publish puts accepted tasks into the JetStream stream, with the
// webhook id as message id so that the stream itself drops a repeated
// publish within its duplicate window.
package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrUnavailable wraps every failure to get a publish acknowledged: the
// caller should ask the sender to retry.
var ErrUnavailable = errors.New("publish: stream unavailable")

// StreamOptions are the limits of the TASKS stream.
type StreamOptions struct {
	// MaxAge drops events older than this; default 24h.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; default 1 GiB.
	MaxBytes int64
	// Duplicates is the window in which a repeated message id is dropped;
	// default 10m, wider than the producer's retry schedule.
	Duplicates time.Duration
	// Replicas is the number of copies in a NATS cluster; default 1.
	Replicas int
}

// StreamConfig returns the JetStream configuration of the TASKS stream.
func (o StreamOptions) StreamConfig() jetstream.StreamConfig {
	if o.MaxAge <= 0 {
		o.MaxAge = 24 * time.Hour
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.Duplicates <= 0 {
		o.Duplicates = 10 * time.Minute
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	return jetstream.StreamConfig{
		Name:        task.StreamName,
		Description: "Accepted hookpipe tasks, one subject per priority.",
		Subjects:    []string{task.SubjectAll},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      o.MaxAge,
		MaxBytes:    o.MaxBytes,
		Duplicates:  o.Duplicates,
		Replicas:    o.Replicas,
	}
}

// Publisher publishes tasks to JetStream over one NATS connection.
type Publisher struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.StreamConfig
	log    *slog.Logger
	ready  atomic.Bool // the stream is known to exist
	ensure sync.Mutex  // one stream check at a time, not one per request
}

// Connect connects to NATS at url. It returns at once even when NATS does
// not answer yet: the connection keeps trying in the background, and
// publishes fail with ErrUnavailable until it is up. timeout bounds every
// wait on NATS: a write to a server that stopped reading, and an
// acknowledgement that never comes.
func Connect(url string, stream StreamOptions, timeout time.Duration, log *slog.Logger) (*Publisher, error) {
	p := &Publisher{stream: stream.StreamConfig(), log: log}
	nc, err := nats.Connect(url,
		nats.Name("hookpipe-receiver"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		// Publishing while disconnected must fail at once rather than sit
		// in a buffer that may or may not be flushed after the reply.
		nats.ReconnectBufSize(-1),
		// A server that stops reading must not hold every request behind
		// the connection's write lock for nats.go's default minute, and a
		// silent one is noticed within seconds rather than minutes.
		nats.FlusherTimeout(timeout),
		nats.PingInterval(5*time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			p.ready.Store(false)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("publish: connect %s: %w", url, err)
	}
	// Without a timeout, a future whose acknowledgement is lost stays
	// pending until the next reconnect; enough of them stall every publish.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384), jetstream.WithPublishAsyncTimeout(timeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("publish: jetstream: %w", err)
	}
	p.nc, p.js = nc, js
	return p, nil
}

// EnsureStream creates the stream when it does not exist. An existing
// stream is left as it is: its limits and replicas may have been set by an
// operator, or by another receiver with other flags.
func (p *Publisher) EnsureStream(ctx context.Context) error {
	p.ensure.Lock()
	defer p.ensure.Unlock()
	if p.ready.Load() {
		return nil
	}
	_, err := p.js.Stream(ctx, p.stream.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = p.js.CreateStream(ctx, p.stream)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil // created meanwhile by a relay or another receiver
		} else if err == nil {
			p.log.Info("created stream", "stream", p.stream.Name, "subjects", p.stream.Subjects,
				"max_age", p.stream.MaxAge, "max_bytes", p.stream.MaxBytes, "duplicates", p.stream.Duplicates)
		}
	}
	if err != nil {
		return fmt.Errorf("publish: stream %s: %w", p.stream.Name, err)
	}
	p.ready.Store(true)
	return nil
}

// Publish stores data on subject and waits for the stream's
// acknowledgement. A non-empty id is the message id the stream deduplicates
// on.
func (p *Publisher) Publish(ctx context.Context, id, subject string, data []byte) error {
	if !p.ready.Load() {
		if p.nc.Status() != nats.CONNECTED {
			return fmt.Errorf("%w: nats %s", ErrUnavailable, p.nc.Status())
		}
		if err := p.EnsureStream(ctx); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	msg := &nats.Msg{Subject: subject, Data: data}
	if id != "" {
		msg.Header = nats.Header{jetstream.MsgIDHeader: []string{id}}
	}
	f, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		return fmt.Errorf("%w: publish %s: %w", ErrUnavailable, subject, err)
	}
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
			// The stream is gone, for instance after NATS restarted on empty
			// storage: create it again before the next publish.
			p.ready.Store(false)
		}
		return fmt.Errorf("%w: publish %s: %w", ErrUnavailable, subject, err)
	case <-ctx.Done():
		return fmt.Errorf("%w: publish %s: %w", ErrUnavailable, subject, ctx.Err())
	}
}

// Ping reports whether NATS is connected and the stream exists.
func (p *Publisher) Ping(ctx context.Context) error {
	if s := p.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("publish: nats %s", s)
	}
	if _, err := p.js.Stream(ctx, p.stream.Name); err != nil {
		return fmt.Errorf("publish: stream %s: %w", p.stream.Name, err)
	}
	return nil
}

// Close waits for outstanding acknowledgements and drains the connection,
// both within ctx's deadline.
func (p *Publisher) Close(ctx context.Context) error {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
	}
	closed := make(chan struct{})
	p.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := p.nc.Drain(); err != nil {
		p.nc.Close()
		return fmt.Errorf("publish: drain: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		p.nc.Close()
		return fmt.Errorf("publish: drain: %w", ctx.Err())
	}
}
