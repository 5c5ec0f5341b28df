// Command relay pushes hookpipe's accepted tasks to dashboards over
// WebSocket: a snapshot on connect, then coalesced updates, with exact
// resume after a reconnect. Run it with --help for its settings.
package main

import (
	"os"

	"github.com/hookpipe/hookpipe/plumbing/program"
	"github.com/hookpipe/hookpipe/relay/internal/relay"
)

func main() {
	program.Run("relay", relay.NewMain(), os.Args[1:])
}
