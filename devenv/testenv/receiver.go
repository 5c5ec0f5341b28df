package testenv

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/hookpipe/hookpipe/devenv/proc"
	"github.com/hookpipe/hookpipe/task"
)

var (
	buildMu sync.Mutex
	built   = map[string]string{} // import path -> binary
)

// Binary builds the main package at import path (such as
// "github.com/hookpipe/hookpipe/receiver") once per test binary, with the
// workspace's go command, and returns the binary's path. The build cache
// makes it quick after the first time.
func Binary(t testing.TB, path string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[path]; ok {
		return bin
	}
	dir, err := os.MkdirTemp("", "hookpipe-bin")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	bin := filepath.Join(dir, filepath.Base(path))
	if out, err := exec.Command("go", "build", "-o", bin, path).CombinedOutput(); err != nil {
		t.Fatalf("testenv: go build %s: %v\n%s", path, err, out)
	}
	built[path] = bin
	return bin
}

// RemoveBinaries removes what Binary built; a TestMain calls it after the
// tests ran.
func RemoveBinaries() {
	buildMu.Lock()
	defer buildMu.Unlock()
	for path, bin := range built {
		os.RemoveAll(filepath.Dir(bin))
		delete(built, path)
	}
}

// ReceiverProcess is a real receiver, the binary, run by a test.
type ReceiverProcess struct {
	// URL is where webhooks go.
	URL  string
	Addr string
	env  []string
	bin  string
	cmd  *exec.Cmd
}

// Receiver builds and starts a receiver on natsURL, redisURL and prefix,
// on a free port, with the extra environment given, and waits until it is
// ready. It is killed when the test ends.
func Receiver(t testing.TB, natsURL, redisURL, prefix string, extra ...string) *ReceiverProcess {
	t.Helper()
	port, err := proc.FreePort("127.0.0.1")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	r := &ReceiverProcess{Addr: "127.0.0.1:" + strconv.Itoa(port), bin: Binary(t, "github.com/hookpipe/hookpipe/receiver")}
	r.URL = "http://" + r.Addr + task.ReceiverPath
	r.env = append([]string{"NATS_URL=" + natsURL, "REDIS_URL=" + redisURL, "HOOKPIPE_KEY_PREFIX=" + prefix,
		"HOOKPIPE_RECEIVER_ADDR=" + r.Addr, "HOOKPIPE_LOG_LEVEL=warn"}, extra...)
	r.Start(t)
	t.Cleanup(r.Kill)
	return r
}

// Start starts the receiver again after Kill, and waits until it is ready.
func (r *ReceiverProcess) Start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(r.bin)
	cmd.Env = append(os.Environ(), r.env...)
	if os.Getenv("HOOKPIPE_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	cmd.SysProcAttr = proc.ChildAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start receiver: %v", err)
	}
	r.cmd = cmd
	Eventually(t, ReadyTimeout, func() bool {
		res, err := http.Get("http://" + r.Addr + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, "receiver at %s not ready", r.Addr)
}

// Kill kills the receiver at once, as a crash would.
func (r *ReceiverProcess) Kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// String names the receiver for messages.
func (r *ReceiverProcess) String() string { return fmt.Sprintf("receiver at %s", r.Addr) }
