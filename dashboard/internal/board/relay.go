package board

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/hookpipe/hookpipe/task"
)

// RelayPort is the relay's port when the page has to guess its address.
var RelayPort = strconv.Itoa(task.RelayPort)

// RelayBase returns the relay's base URL: configured when not empty (the
// HOOKPIPE_RELAY_URL of the dashboard server), else the page's own scheme and
// host name on RelayPort.
func RelayBase(configured string, page *url.URL) (*url.URL, error) {
	if configured = strings.TrimSpace(configured); configured != "" {
		u, err := url.Parse(configured)
		if err != nil {
			return nil, fmt.Errorf("relay url %q: %w", configured, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("relay url %q: want http(s)://host[:port]", configured)
		}
		u.Path = strings.TrimRight(u.Path, "/")
		u.RawQuery, u.Fragment = "", ""
		return u, nil
	}
	if page == nil || page.Hostname() == "" {
		return nil, fmt.Errorf("relay url: not configured and the page has no host")
	}
	scheme := "http"
	if page.Scheme == "https" {
		scheme = "https"
	}
	host := page.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return &url.URL{Scheme: scheme, Host: host + ":" + RelayPort}, nil
}

// RelayBases returns the relays' base URLs: those configured, separated by
// spaces or commas, else the page's own host on RelayPort.
func RelayBases(configured string, page *url.URL) ([]*url.URL, error) {
	list := strings.FieldsFunc(configured, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
	if len(list) == 0 {
		u, err := RelayBase("", page)
		if err != nil {
			return nil, err
		}
		return []*url.URL{u}, nil
	}
	out := make([]*url.URL, 0, len(list))
	for _, c := range list {
		u, err := RelayBase(c, page)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// SocketURL returns the relay's WebSocket URL, resuming after since when it
// is not zero, with the connection token when there is one.
func SocketURL(base *url.URL, since uint64, token string) string {
	u := *base
	u.Scheme = "ws"
	if base.Scheme == "https" {
		u.Scheme = "wss"
	}
	u.Path += "/ws"
	q := url.Values{}
	if since > 0 {
		q.Set("since", strconv.FormatUint(since, 10))
	}
	if token != "" {
		q.Set("token", token)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// BatchesURL returns the URL of the relay's list of recent batches.
func BatchesURL(base *url.URL, limit int) string {
	u := *base
	u.Path += "/batches"
	if limit > 0 {
		u.RawQuery = "limit=" + strconv.Itoa(limit)
	}
	return u.String()
}

// BatchURL returns the URL of one batch's summary.
func BatchURL(base *url.URL, id string) string {
	return base.String() + "/batches/" + url.PathEscape(id)
}

// Progress is how far a batch has come.
type Progress struct {
	// Done is the number of its tasks counted so far.
	Done int64
	// Size is the batch's size, 0 when unknown.
	Size int64
	// Percent is Done over Size, from 0 to 100; 0 when Size is unknown.
	Percent float64
}

// BatchProgress returns how far a batch has come.
func BatchProgress(b task.BatchSummary) Progress {
	p := Progress{Done: b.Counts.Total(), Size: b.Size}
	if p.Size > 0 {
		p.Percent = min(100, 100*float64(p.Done)/float64(p.Size))
	}
	return p
}
