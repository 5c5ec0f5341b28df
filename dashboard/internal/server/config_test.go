package server

import (
	"bytes"
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/logging"
)

func TestConfigParse(t *testing.T) {
	env := map[string]string{
		"HOOKPIPE_DASHBOARD_ADDR": ":9000",
		"HOOKPIPE_RELAY_URL":      "http://relay:5002",
		"HOOKPIPE_WEB_DIR":        "/srv/web",
		"HOOKPIPE_LOG_FORMAT":     "json",
	}
	c := DefaultConfig()
	var out bytes.Buffer
	err := c.Parse([]string{"-addr", "127.0.0.1:8081", "-shutdown-timeout", "3s"}, func(k string) string { return env[k] }, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Addr: "127.0.0.1:8081", WebDir: "/srv/web", RelayURL: "http://relay:5002",
		ShutdownTimeout: 3 * time.Second, Log: logging.Config{Format: "json", Level: "info"}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config %+v, want %+v (flags over environment over defaults)", c, want)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"relay without scheme", []string{"-relay-url", "127.0.0.1:5002"}, nil, "--relay-url"},
		{"relay ws scheme", []string{"-relay-url", "ws://relay"}, nil, "--relay-url"},
		{"log format", []string{"-log-format", "xml"}, nil, "--log-format"},
		{"empty addr", []string{"-addr", ""}, nil, "--addr"},
		{"bad env duration", nil, map[string]string{"HOOKPIPE_SHUTDOWN_TIMEOUT": "soon"}, "HOOKPIPE_SHUTDOWN_TIMEOUT"},
		{"version with slash", []string{"-version", "a/b"}, nil, "--version"},
		{"argument", []string{"extra"}, nil, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			var out bytes.Buffer
			err := c.Parse(tt.args, func(k string) string { return tt.env[k] }, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	c := DefaultConfig()
	var out bytes.Buffer
	err := c.Parse([]string{"-help"}, func(string) string { return "" }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, v := range []string{"HOOKPIPE_DASHBOARD_ADDR", "HOOKPIPE_WEB_DIR", "HOOKPIPE_RELAY_URL",
		"HOOKPIPE_DASHBOARD_VERSION", "HOOKPIPE_SHUTDOWN_TIMEOUT", "HOOKPIPE_LOG_FORMAT"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("--help does not mention %s", v)
		}
	}
}
