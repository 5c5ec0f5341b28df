package stack_test

import (
	"errors"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookpipe/hookpipe/devenv/stack"
	"github.com/hookpipe/hookpipe/task"
)

func parse(t testing.TB, args []string, env map[string]string) (stack.Config, error) {
	t.Helper()
	c := stack.DefaultConfig()
	err := c.Parse(args, func(k string) string { return env[k] }, io.Discard)
	return c, err
}

func TestConfigHelpListsEveryFlagByGroup(t *testing.T) {
	c := stack.DefaultConfig()
	var out strings.Builder
	if err := c.Parse([]string{"--help"}, func(string) string { return "" }, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
	help := out.String()
	for _, want := range []string{
		"Folders:", "Listening:", "Logging:",
		"--bin-dir", "$HOOKPIPE_BIN_DIR", "--data-dir", "$HOOKPIPE_DATA_DIR", "--web-dir", "$HOOKPIPE_WEB_DIR",
		"--host", "$HOOKPIPE_HOST", "--receiver-port", "$HOOKPIPE_RECEIVER_PORT", "--relay-port", "$HOOKPIPE_RELAY_PORT",
		"--dashboard-port", "$HOOKPIPE_DASHBOARD_PORT", "--producer-port", "$HOOKPIPE_PRODUCER_PORT",
		"--log-format", "$HOOKPIPE_LOG_FORMAT", "--log-level", "$HOOKPIPE_LOG_LEVEL",
		"NATS_URL", "REDIS_URL",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("--help does not mention %s:\n%s", want, help)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := parse(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := c.Options
	if o.BinDir != "bin" || o.DataDir != ".data" || o.WebDir != filepath.Join("dashboard", "web") || o.Host != task.LoopbackHost {
		t.Errorf("got folders %q %q %q and host %q, want bin .data dashboard/web %s", o.BinDir, o.DataDir, o.WebDir, o.Host, task.LoopbackHost)
	}
	got := [4]int{o.ReceiverPort, o.RelayPort, o.DashboardPort, o.ProducerPort}
	if want := [4]int{task.ReceiverPort, task.RelayPort, task.DashboardPort, task.ProducerPort}; got != want {
		t.Errorf("got ports %v, want %v", got, want)
	}
	if c.Log.Format != "text" || c.Log.Level != "info" {
		t.Errorf("got logging %+v, want text at info", c.Log)
	}
}

func TestConfigFlagsAndEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want func(stack.Config) bool
	}{
		{"variable sets a port", nil, map[string]string{"HOOKPIPE_RECEIVER_PORT": "6001"},
			func(c stack.Config) bool { return c.Options.ReceiverPort == 6001 }},
		{"flag wins over variable", []string{"--receiver-port", "6002"}, map[string]string{"HOOKPIPE_RECEIVER_PORT": "6001"},
			func(c stack.Config) bool { return c.Options.ReceiverPort == 6002 }},
		{"variable picks a free port", nil, map[string]string{"HOOKPIPE_DASHBOARD_PORT": "-1"},
			func(c stack.Config) bool { return c.Options.DashboardPort == -1 }},
		{"single-dash flags as before", []string{"-bin-dir", "out", "-data-dir", "d", "-web-dir", "w", "-host", "::1", "-relay-port", "6003", "-producer-port", "6004"}, nil,
			func(c stack.Config) bool {
				o := c.Options
				return o.BinDir == "out" && o.DataDir == "d" && o.WebDir == "w" && o.Host == "::1" && o.RelayPort == 6003 && o.ProducerPort == 6004
			}},
		{"variables set the folders", nil, map[string]string{"HOOKPIPE_BIN_DIR": "b", "HOOKPIPE_DATA_DIR": "d", "HOOKPIPE_WEB_DIR": "w"},
			func(c stack.Config) bool {
				return c.Options.BinDir == "b" && c.Options.DataDir == "d" && c.Options.WebDir == "w"
			}},
		{"variable sets the log level", nil, map[string]string{"HOOKPIPE_LOG_LEVEL": "debug"},
			func(c stack.Config) bool { return c.Log.Level == "debug" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(t, tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want(c) {
				t.Errorf("got %+v", c)
			}
		})
	}
}

func TestConfigRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"port out of range", []string{"--relay-port", "70000"}, nil, "--relay-port 70000"},
		{"port not a number", nil, map[string]string{"HOOKPIPE_PRODUCER_PORT": "x"}, "HOOKPIPE_PRODUCER_PORT"},
		{"unknown log level", []string{"--log-level", "loud"}, nil, "--log-level"},
		{"positional argument", []string{"serve"}, nil, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.args, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
