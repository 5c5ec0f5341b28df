//go:build !linux

package proc

import "syscall"

// ChildAttr puts a child in its own process group, so that Ctrl-C reaches
// only its parent, which stops the children in order.
func ChildAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
