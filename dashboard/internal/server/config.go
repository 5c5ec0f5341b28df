// Package server serves the dashboard: the go-app page and its resources,
// the wasm pre-compressed with brotli or gzip as the browser accepts, and
// icons drawn locally, with configuration from flags and environment.
package server

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/access"
	"github.com/hookpipe/hookpipe/plumbing/envflag"
	"github.com/hookpipe/hookpipe/plumbing/logging"
	"github.com/hookpipe/hookpipe/task"
)

// Config is every setting of the dashboard server. Each field has a flag and
// an environment variable; a flag wins over the variable, the variable over
// the default.
type Config struct {
	// Addr is the listen address; default "127.0.0.1:8080".
	// HOOKPIPE_DASHBOARD_ADDR.
	Addr string
	// WebDir is the folder holding app.wasm and its .br and .gz copies;
	// default "", which picks "web" when it holds app.wasm, else
	// "dashboard/web", so the server runs from the module or the repository
	// root. HOOKPIPE_WEB_DIR.
	WebDir string
	// RelayURL is the relays' base URLs given to the page, one or several
	// separated by spaces or commas, such as "http://r1:5002
	// http://r2:5002": the page connects to one and moves to another when
	// it goes away. Default "", which lets the page use its own host name
	// on port 5002. HOOKPIPE_RELAY_URL.
	RelayURL string
	// Access holds the access token the page requires (required beyond
	// loopback) and the host names the server answers to besides loopback
	// ones. HOOKPIPE_ACCESS_TOKEN, HOOKPIPE_ALLOWED_HOSTS.
	Access access.Config
	// RelaySecret mints the connection tokens the page shows the relays;
	// the relays' own, required beyond loopback. HOOKPIPE_RELAY_SECRET.
	RelaySecret string
	// Version names the page's version; a browser that has another one
	// installs the new one and offers to reload. Default "", which derives it
	// from the wasm and the relay URL, so a restart with the same build is
	// not an update. HOOKPIPE_DASHBOARD_VERSION.
	Version string
	// ShutdownTimeout bounds a graceful shutdown; default 10s.
	// HOOKPIPE_SHUTDOWN_TIMEOUT.
	ShutdownTimeout time.Duration
	// Log says how the server logs; default text at info.
	// HOOKPIPE_LOG_FORMAT, HOOKPIPE_LOG_LEVEL.
	Log logging.Config
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Addr:            task.LoopbackAddr(task.DashboardPort),
		ShutdownTimeout: 10 * time.Second,
		Log:             logging.DefaultConfig(),
	}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Addr == "":
		return errors.New("dashboard: --addr is empty")
	case c.ShutdownTimeout <= 0:
		return errors.New("dashboard: --shutdown-timeout must be positive")
	case strings.ContainsAny(c.Version, " /\"\\"):
		return fmt.Errorf("dashboard: --version %q must not hold spaces, slashes or quotes", c.Version)
	}
	if err := c.Log.Validate(); err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	for _, r := range c.RelayURLs() {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("dashboard: --relay-url %q must be http(s)://host[:port]", r)
		}
	}
	if err := c.Access.Validate(c.Addr); err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	if err := access.CheckSecret("--relay-secret", c.RelaySecret); err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	if c.RelaySecret == "" && !access.IsLoopback(c.Addr) {
		return fmt.Errorf("dashboard: listening on %s, beyond loopback, needs --relay-secret (HOOKPIPE_RELAY_SECRET), the relays' own, to give its pages connection tokens", c.Addr)
	}
	return nil
}

// Parse fills c from args and the environment (looked up with getenv) over
// its current values, then validates it. Usage and errors go to out.
func (c *Config) Parse(args []string, getenv func(string) string, out io.Writer) error {
	fs := envflag.New("dashboard", "Serves the hookpipe dashboard, a go-app PWA that shows the relay's live counts.", getenv, out)
	fs.Group("HTTP")
	fs.String(&c.Addr, "addr", "HOOKPIPE_DASHBOARD_ADDR", "listen address")
	fs.String(&c.WebDir, "web-dir", "HOOKPIPE_WEB_DIR", "folder of app.wasm, app.wasm.br and app.wasm.gz (default: web if it holds app.wasm, else dashboard/web)")
	fs.String(&c.RelayURL, "relay-url", "HOOKPIPE_RELAY_URL", "relay base URLs for the page, space or comma separated (default: the page's host on the relay's port)")
	fs.String(&c.Version, "version", "HOOKPIPE_DASHBOARD_VERSION", "page version (default: derived from the wasm and relay URL)")
	fs.Duration(&c.ShutdownTimeout, "shutdown-timeout", "HOOKPIPE_SHUTDOWN_TIMEOUT", "deadline of a graceful shutdown")
	fs.Group("Access")
	c.Access.Bind(fs)
	fs.Secret(&c.RelaySecret, "relay-secret", "HOOKPIPE_RELAY_SECRET", "the relays' secret, to mint connection tokens for the page; required beyond loopback")
	fs.Group("Logging")
	c.Log.Bind(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return c.Validate()
}

// RelayURLs returns the relays' base URLs.
func (c Config) RelayURLs() []string {
	return strings.FieldsFunc(c.RelayURL, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
}
