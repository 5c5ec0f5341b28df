package cli_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hookpipe/hookpipe/plumbing/program"
	"github.com/hookpipe/hookpipe/producer/internal/cli"
)

func TestHelpListsEveryFlagWithItsVariable(t *testing.T) {
	tests := []struct {
		cmd  string
		want []string
	}{
		{"serve", []string{"--addr", "HOOKPIPE_PRODUCER_ADDR", "MIN_NBR_TASKS", "MAX_NBR_TASKS", "WAIT_TIME", "WEBHOOK_RECEIVER_URL", "HOOKPIPE_WEBHOOK_SECRET", "HOOKPIPE_RATE", "HOOKPIPE_CONCURRENCY", "HOOKPIPE_LOG_FORMAT", "producer send"}},
		{"send", []string{"--batches", "--size", "--seed", "HOOKPIPE_RETRY_ATTEMPTS", "HOOKPIPE_RETRY_MAX_ELAPSED"}},
		{"record", []string{"--out", "--seed", "--size", "WAIT_TIME"}},
		{"replay", []string{"--same-ids", "--speed", "--counts", "REDIS_URL", "HOOKPIPE_KEY_PREFIX"}},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			out, err := run(t, context.Background(), tt.cmd, "--help")
			if err != nil {
				t.Fatalf("--help: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestEnvironmentAndFlags(t *testing.T) {
	env := map[string]string{"MIN_NBR_TASKS": "4", "MAX_NBR_TASKS": "4", "WAIT_TIME": "0.5", "HOOKPIPE_SEED": "9"}
	out := &syncBuffer{}
	m := &cli.Main{Stdout: out, Stderr: out, Getenv: func(k string) string { return env[k] }}
	if err := program.Do(context.Background(), m, []string{"record", "--out", t.TempDir() + "/x.jsonl", "--log-level", "debug"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "tasks=4 seed=9") {
		t.Fatalf("environment not applied:\n%s", out)
	}
	out2 := &syncBuffer{}
	m = &cli.Main{Stdout: out2, Stderr: out2, Getenv: func(k string) string { return env[k] }}
	if err := program.Do(context.Background(), m, []string{"record", "--out", t.TempDir() + "/x.jsonl", "--seed", "10", "--size", "2"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out2.String(), "tasks=2 seed=10") {
		t.Fatalf("flags do not override the environment:\n%s", out2)
	}
}

func TestBadConfigIsRefused(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"min above max", nil, []string{"send", "--min-tasks", "10", "--max-tasks", "5"}, "min-tasks"},
		{"zero min", map[string]string{"MIN_NBR_TASKS": "0"}, []string{"send"}, "min-tasks"},
		{"env not a number", map[string]string{"MAX_NBR_TASKS": "lots"}, []string{"send"}, "MAX_NBR_TASKS"},
		{"bad secret", nil, []string{"send", "--webhook-secret", "whsec_***"}, "webhook-secret"},
		{"bad speed", nil, []string{"replay", "--speed", "fast", "f.jsonl"}, "speed"},
		{"bad log format", nil, []string{"send", "--log-format", "xml"}, "log-format"},
		{"retries past the duplicate window", nil, []string{"send", "--retry-max-elapsed", "11m"}, "duplicate window"},
		{"zero concurrency", nil, []string{"send", "--concurrency", "0"}, "concurrency"},
		{"negative wait", nil, []string{"send", "--wait", "-1s"}, "wait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := &syncBuffer{}
			m := &cli.Main{Stdout: out, Stderr: out, Getenv: func(k string) string { return tt.env[k] }}
			err := program.Do(context.Background(), m, tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error about %q", err, tt.want)
			}
			if strings.Contains(out.String(), "out of") {
				t.Fatalf("sent something:\n%s", out)
			}
		})
	}
	if err := program.Do(context.Background(), &cli.Main{Stdout: &syncBuffer{}, Stderr: &syncBuffer{}}, []string{"launch"}); !errors.Is(err, cli.ErrUsage) {
		t.Fatalf("unknown command: %v, want ErrUsage", err)
	}
}

func TestDefaultsAreValid(t *testing.T) {
	if err := cli.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}
