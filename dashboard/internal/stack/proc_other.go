//go:build !linux

package stack

import "syscall"

// childAttr puts a child in its own process group, so that Ctrl-C reaches
// the stack, which stops the children in order.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
