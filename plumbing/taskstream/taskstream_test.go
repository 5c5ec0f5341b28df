package taskstream_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/taskstream"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go/jetstream"
)

func TestEnsureCreatesThenChecks(t *testing.T) {
	ns := testenv.NATS(t)
	js := testenv.JetStream(t, ns.ClientURL())
	ctx := context.Background()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s := task.StreamSettings{MaxAge: time.Hour, MaxBytes: 1 << 20, Duplicates: 2 * time.Minute, Replicas: 1}
	st, err := taskstream.Ensure(ctx, js, s, log)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; c.MaxAge != time.Hour || c.Duplicates != 2*time.Minute || c.Subjects[0] != task.SubjectAll {
		t.Fatalf("created %+v", c)
	}
	// The same settings: nothing to say.
	logs.Reset()
	if _, err := taskstream.Ensure(ctx, js, s, log); err != nil || strings.Contains(logs.String(), "WARN") {
		t.Fatalf("second Ensure: %v, logs %s", err, logs.String())
	}
	// Other limits are kept, and said.
	other := s
	other.MaxAge = 2 * time.Hour
	if _, err := taskstream.Ensure(ctx, js, other, log); err != nil || !strings.Contains(logs.String(), "max age 1h0m0s (configured 2h0m0s)") {
		t.Fatalf("Ensure with another max age: %v, logs %s", err, logs.String())
	}
	// A wider duplicate window than the stream's breaks the dedupe.
	wider := s
	wider.Duplicates = 5 * time.Minute
	if _, err := taskstream.Ensure(ctx, js, wider, log); !errors.Is(err, taskstream.ErrIncompatible) {
		t.Fatalf("Ensure needing a wider duplicate window: %v, want ErrIncompatible", err)
	}
}

func TestEnsureRefusesAStreamWithoutTheSubjects(t *testing.T) {
	ns := testenv.NATS(t)
	js := testenv.JetStream(t, ns.ClientURL())
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: task.StreamName, Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := taskstream.Ensure(ctx, js, task.DefaultStreamSettings(), slog.New(slog.DiscardHandler)); !errors.Is(err, taskstream.ErrIncompatible) {
		t.Fatalf("got %v, want ErrIncompatible", err)
	}
}

func TestBucket(t *testing.T) {
	ns := testenv.NATS(t)
	js := testenv.JetStream(t, ns.ClientURL())
	kv, err := taskstream.EnsureBucket(context.Background(), js, task.DefaultStreamSettings())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := taskstream.EnsureBucket(context.Background(), js, task.DefaultStreamSettings()); err != nil {
		t.Fatalf("second EnsureBucket: %v", err)
	}
	if kv.Bucket() != taskstream.CheckpointBucket {
		t.Fatalf("bucket %s", kv.Bucket())
	}
}
