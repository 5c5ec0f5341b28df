package proc

import "syscall"

// ChildAttr puts a child in its own process group, so that Ctrl-C reaches
// only its parent, which stops the children in order, and has the kernel
// kill it when the parent dies without stopping it (a closed terminal, a
// SIGKILL, a test binary that timed out).
func ChildAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
