// Package relay wires the relay service: NATS and Redis connections, the
// stream reader and counts poller that feed the fan-out hub, and the HTTP
// server for /ws, /batches, /healthz, /readyz and /metrics.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/access"
	"github.com/hookpipe/hookpipe/plumbing/natsconn"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/relay/internal/batches"
	"github.com/hookpipe/hookpipe/relay/internal/counts"
	"github.com/hookpipe/hookpipe/relay/internal/fanout"
	"github.com/hookpipe/hookpipe/relay/internal/stream"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
)

// Server is one running relay. Open it, Run it, and it cleans up after
// itself when Run returns.
type Server struct {
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	rdb     redis.UniversalClient
	hub     *fanout.Hub
	reader  *stream.Reader
	poller  *counts.Poller
	batches *batches.Store
	ln      net.Listener
	http    *http.Server
	metrics http.Handler
	gate    *access.Gate
	hosts   *access.Hosts
	limits  *limiter

	refusedToken, refusedIP atomic.Int64
}

// Open validates cfg, starts connecting to NATS and Redis (neither needs to
// be up yet: the relay waits for them and reports not ready meanwhile) and
// listens on cfg.Addr.
func Open(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log}
	var err error
	s.nc, err = natsconn.Connect(cfg.NATS,
		nats.Name("hookpipe-relay"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		s.nc.Close()
		return nil, fmt.Errorf("relay: jetstream: %w", err)
	}
	s.rdb, err = redisconn.New(cfg.Redis, redisconn.Tuning{
		DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		MaxRetries: 1, Name: "hookpipe-relay",
	})
	if err != nil {
		s.nc.Close()
		return nil, fmt.Errorf("relay: %w", err)
	}
	redisconn.Quiet()
	keys := task.Keys{Prefix: cfg.KeyPrefix}
	fc := cfg.Config
	fc.CheckOrigin = func(r *http.Request) bool { return originAllowed(cfg.Origins, r) }
	s.hub = fanout.New(fc, log)
	s.poller = counts.NewPoller(s.rdb, keys, s.hub, cfg.CountsInterval, log)
	s.reader = stream.NewReader(js, cfg.Stream, s.poller.Read, s.hub, log)
	s.metrics = newMetrics(s)
	s.gate = access.NewGate(cfg.Access.Token)
	s.hosts = access.NewHosts(cfg.Access.Hosts)
	trusted, _ := cfg.proxies() // checked by Validate
	s.limits = newLimiter(cfg.MaxConnsPerIP, cfg.JoinRate, cfg.JoinBurst, trusted)
	s.batches = batches.NewStore(s.rdb, keys)
	s.ln, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		s.nc.Close()
		s.rdb.Close()
		return nil, fmt.Errorf("relay: listen %s: %w", cfg.Addr, err)
	}
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Addr returns the address the relay listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends, then shuts down within cfg.ShutdownTimeout:
// it stops accepting, tells every client to reconnect elsewhere
// (task.CloseGoingAway), drains NATS and closes Redis.
func (s *Server) Run(ctx context.Context) error {
	s.log.Info("relay listening", "addr", s.Addr(), "nats", s.cfg.NATS.Redacted(), "redis", s.cfg.Redis.Redacted(), "interval", s.cfg.Interval)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.hub.Run(gctx, s.cfg.ShutdownTimeout) })
	g.Go(func() error { return s.reader.Run(gctx) })
	g.Go(func() error { return s.poller.Run(gctx) })
	g.Go(func() error {
		if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("relay: serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		return s.http.Shutdown(sctx)
	})
	err := g.Wait()
	s.closeNATS()
	s.rdb.Close()
	s.log.Info("relay stopped")
	return err
}

// closeNATS drains the connection within the shutdown deadline, and
// closes it outright when it cannot drain (NATS is away).
func (s *Server) closeNATS() {
	if err := s.nc.Drain(); err != nil {
		s.nc.Close()
		return
	}
	deadline := time.Now().Add(s.cfg.ShutdownTimeout)
	for !s.nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	s.nc.Close()
}

// Stats returns the hub's counters.
func (s *Server) Stats() fanout.Stats { return s.hub.Stats() }

// Ready reports whether the relay serves complete, current frames, and
// if not, why.
func (s *Server) Ready() (bool, string) {
	switch {
	case !s.nc.IsConnected():
		return false, "nats not connected"
	case !s.poller.Healthy():
		return false, "redis not answering"
	case !s.hub.Live():
		return false, "loading the stream"
	}
	return true, "ok"
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ws", s.credentials(http.HandlerFunc(s.serveWS)))
	mux.Handle("GET /batches", s.credentials(http.HandlerFunc(s.listBatches)))
	mux.Handle("GET /batches/{id}", s.credentials(http.HandlerFunc(s.getBatch)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := s.Ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, why+"\n")
	})
	mux.Handle("GET /metrics", s.gate.API(http.HandlerFunc(s.serveMetrics)))
	return s.hosts.Wrap(s.cors(mux))
}

// credentials lets through a request that carries a connection token the
// dashboard minted, or the access token, as ?token= (a browser's WebSocket
// cannot send headers) or "Authorization: Bearer": always when the relay
// has a secret or an access token, and everyone when it has neither (on
// loopback only, for development).
func (s *Server) credentials(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.RelaySecret == "" && s.gate.Open() {
			next.ServeHTTP(w, r)
			return
		}
		tok := r.URL.Query().Get("token")
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			tok = v
		}
		if (s.cfg.RelaySecret != "" && access.Check(s.cfg.RelaySecret, tok, time.Now()) == nil) ||
			s.gate.Bearer("Bearer "+tok) {
			next.ServeHTTP(w, r)
			return
		}
		s.refusedToken.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="hookpipe"`)
		http.Error(w, "a connection token from the dashboard is required, or the access token", http.StatusUnauthorized)
	})
}

// serveWS admits a WebSocket client within its address's limits, and hands
// it to the hub.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	addr := s.limits.clientAddr(r)
	if ok, why := s.limits.admit(addr, time.Now()); !ok {
		s.refusedIP.Add(1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, why, http.StatusTooManyRequests)
		return
	}
	s.hub.Serve(w, r, func() { s.limits.release(addr) })
}

// cors lets the allowed browser origins read the relay's JSON endpoints.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && r.URL.Path != "/ws" {
			w.Header().Add("Vary", "Origin")
			if !originAllowed(s.cfg.Origins, r) {
				http.Error(w, "origin not allowed", http.StatusForbidden)
				return
			}
			w.Header().Set("Access-Control-Allow-Origin", o)
			if r.Method == http.MethodOptions {
				w.Header().Set("Access-Control-Allow-Methods", "GET, OPTIONS")
				w.Header().Set("Access-Control-Allow-Headers", "Authorization")
				w.Header().Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// originAllowed admits requests without an Origin (not from a browser:
// they need credentials all the same when the relay has them) and the
// configured origins, only: a page on another port of the relay's host is
// another site.
func originAllowed(allowed []string, r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o == "" || access.SameOrigin(o, allowed)
}
