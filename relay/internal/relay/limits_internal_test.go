package relay

import (
	"net/netip"
	"testing"
	"time"
)

// Handshakes take their time before the limiter's lock, so they may reach
// it out of order: a join stamped a millisecond earlier than the one before
// must not take a thousand tokens at a million joins a second.
func TestJoinsOutOfOrderKeepTheBucket(t *testing.T) {
	l := newLimiter(2000, 1e6, 1100, nil)
	addr := netip.MustParseAddr("127.0.0.1")
	t0 := time.Now()
	for i := range 1000 {
		at := t0
		if i%2 == 1 {
			at = t0.Add(-time.Millisecond)
		}
		if ok, why := l.admit(addr, at); !ok {
			t.Fatalf("join %d refused: %s", i, why)
		}
	}
}
