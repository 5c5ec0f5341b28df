// Package proc holds what everything that starts servers for development
// and tests needs: free ports, child processes that die with their parent,
// and log lines prefixed with the name of the process that wrote them.
package proc

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
)

// FreePort returns a TCP port of host that nothing listens on now.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("proc: free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PortFree reports whether nothing listens on host:port.
func PortFree(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// LineWriter writes whole lines to Out, each prefixed with Name, one line
// at a time across every LineWriter, so that the logs of several processes
// interleave by line, never within one.
type LineWriter struct {
	Name string
	Out  io.Writer

	mu  sync.Mutex
	buf []byte
}

var outMu sync.Mutex

// Write buffers p and writes every line it completes.
func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i+1])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// Flush writes a last line that had no newline.
func (w *LineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(append(w.buf, '\n'))
		w.buf = nil
	}
}

func (w *LineWriter) emit(line []byte) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(w.Out, "%-9s | %s", w.Name, line)
}
