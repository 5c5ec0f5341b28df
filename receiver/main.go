// Command receiver takes task webhooks over HTTP, publishes them to NATS
// JetStream and records their counts in Redis. Run it with --help for its
// settings.
package main

import (
	"os"

	"github.com/hookpipe/hookpipe/plumbing/program"
	"github.com/hookpipe/hookpipe/receiver/internal/service"
)

func main() {
	program.Run("receiver", service.NewMain(), os.Args[1:])
}
