package stack

import "syscall"

// childAttr puts a child in its own process group, so that Ctrl-C reaches
// the stack, which stops the children in order, and has the kernel kill it
// when the stack dies without stopping it (closed terminal, SIGKILL).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
