// Package logging sets up the log/slog logger of every hookpipe binary from
// the same two settings, --log-format and --log-level.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/hookpipe/hookpipe/plumbing/envflag"
)

// Config says how a binary logs.
type Config struct {
	// Format is "text" for a terminal or "json" for a log collector;
	// default "text" (--log-format, HOOKPIPE_LOG_FORMAT).
	Format string
	// Level is the least severe level written: "debug", "info", "warn" or
	// "error"; default "info" (--log-level, HOOKPIPE_LOG_LEVEL).
	Level string
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config { return Config{Format: "text", Level: "info"} }

// Bind adds --log-format and --log-level to s.
func (c *Config) Bind(s *envflag.Set) {
	s.String(&c.Format, "log-format", "HOOKPIPE_LOG_FORMAT", "log format: text or json")
	s.String(&c.Level, "log-level", "HOOKPIPE_LOG_LEVEL", "least severe level logged: debug, info, warn or error")
}

// Validate reports a format or level that does not exist.
func (c Config) Validate() error {
	if c.Format != "text" && c.Format != "json" {
		return fmt.Errorf("--log-format %q must be text or json", c.Format)
	}
	if _, err := c.level(); err != nil {
		return err
	}
	return nil
}

func (c Config) level() (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(c.Level))); err != nil {
		return 0, fmt.Errorf("--log-level %q must be debug, info, warn or error", c.Level)
	}
	return lv, nil
}

// New returns a logger writing to w as c says; an invalid setting falls
// back to its default (Validate reports it first).
func (c Config) New(w io.Writer) *slog.Logger {
	lv, err := c.level()
	if err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
