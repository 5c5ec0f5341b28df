// Command producer makes batches of fake tasks and sends them as Standard
// Webhooks to hookpipe's receiver: from a web page on 127.0.0.1:5000
// (serve, the default), from the command line (send), or from recordings
// (record, replay). Run "producer help" for the commands.
package main

import (
	"os"

	"github.com/hookpipe/hookpipe/plumbing/program"
	"github.com/hookpipe/hookpipe/producer/internal/cli"
)

func main() {
	program.Run("producer", &cli.Main{}, os.Args[1:])
}
