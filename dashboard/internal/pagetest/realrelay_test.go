package pagetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hookpipe/hookpipe/dashboard/internal/server"
	"github.com/hookpipe/hookpipe/devenv/proc"
	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/plumbing/taskstream"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// system is the real back end of the page: NATS with the TASKS stream,
// Redis with the counts, and the relay between them and the page.
type system struct {
	t                 testing.TB
	js                jetstream.JetStream
	rdb               *redis.Client
	keys              task.Keys
	natsURL, redisURL string
	port              int
	relay             *exec.Cmd
	nMu               sync.Mutex
	n                 int // tasks numbered so far; reserve takes the next ones
	recv              *testenv.ReceiverProcess
	dashPort          int    // where the dashboard listens: the relay's origin
	relaySecret       string // the relay's, when it requires connection tokens
	relayArgs         []string
}

func newSystem(t testing.TB) *system {
	t.Helper()
	return newSystemWith(t, "")
}

// newSystemWith is newSystem with a relay that requires connection tokens
// minted with relaySecret (none when empty) and takes relayArgs besides.
func newSystemWith(t testing.TB, relaySecret string, relayArgs ...string) *system {
	t.Helper()
	ns := testenv.NATS(t)
	redisURL, prefix := testenv.Redis(t)
	js := testenv.JetStream(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, taskstream.Config(task.DefaultStreamSettings())); err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	port, err := proc.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s := &system{t: t, js: js, rdb: rdb, keys: task.Keys{Prefix: prefix}, natsURL: ns.ClientURL(), redisURL: redisURL, port: port,
		relaySecret: relaySecret, relayArgs: relayArgs}
	s.recv = testenv.Receiver(t, ns.ClientURL(), redisURL, prefix)
	if s.dashPort, err = proc.FreePort("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	s.startRelay()
	t.Cleanup(s.stopRelay)
	return s
}

func (s *system) relayURL() string { return "http://127.0.0.1:" + strconv.Itoa(s.port) }

func (s *system) startRelay() {
	s.t.Helper()
	args := []string{"--addr", "127.0.0.1:" + strconv.Itoa(s.port),
		"--nats-url", s.natsURL, "--redis-url", s.redisURL, "--key-prefix", s.keys.Prefix, "--log-level", "warn",
		"--origins", "http://127.0.0.1:" + strconv.Itoa(s.dashPort)}
	if s.relaySecret != "" {
		// A secret given blank is an error: none is the flag left out.
		args = append(args, "--relay-secret", s.relaySecret)
	}
	args = append(args, s.relayArgs...)
	cmd := exec.Command(testenv.Binary(s.t, "github.com/hookpipe/hookpipe/relay"), args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.relay = cmd
	testenv.Eventually(s.t, testenv.ReadyTimeout, func() bool {
		res, err := httpClient.Get(s.relayURL() + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	}, "relay not ready")
}

// stopRelay kills the relay at once, as a crash would.
func (s *system) stopRelay() {
	if s.relay == nil {
		return
	}
	s.relay.Process.Kill()
	s.relay.Wait()
	s.relay = nil
}

// accept sends n new tasks to the receiver, each with a webhook id of its
// own and retried until it is answered 200.
func (s *system) accept(n int) { s.t.Helper(); s.send(n, true) }

// send sends n new tasks, with webhook ids or without, each retried until
// it is answered 200. Without an id the receiver would count a retry after
// a lost answer again: the test's receiver answers, so none is lost.
// reserve numbers n tasks and returns the first number: loads may run
// beside each other.
func (s *system) reserve(n int) int {
	s.nMu.Lock()
	defer s.nMu.Unlock()
	first := s.n
	s.n += n
	return first
}

func (s *system) send(n int, withIDs bool) {
	s.t.Helper()
	for range n {
		i := s.reserve(1)
		tk := task.Task{BatchID: batchA, ID: int64(i), Owner: "Owner " + strconv.Itoa(i), Priority: task.Priorities[i*7%4]}
		id := "t-" + strconv.Itoa(i+1)
		testenv.Eventually(s.t, 10*time.Second, func() bool {
			req, _ := http.NewRequest(http.MethodPost, s.recv.URL, bytes.NewReader(tk.Encode()))
			req.Header.Set("Content-Type", "application/json")
			if withIDs {
				req.Header.Set(task.HeaderID, id)
			}
			res, err := httpClient.Do(req)
			if err != nil {
				return false
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return res.StatusCode == http.StatusOK
		}, "task %s not accepted", id)
	}
}

// truth returns the stream's last sequence and the counts in Redis once
// the receiver's fold has reached it.
func (s *system) truth() (uint64, task.Counts) {
	s.t.Helper()
	var last uint64
	var c task.Counts
	testenv.Eventually(s.t, 20*time.Second, func() bool {
		st, err := s.js.Stream(context.Background(), task.StreamName)
		if err != nil {
			return false
		}
		info, err := st.Info(context.Background())
		if err != nil {
			return false
		}
		last = info.State.LastSeq
		var w uint64
		var ok bool
		c, w, ok, err = redisconn.ReadCounts(context.Background(), s.rdb, s.keys)
		return err == nil && ok && w == last
	}, "the fold did not reach the stream's end")
	return last, c
}

// TestRealRelayRestart runs the page against the real relay, NATS and
// Redis: the page shows what Redis and the stream hold, goes on showing it
// while tasks arrive, and matches them again after the relay crashed and
// came back while tasks kept arriving.
func TestRealRelayRestart(t *testing.T) {
	sys := newSystem(t)
	sys.accept(30)
	_, url := startDashboardAt(t, sys.dashPort, sys.relayURL())
	ctx := newBrowser(t)
	run(t, ctx, 60*time.Second, chromedp.Navigate(url))
	seq, counts := sys.truth()
	waitJS(t, ctx, 60*time.Second, shows(seq, counts), "page does not show what Redis holds")
	waitJS(t, ctx, 5*time.Second, fmt.Sprintf(connIs, "live"), "connection not live")

	sys.accept(40)
	seq, counts = sys.truth()
	waitJS(t, ctx, 15*time.Second, shows(seq, counts), "live updates do not reach the page")

	sys.stopRelay()
	waitJS(t, ctx, 15*time.Second, fmt.Sprintf(connIs, "reconnecting"), "page did not notice the relay died")
	sys.accept(25)
	sys.startRelay()
	sys.accept(5)
	seq, counts = sys.truth()
	waitJS(t, ctx, 30*time.Second, shows(seq, counts), "page does not match Redis after the relay restarted")
	waitJS(t, ctx, 5*time.Second, fmt.Sprintf(connIs, "live"), "connection not live again")
	items := eval[int](t, ctx, `document.querySelectorAll('#messages li').length`)
	first := eval[string](t, ctx, `document.querySelector('#messages li').dataset.seq`)
	if first != strconv.FormatUint(seq, 10) || items < 30 {
		t.Errorf("list has %d items, newest seq %s; want at least the 30 since the restart, newest %d", items, first, seq)
	}
	waitJS(t, ctx, 15*time.Second, fmt.Sprintf(
		`document.querySelector('#batch') && document.querySelector('#batch').dataset.done === '%d'`, counts.Total()),
		"batch view does not show the batch's count from Redis")
}

// TestAccessTokenAndConnectionTokens runs the page as it runs beyond
// loopback: the dashboard asks for the access token once, holds it as a
// cookie, and gets connection tokens for a relay that takes nothing else.
func TestAccessTokenAndConnectionTokens(t *testing.T) {
	const token, secret = "page-access-token-for-test", "relay-secret-for-the-test"
	sys := newSystemWith(t, secret)
	sys.accept(12)
	m := server.NewMain()
	m.Config.Addr = "127.0.0.1:" + strconv.Itoa(sys.dashPort)
	m.Config.WebDir = testWebDir(t)
	m.Config.RelayURL = sys.relayURL()
	m.Config.Access.Token, m.Config.RelaySecret = token, secret
	m.Log = slog.New(slog.DiscardHandler)
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	url := "http://" + m.Addr()
	ctx := newBrowser(t)
	run(t, ctx, 60*time.Second, chromedp.Navigate(url))
	if !eval[bool](t, ctx, `!!document.querySelector('input[name=access]')`) {
		t.Fatal("without the token the page does not ask for it")
	}
	run(t, ctx, 10*time.Second, chromedp.SendKeys(`input[name=access]`, token), chromedp.Submit(`input[name=access]`))
	seq, counts := sys.truth()
	waitJS(t, ctx, 60*time.Second, shows(seq, counts), "page with the access token does not show what the relay serves")
	waitJS(t, ctx, 5*time.Second, fmt.Sprintf(connIs, "live"), "connection not live")
	sys.accept(3)
	seq, counts = sys.truth()
	waitJS(t, ctx, 15*time.Second, shows(seq, counts), "live updates do not reach the page")
	// The batch view reads /batches from the relay with the token too.
	waitJS(t, ctx, 15*time.Second, fmt.Sprintf(
		`document.querySelector('#batch') && document.querySelector('#batch').dataset.done === '%d'`, counts.Total()),
		"batch view does not show the batch from the relay")
}
