package publish_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/natsconn"
	"github.com/hookpipe/hookpipe/receiver/internal/publish"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go/jetstream"
)

func connect(t *testing.T, url string) (*publish.Publisher, jetstream.JetStream) {
	t.Helper()
	p, err := publish.Connect(natsconn.Options{URL: url}, task.StreamSettings{}, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	js := testenv.JetStream(t, url)
	testenv.Eventually(t, 5*time.Second, func() bool { return p.EnsureStream(context.Background()) == nil }, "stream not created")
	return p, js
}

func publishAck(p *publish.Publisher, id string, i int) (publish.Ack, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	t := task.Task{BatchID: "0f8fad5b-d9cb-469f-a165-70867728950e", ID: int64(i), Owner: "Ada", Priority: task.Priorities[i%task.NumPriorities]}
	data := t.Encode()
	return p.Publish(ctx, id, t.Priority.Subject(), data, task.Fingerprint(data))
}

func publishSeq(p *publish.Publisher, id string, i int) (uint64, error) {
	a, err := publishAck(p, id, i)
	return a.Seq, err
}

func publishOne(p *publish.Publisher, id string, i int) error {
	_, err := publishSeq(p, id, i)
	return err
}

func streamInfo(t *testing.T, js jetstream.JetStream) *jetstream.StreamInfo {
	t.Helper()
	s, err := js.Stream(context.Background(), task.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// Concurrent publishes each get their own acknowledgement, with their
// own stream sequence; a repeated message id is stored once, and every
// publish of it answers the sequence of that one copy.
func TestPublishWaitsForEachAcknowledgement(t *testing.T) {
	ns := testenv.NATS(t)
	p, js := connect(t, ns.ClientURL())
	var wg sync.WaitGroup
	var mu sync.Mutex
	seqs := map[uint64]int{}
	sameSeqs := map[uint64]bool{}
	errs := make(chan error, 400)
	for i := range 200 {
		wg.Go(func() {
			seq, err := publishSeq(p, "", i)
			mu.Lock()
			seqs[seq]++
			mu.Unlock()
			errs <- err
		})
		wg.Go(func() {
			seq, err := publishSeq(p, "msg_same", 0)
			mu.Lock()
			sameSeqs[seq] = true
			mu.Unlock()
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := streamInfo(t, js).State.Msgs; got != 201 {
		t.Fatalf("stream holds %d messages, want 200 without id and 1 for the repeated id", got)
	}
	if len(seqs) != 200 || len(sameSeqs) != 1 {
		t.Fatalf("%d distinct sequences for 200 messages without id, %d for the repeated id; want 200 and 1", len(seqs), len(sameSeqs))
	}
	for seq := range sameSeqs {
		if seq == 0 || seq > 201 || seqs[seq] != 0 {
			t.Fatalf("repeated id answered sequence %d, which is not its own", seq)
		}
	}
}

// A publish the stream refuses fails with the stream's reason, and one
// that no stream takes makes the publisher create the stream again.
func TestPublishFailures(t *testing.T) {
	ns := testenv.NATS(t)
	p, js := connect(t, ns.ClientURL())

	// Refused: the stream is full and discards new messages.
	ctx := context.Background()
	s, err := js.Stream(ctx, task.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgs, cfg.Discard = 1, jetstream.DiscardNew
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := publishOne(p, "", 1); err != nil {
		t.Fatalf("first message: %v", err)
	}
	err = publishOne(p, "", 2)
	var apiErr *jetstream.APIError
	if !errors.Is(err, publish.ErrUnavailable) || !errors.As(err, &apiErr) {
		t.Fatalf("publish to a full stream: %v, want ErrUnavailable with the stream's error", err)
	}

	// No stream: answered by the server at once, and the next publish
	// creates the stream.
	if err := js.DeleteStream(ctx, task.StreamName); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := publishOne(p, "", 3); !errors.Is(err, publish.ErrUnavailable) {
		t.Fatalf("publish without a stream: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("publish without a stream took %v: it should not wait for its deadline", d)
	}
	if err := publishOne(p, "", 4); err != nil {
		t.Fatalf("publish after the stream was deleted: %v", err)
	}
	if got := streamInfo(t, js).State.Msgs; got != 1 {
		t.Fatalf("recreated stream holds %d messages, want 1", got)
	}
}

// A publish with NATS gone ends at once with ErrUnavailable rather than at
// its deadline.
func TestPublishFailsFastWhenNATSGoes(t *testing.T) {
	ns := testenv.StartNATS(t, -1, t.TempDir())
	p, _ := connect(t, ns.ClientURL())
	if err := publishOne(p, "", 0); err != nil {
		t.Fatal(err)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	start := time.Now()
	if err := publishOne(p, "", 1); !errors.Is(err, publish.ErrUnavailable) {
		t.Fatalf("publish with NATS gone: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("publish with NATS gone took %v", d)
	}
}

// The stream says when it had a message id already, with the sequence of
// the copy it keeps, which Stored reads back with its fingerprint header.
func TestDuplicateAckAndStored(t *testing.T) {
	ns := testenv.NATS(t)
	p, js := connect(t, ns.ClientURL())
	first, err := publishAck(p, "msg_dup", 5)
	if err != nil || first.Duplicate {
		t.Fatalf("first publish: %+v %v", first, err)
	}
	again, err := publishAck(p, "msg_dup", 6) // another task under the same id
	if err != nil || !again.Duplicate || again.Seq != first.Seq {
		t.Fatalf("repeated id: %+v %v, want a duplicate of %d", again, err, first.Seq)
	}
	data, err := p.Stored(context.Background(), first.Seq)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := task.Decode(data)
	if err != nil || tk.ID != 5 {
		t.Fatalf("stored %s, %v: want task 5", data, err)
	}
	s, _ := js.Stream(context.Background(), task.StreamName)
	m, err := s.GetMsg(context.Background(), first.Seq)
	if err != nil || !task.FingerprintMatches(m.Header.Get(task.HeaderFingerprint), m.Data) {
		t.Fatalf("stored message lacks its fingerprint: %v %v", m.Header, err)
	}
}
