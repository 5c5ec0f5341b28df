package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// baselineEnv marks the child process that serves the baseline, as
// "addr rate interval size": synthetic events at rate per second, one frame
// of size bytes every interval to every client.
const baselineEnv = "HOOKPIPE_RELAYBENCH_BASELINE"

// serveBaseline is the baseline as the child process: the least a relay
// can do. It takes WebSocket clients, and every interval encodes one frame
// carrying the times of the synthetic events that arrived since the last
// (the stand-in for accepted tasks, at the bench's rate), padded to the
// relay's frame size, and writes that same prepared message to every
// client, a few goroutines per CPU. No stream, no counts, no resume, no
// pacing, no slow-client handling.
func serveBaseline(spec string) {
	f := strings.Fields(spec)
	if len(f) != 4 {
		fmt.Fprintln(os.Stderr, "bad", baselineEnv, spec)
		os.Exit(2)
	}
	rate, _ := strconv.Atoi(f[1])
	interval, _ := time.ParseDuration(f[2])
	size, _ := strconv.Atoi(f[3])
	raiseFileLimit()
	var mu sync.Mutex
	var conns []*websocket.Conn
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		// A first frame, as the relay's snapshot, so that connect returns.
		c.WriteMessage(websocket.TextMessage, []byte(`{"seq":0,"times":[]}`))
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		go func() { // read, for pings and the close
			for {
				if _, _, err := c.NextReader(); err != nil {
					return
				}
			}
		}()
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	ln, err := net.Listen("tcp", f[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go http.Serve(ln, mux)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	var next uint64 // the next synthetic event
	var buf bytes.Buffer
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// Events arrive evenly at rate, event k at k/rate; each is timed
		// from its arrival. Those up to now go out.
		now := time.Now()
		upto := uint64(now.Sub(start).Seconds()*float64(rate)) + 1
		buf.Reset()
		fmt.Fprintf(&buf, `{"seq":%d,"times":[`, seq)
		for k := next; k < upto; k++ {
			if k > next {
				buf.WriteByte(',')
			}
			at := start.Add(time.Duration(float64(k) / float64(rate) * float64(time.Second)))
			buf.WriteString(strconv.FormatInt(at.UnixNano(), 10))
		}
		next = upto
		buf.WriteString(`],"pad":"`)
		for buf.Len() < size-2 {
			buf.WriteByte('x')
		}
		buf.WriteString(`"}`)
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, buf.Bytes())
		if err != nil {
			continue
		}
		mu.Lock()
		list := conns
		mu.Unlock()
		parts := min(4*runtime.GOMAXPROCS(0), max(1, len(list)/125))
		var wg sync.WaitGroup
		for p := range parts {
			wg.Go(func() {
				for _, c := range list[len(list)*p/parts : len(list)*(p+1)/parts] {
					c.SetWriteDeadline(time.Now().Add(5 * time.Second))
					c.WritePreparedMessage(pm)
				}
			})
		}
		wg.Wait()
	}
}

// startBaseline runs the baseline as a child process and returns its base
// URL.
func startBaseline(ctx context.Context, rate int, interval time.Duration, size int) (*exec.Cmd, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd, err := startChild(fmt.Sprintf("%s=%s %d %s %d", baselineEnv, addr, rate, interval, size))
	if err != nil {
		return nil, "", fmt.Errorf("start baseline: %w", err)
	}
	base := "http://" + addr
	if err := waitReady(ctx, cmd, base, "baseline"); err != nil {
		return nil, "", err
	}
	return cmd, base, nil
}

var timesKey = []byte(`"times":[`)

// recordBaseline notes the latency of every synthetic event of a baseline
// frame, from its arrival.
func (c *client) recordBaseline(data []byte, now time.Time) {
	i := bytes.Index(data, timesKey)
	if i < 0 {
		return
	}
	rest := data[i+len(timesKey):]
	end := bytes.IndexByte(rest, ']')
	if end <= 0 {
		return
	}
	b := -1
	for f := range bytes.SplitSeq(rest[:end], []byte(",")) {
		at, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil {
			continue
		}
		b = bucketNear(time.Duration(now.UnixNano()-at), b)
		c.addBucket(b, 1)
	}
}
