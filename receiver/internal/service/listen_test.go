package service

import (
	"net"
	"testing"
)

func TestReusePortSharesTheAddressOnlyWhenAsked(t *testing.T) {
	first, err := listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	addr := first.Addr().String()
	second, err := listen(addr, true)
	if err != nil {
		t.Fatalf("a second receiver with --reuseport could not listen on %s: %v", addr, err)
	}
	defer second.Close()
	if third, err := listen(addr, false); err == nil {
		third.Close()
		t.Fatalf("a receiver without --reuseport listened on %s, which others hold", addr)
	}
	// Both take connections: the kernel hands each new one to either.
	accepted := make(chan net.Listener, 64)
	for _, ln := range []net.Listener{first, second} {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
				accepted <- ln
			}
		}()
	}
	seen := map[net.Listener]bool{}
	for i := 0; i < 1000 && len(seen) < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		seen[<-accepted] = true
	}
	if len(seen) != 2 {
		t.Fatal("every connection went to one of the two listeners")
	}
}
