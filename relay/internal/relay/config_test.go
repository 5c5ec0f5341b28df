package relay

import (
	"bytes"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseConfigLayers(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		{"defaults", nil, nil, func(t *testing.T, c Config) {
			if c.Addr != "127.0.0.1:5002" || c.Interval != 10*time.Millisecond || c.SnapshotEvents != 100 || c.KeyPrefix != "hookpipe:" {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{"env", nil, map[string]string{"HOOKPIPE_RELAY_INTERVAL": "40ms", "NATS_URL": "nats://n:1", "HOOKPIPE_RELAY_ORIGINS": "http://a:1, http://b:2"},
			func(t *testing.T, c Config) {
				if c.Interval != 40*time.Millisecond || c.NATS.URL != "nats://n:1" || !slices.Equal(c.Origins, []string{"http://a:1", "http://b:2"}) {
					t.Errorf("env not applied: %+v", c)
				}
			}},
		{"flag beats env", []string{"--interval=20ms", "--max-conns", "7"}, map[string]string{"HOOKPIPE_RELAY_INTERVAL": "40ms"},
			func(t *testing.T, c Config) {
				if c.Interval != 20*time.Millisecond || c.MaxConns != 7 {
					t.Errorf("flags not applied: %+v", c)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig(tt.args, func(k string) string { return tt.env[k] }, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad env", nil, map[string]string{"HOOKPIPE_RELAY_RING_SIZE": "many"}, "HOOKPIPE_RELAY_RING_SIZE"},
		{"negative", []string{"--queue-size=0"}, nil, "queue-size must be positive"},
		{"interval order", []string{"--interval=1s", "--max-interval=10ms"}, nil, "max-interval"},
		{"pong vs ping", []string{"--ping-interval=1m", "--pong-timeout=30s"}, nil, "pong-timeout"},
		{"log format", []string{"--log-format=xml"}, nil, "log-format"},
		{"snapshot over ring", []string{"--snapshot-events=50", "--ring-size=10"}, nil, "snapshot-events"},
		{"stray argument", []string{"extra"}, nil, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(tt.args, func(k string) string { return tt.env[k] }, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// Every flag's usage names its environment variable, so --help documents
// both.
func TestHelpListsEnv(t *testing.T) {
	var out bytes.Buffer
	_, err := ParseConfig([]string{"--help"}, func(string) string { return "" }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, env := range []string{"NATS_URL", "REDIS_URL", "HOOKPIPE_KEY_PREFIX", "HOOKPIPE_LOG_FORMAT", "HOOKPIPE_RELAY_ADDR",
		"HOOKPIPE_RELAY_INTERVAL", "HOOKPIPE_RELAY_ORIGINS", "HOOKPIPE_RELAY_MAX_CONNS", "HOOKPIPE_SHUTDOWN_TIMEOUT"} {
		if !strings.Contains(out.String(), "($"+env) {
			t.Errorf("--help does not name %s", env)
		}
	}
	if n := strings.Count(out.String(), "($"); n != strings.Count(out.String(), "\n  --") {
		t.Errorf("%d env names for %d flags", n, strings.Count(out.String(), "\n  --"))
	}
}
