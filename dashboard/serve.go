//go:build !(js && wasm)

package main

import (
	"os"

	"github.com/hookpipe/hookpipe/dashboard/internal/server"
	"github.com/hookpipe/hookpipe/plumbing/program"
)

// serve runs the dashboard server until SIGINT or SIGTERM.
func serve() {
	program.Run("dashboard", server.NewMain(), os.Args[1:])
}
