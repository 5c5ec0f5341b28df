package relay

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// limiter bounds what one client address can take of a relay: connections
// open at once, and new connections per second (a token bucket). Behind a
// load balancer every connection comes from it: its address is a trusted
// proxy, and the client's is the last untrusted one of X-Forwarded-For.
// Its memory is bounded: an address with nothing open and a full bucket is
// forgotten, and past maxAddrs addresses new ones are refused.
type limiter struct {
	maxConns int
	rate     float64 // joins per second
	burst    float64
	trusted  []netip.Prefix

	mu    sync.Mutex
	addrs map[netip.Addr]*addrState
}

type addrState struct {
	conns  int
	tokens float64
	at     time.Time
}

// maxAddrs bounds the addresses the limiter tracks at once.
const maxAddrs = 100000

func newLimiter(maxConns int, rate float64, burst int, trusted []netip.Prefix) *limiter {
	return &limiter{maxConns: maxConns, rate: rate, burst: float64(burst), trusted: trusted, addrs: make(map[netip.Addr]*addrState)}
}

// clientAddr returns the address a request comes from, seen through the
// trusted proxies.
func (l *limiter) clientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	addr = addr.Unmap()
	if !l.isTrusted(addr) {
		return addr
	}
	hops := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr // a proxy that sent garbage: count it as the client
		}
		if a = a.Unmap(); !l.isTrusted(a) {
			return a
		}
	}
	return addr
}

func (l *limiter) isTrusted(a netip.Addr) bool {
	for _, p := range l.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Why a connection was refused.
const (
	refusedConns = "too many connections from this address"
	refusedRate  = "too many new connections from this address, slow down"
)

// admit takes one connection of addr, or says why not. A taken one must
// be given back with release.
func (l *limiter) admit(addr netip.Addr, now time.Time) (ok bool, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.addrs[addr]
	if st == nil {
		if len(l.addrs) >= maxAddrs {
			l.sweep(now)
			if len(l.addrs) >= maxAddrs {
				return false, refusedRate
			}
		}
		st = &addrState{tokens: l.burst, at: now}
		l.addrs[addr] = st
	}
	// Callers take now before the lock, so one may come after another
	// with an earlier time: time never runs back for the bucket, which a
	// high rate would otherwise empty at once.
	if now.After(st.at) {
		st.tokens = min(l.burst, st.tokens+now.Sub(st.at).Seconds()*l.rate)
		st.at = now
	}
	switch {
	case st.conns >= l.maxConns:
		return false, refusedConns
	case st.tokens < 1:
		return false, refusedRate
	}
	st.tokens--
	st.conns++
	return true, ""
}

func (l *limiter) release(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.addrs[addr]; st != nil {
		st.conns--
		if st.conns <= 0 && st.tokens >= l.burst {
			delete(l.addrs, addr)
		}
	}
}

// sweep forgets the addresses with nothing open whose bucket has filled.
func (l *limiter) sweep(now time.Time) {
	for a, st := range l.addrs {
		if st.conns <= 0 && st.tokens+now.Sub(st.at).Seconds()*l.rate >= l.burst {
			delete(l.addrs, a)
		}
	}
}
