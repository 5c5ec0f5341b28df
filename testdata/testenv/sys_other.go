//go:build !linux

package testenv

import "syscall"

func deathSignal() *syscall.SysProcAttr { return nil }
