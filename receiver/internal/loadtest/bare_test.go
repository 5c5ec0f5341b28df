package loadtest_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hookpipe/hookpipe/receiver/internal/loadtest"
	"github.com/hookpipe/hookpipe/task"
)

// TestBareAnswersAsTheReceiver checks that the baseline answers what the
// receiver answers a new task, so that both runs move the same bytes.
func TestBareAnswersAsTheReceiver(t *testing.T) {
	url, stop, err := loadtest.Bare()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if !strings.HasSuffix(url, task.ReceiverPath) {
		t.Errorf("got URL %s, want one ending in %s", url, task.ReceiverPath)
	}
	res, err := http.Post(url, "application/json", bytes.NewReader(loadtest.Body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("got status %d, want 200", res.StatusCode)
	}
	if got := task.ParseAnswer(body); got.Status != task.StatusAccepted || got.Seq == 0 {
		t.Errorf("got answer %+v from %s, want accepted with a sequence", got, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", ct)
	}
}
