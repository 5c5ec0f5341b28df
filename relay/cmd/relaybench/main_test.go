package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/testdata/testenv"
)

// TestMain lets the test binary play the bench's child processes, as the
// bench binary does.
func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) != "" {
		serveRelay()
		return
	}
	if v := os.Getenv(natsEnv); v != "" {
		serveNATS(v)
		return
	}
	os.Exit(m.Run())
}

// A small run of the whole bench: child NATS and relay, clients, traffic,
// and its own check that every client ends current.
func TestBenchSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	url, prefix := testenv.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, options{
		clients:  20,
		rate:     200,
		duration: time.Second,
		redisURL: url,
		prefix:   prefix,
	})
	if err != nil {
		t.Fatal(err)
	}
}
