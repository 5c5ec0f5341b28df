package board

import (
	"time"

	"github.com/hookpipe/hookpipe/plumbing/backoff"
)

// ReconnectBackoff returns the dashboard's reconnection schedule: about
// 1 s doubling to 5 s, each delay spread by half, so that dashboards cut
// off together do not come back together.
func ReconnectBackoff() backoff.Backoff {
	return backoff.Backoff{Min: time.Second, Max: 5 * time.Second, Jitter: 0.5}
}
