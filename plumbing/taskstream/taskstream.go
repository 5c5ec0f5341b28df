// Package taskstream is the one definition of the TASKS stream's JetStream
// configuration, and of the key-value bucket that holds the fold's
// checkpoints: the receiver, the relay and verification all create and
// check them here, from the contract's task.StreamSettings.
package taskstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/hookpipe/hookpipe/plumbing/envflag"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go/jetstream"
)

// Config returns the JetStream configuration of the TASKS stream with s.
func Config(s task.StreamSettings) jetstream.StreamConfig {
	s = s.WithDefaults()
	return jetstream.StreamConfig{
		Name:        task.StreamName,
		Description: "Accepted hookpipe tasks, one subject per priority.",
		Subjects:    []string{task.SubjectAll},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      s.MaxAge,
		MaxBytes:    s.MaxBytes,
		Duplicates:  s.Duplicates,
		Replicas:    s.Replicas,
	}
}

// ErrIncompatible is returned by Ensure for an existing stream whose
// settings break a guarantee hookpipe gives: it does not take every task
// subject, or it forgets message ids sooner than the receivers' dedupe
// relies on.
var ErrIncompatible = errors.New("taskstream: existing stream breaks a guarantee")

// Check compares the configuration of a stream that exists with s. It
// returns the differences that are only worth saying, and an error
// matching ErrIncompatible for one that breaks a guarantee.
func Check(have jetstream.StreamConfig, s task.StreamSettings) (diffs []string, err error) {
	want := Config(s)
	if !slices.Contains(have.Subjects, task.SubjectAll) {
		return nil, fmt.Errorf("%w: stream %s takes %v, not %s", ErrIncompatible, have.Name, have.Subjects, task.SubjectAll)
	}
	if have.Duplicates < want.Duplicates {
		return nil, fmt.Errorf("%w: stream %s drops repeated message ids for %v, shorter than the %v configured: a retry after that would be stored twice",
			ErrIncompatible, have.Name, have.Duplicates, want.Duplicates)
	}
	note := func(what string, have, want any) {
		diffs = append(diffs, fmt.Sprintf("%s %v (configured %v)", what, have, want))
	}
	if have.Duplicates != want.Duplicates {
		note("duplicate window", have.Duplicates, want.Duplicates)
	}
	if have.MaxAge != want.MaxAge {
		note("max age", have.MaxAge, want.MaxAge)
	}
	if have.MaxBytes != want.MaxBytes {
		note("max bytes", have.MaxBytes, want.MaxBytes)
	}
	if have.MaxMsgs > 0 {
		note("max messages", have.MaxMsgs, "none; the fold refuses webhooks when its backlog nears it")
	}
	if have.MaxMsgsPerSubject > 0 {
		note("max messages per subject", have.MaxMsgsPerSubject, "none: it can drop events no fold counted")
	}
	if have.Replicas != want.Replicas {
		note("replicas", have.Replicas, want.Replicas)
	}
	if have.Storage != want.Storage {
		note("storage", have.Storage, want.Storage)
	}
	return diffs, nil
}

// Ensure returns the TASKS stream, creating it with s when it does not
// exist. An existing one is kept as it is, its settings may have been
// tuned by whoever runs it, and checked: differences are logged, and one
// that breaks a guarantee is refused (ErrIncompatible).
func Ensure(ctx context.Context, js jetstream.JetStream, s task.StreamSettings, log *slog.Logger) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, task.StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		cfg := Config(s)
		st, err = js.CreateStream(ctx, cfg)
		switch {
		case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
			st, err = js.Stream(ctx, task.StreamName) // created meanwhile by another component
		case err == nil:
			log.Info("created stream", "stream", cfg.Name, "subjects", cfg.Subjects, "max_age", cfg.MaxAge,
				"max_bytes", cfg.MaxBytes, "duplicates", cfg.Duplicates, "replicas", cfg.Replicas)
			return st, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("taskstream: stream %s: %w", task.StreamName, err)
	}
	diffs, err := Check(st.CachedInfo().Config, s)
	if err != nil {
		return nil, err
	}
	if len(diffs) > 0 {
		log.Warn("stream "+task.StreamName+" exists with other settings than configured; keeping its own",
			"differences", strings.Join(diffs, "; "))
	}
	return st, nil
}

// CheckpointBucket names the key-value bucket of the fold's checkpoints.
const CheckpointBucket = "HOOKPIPE_CHECKPOINTS"

// checkpointHistory is how many checkpoints of each key prefix the bucket
// keeps: verification looks for the newest one at or below what Redis
// holds.
const checkpointHistory = 32

// BucketConfig returns the configuration of the checkpoint bucket: stored
// and replicated like the stream.
func BucketConfig(s task.StreamSettings) jetstream.KeyValueConfig {
	s = s.WithDefaults()
	return jetstream.KeyValueConfig{
		Bucket:      CheckpointBucket,
		Description: "Checkpoints of hookpipe's fold: counts as of a stream sequence.",
		History:     checkpointHistory,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
	}
}

// EnsureBucket returns the checkpoint bucket, creating it when it does not
// exist.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, s task.StreamSettings) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, CheckpointBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, BucketConfig(s))
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			kv, err = js.KeyValue(ctx, CheckpointBucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("taskstream: bucket %s: %w", CheckpointBucket, err)
	}
	return kv, nil
}

// Bind adds the stream's settings to s, for every component that may
// create the stream (or its checkpoint bucket) first.
func Bind(fs *envflag.Set, s *task.StreamSettings) {
	fs.Duration(&s.MaxAge, "stream-max-age", "HOOKPIPE_STREAM_MAX_AGE", "age after which the stream drops events (when this creates it)")
	fs.Int64(&s.MaxBytes, "stream-max-bytes", "HOOKPIPE_STREAM_MAX_BYTES", "size bound of the stream (when this creates it)")
	fs.Duration(&s.Duplicates, "duplicate-window", "HOOKPIPE_DUPLICATE_WINDOW", "how long the stream drops a repeated message id; wider than senders' retry schedules")
	fs.Int(&s.Replicas, "stream-replicas", "HOOKPIPE_STREAM_REPLICAS", "copies of the stream and its checkpoints on a NATS cluster (when this creates them)")
}

// Validate reports settings that cannot work.
func Validate(s task.StreamSettings) error {
	switch {
	case s.MaxAge <= 0 || s.MaxBytes <= 0 || s.Duplicates <= 0:
		return errors.New("--stream-max-age, --stream-max-bytes and --duplicate-window must be positive")
	case s.Duplicates > s.MaxAge:
		return errors.New("--duplicate-window must not exceed --stream-max-age")
	case s.Replicas < 1 || s.Replicas > 5:
		return fmt.Errorf("--stream-replicas %d must be 1 to 5", s.Replicas)
	}
	return nil
}
