// Command dashboard is hookpipe's live dashboard. The same program is built
// twice: as WebAssembly it is the page (a go-app PWA that draws the relay's
// counts), and as a normal binary it is the server that serves that page.
// Run the server with --help for its settings.
package main

import (
	"github.com/hookpipe/hookpipe/dashboard/internal/ui"
	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

func main() {
	ui.Route()
	// In the browser this runs the page and never returns.
	app.RunWhenOnBrowser()
	serve()
}
