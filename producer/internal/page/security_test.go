package page_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hookpipe/hookpipe/producer/internal/page"
	"github.com/hookpipe/hookpipe/task"
)

func do(t *testing.T, method, u, ctype, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

const form = "application/x-www-form-urlencoded"

// Requests another site makes a browser send, or that are not the page's
// form, start nothing.
func TestCrossSiteAndNonFormPostsRefused(t *testing.T) {
	p := newPeer(t, nil)
	_, srv := newPage(t, p)
	tests := []struct {
		name, ctype, body string
		hdr               map[string]string
		want              int
	}{
		{"cross-site form", form, "size=5", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403},
		{"cross-origin, Origin only", form, "size=5", map[string]string{"Origin": "https://evil.example"}, 403},
		{"text/plain", "text/plain", "size=5", nil, 415},
		{"no body, no type", "", "", nil, 415},
		{"rebound host", form, "size=5", map[string]string{"Host": "evil.example"}, 421},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := do(t, http.MethodPost, srv.URL+"/batches", tt.ctype, tt.body, tt.hdr); code != tt.want {
				t.Errorf("got %d %s, want %d", code, body, tt.want)
			}
		})
	}
	if code, _ := do(t, http.MethodPost, srv.URL+"/batches/x/cancel", "", "", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}); code != 403 {
		t.Errorf("cross-site cancel: %d, want 403", code)
	}
	if code, body := do(t, http.MethodGet, srv.URL+"/batches", "", "", nil); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("refused posts started batches: %d %s", code, body)
	}
	// The page's own post, same origin, is taken.
	if code, body := do(t, http.MethodPost, srv.URL+"/batches", form, "size=1&wait_ms=0",
		map[string]string{"Origin": srv.URL, "Sec-Fetch-Site": "same-origin"}); code != 202 {
		t.Fatalf("same-origin post: %d %s", code, body)
	}
}

func TestCaps(t *testing.T) {
	hold := make(chan struct{})
	p := newPeer(t, func(task.Task) (int, string) { <-hold; return 200, `{"status":"accepted"}` })
	_, srv := newPageWith(t, p, page.Options{MaxBatchSize: 50, MaxRunning: 2, MaxStreams: 2})
	t.Cleanup(func() { close(hold) }) // first: the held answers go before the servers close
	if code, body := do(t, http.MethodPost, srv.URL+"/batches", form, "size=51", nil); code != 400 || !strings.Contains(body, "50") {
		t.Errorf("a batch over the cap: %d %s, want 400 naming 50", code, body)
	}
	for i := range 2 {
		if code, body := do(t, http.MethodPost, srv.URL+"/batches", form, "size=5&wait_ms=0", nil); code != 202 {
			t.Fatalf("batch %d: %d %s", i, code, body)
		}
	}
	if code, body := do(t, http.MethodPost, srv.URL+"/batches", form, "size=5&wait_ms=0", nil); code != 429 || !strings.Contains(body, "running") {
		t.Errorf("a third running batch: %d %s, want 429", code, body)
	}
	stream(t, srv.URL, "")
	stream(t, srv.URL, "")
	if code, body := do(t, http.MethodGet, srv.URL+"/events", "", "", nil); code != 503 || !strings.Contains(body, "event streams") {
		t.Errorf("a third event stream: %d %s, want 503", code, body)
	}
}

func TestAccessTokenAndHeaders(t *testing.T) {
	p := newPeer(t, nil)
	const token = "producer-access-token"
	_, srv := newPageWith(t, p, page.Options{AccessToken: token})
	if code, _ := do(t, http.MethodGet, srv.URL+"/", "", "", nil); code != 401 {
		t.Errorf("page without the token: %d", code)
	}
	if code, _ := do(t, http.MethodPost, srv.URL+"/batches", form, "size=1", nil); code != 401 {
		t.Errorf("start without the token: %d", code)
	}
	code, _ := do(t, http.MethodPost, srv.URL+"/batches", form, "size=1&wait_ms=0", map[string]string{"Authorization": "Bearer " + token})
	if code != 202 {
		t.Errorf("start with the token: %d", code)
	}
	res, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers: CSP %q", csp)
	}
}
