//go:build unix

package fanout

import (
	"errors"
	"syscall"
)

// writeNow writes as much of b as the socket takes without waiting and
// returns how much that was; err is set only when the socket is broken.
func writeNow(rc syscall.RawConn, b []byte) (n int, err error) {
	var werr error
	rerr := rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, e := syscall.Write(int(fd), b[n:])
			if m > 0 {
				n += m
			}
			if e == syscall.EINTR {
				continue
			}
			if e != nil {
				if !errors.Is(e, syscall.EAGAIN) {
					werr = e
				}
				break
			}
			if m <= 0 {
				break
			}
		}
		return true // never wait: the writer goroutine does
	})
	if rerr != nil {
		// A deadline left by a control frame, or a closed socket: the
		// writer goroutine retries with a deadline of its own, or finds out.
		return n, nil
	}
	return n, werr
}
