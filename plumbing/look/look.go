// Package look is the stylesheet hookpipe's pages share, so that the
// dashboard and the producer page look like one product: colours (light
// and dark), panels, type and the priorities' colours.
package look

import _ "embed"

// CSS is the shared stylesheet.
//
//go:embed hookpipe.css
var CSS []byte
