// Command receiver takes task webhooks over HTTP, publishes them to NATS
// JetStream and records their counts in Redis. Run it with --help for its
// settings; "receiver verify" compares Redis with the stream.
package main

import (
	"os"

	"github.com/hookpipe/hookpipe/plumbing/program"
	"github.com/hookpipe/hookpipe/receiver/internal/service"
	"github.com/hookpipe/hookpipe/receiver/internal/verify"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "verify" {
		program.Run("receiver verify", verify.NewMain(), os.Args[2:])
	}
	program.Run("receiver", service.NewMain(), os.Args[1:])
}
