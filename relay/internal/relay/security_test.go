package relay_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/access"
	"github.com/hookpipe/hookpipe/relay/internal/relay"
	"github.com/hookpipe/hookpipe/task"
)

const (
	relaySecret = "a-relay-secret-for-tests"
	accessToken = "an-access-token-for-tests"
)

func dialStatus(t *testing.T, url string, h http.Header) int {
	t.Helper()
	conn, resp, err := dialer().Dial(url, h)
	if err == nil {
		conn.Close()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return resp.StatusCode
}

func TestConnectionTokens(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.RelaySecret, cfg.Access.Token = relaySecret, accessToken
	r := startRelay(t, cfg)
	now := time.Now()
	for _, tt := range []struct {
		name, token string
		want        int
	}{
		{"none", "", 401},
		{"minted", access.Mint(relaySecret, now, time.Minute), 101},
		{"expired", access.Mint(relaySecret, now.Add(-time.Hour), time.Minute), 401},
		{"other secret", access.Mint("someone-else's-secret", now, time.Minute), 401},
		{"the access token", accessToken, 101},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := wsURL(r, "")
			if tt.token != "" {
				url += "?token=" + tt.token
			}
			if got := dialStatus(t, url, nil); got != tt.want {
				t.Fatalf("got %d, want %d", got, tt.want)
			}
		})
	}
	base := "http://" + r.Addr()
	if code, _ := httpGet(t, base+"/batches", nil); code != 401 {
		t.Errorf("/batches without a token: %d", code)
	}
	if code, _ := httpGet(t, base+"/batches", http.Header{"Authorization": {"Bearer " + access.Mint(relaySecret, now, time.Minute)}}); code != 200 {
		t.Errorf("/batches with a connection token: %d", code)
	}
	if code, _ := httpGet(t, base+"/metrics", http.Header{"Authorization": {"Bearer " + access.Mint(relaySecret, now, time.Minute)}}); code != 401 {
		t.Errorf("/metrics with a connection token: %d, want 401 (it needs the access token)", code)
	}
	if code, _ := httpGet(t, base+"/metrics", http.Header{"Authorization": {"Bearer " + accessToken}}); code != 200 {
		t.Errorf("/metrics with the access token: %d", code)
	}
	if code, _ := httpGet(t, base+"/healthz", nil); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
}

func TestHostAllowList(t *testing.T) {
	e := newEnv(t)
	r := startRelay(t, e.config())
	for _, path := range []string{"/ws", "/batches", "/metrics"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+r.Addr()+path, nil)
		req.Host = "evil.example"
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("%s with Host evil.example: %d, want 421", path, res.StatusCode)
		}
	}
	h := http.Header{"Origin": {"http://127.0.0.1:9999"}}
	if got := dialStatus(t, wsURL(r, ""), h); got != 403 {
		t.Errorf("origin of another port: %d, want 403", got)
	}
}

func TestPerAddressLimits(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.MaxConnsPerIP, cfg.JoinRate, cfg.JoinBurst = 2, 1000, 1000
	r := startRelay(t, cfg)
	a := dial(t, wsURL(r, ""), nil)
	a.firstFrame(t)
	b := dial(t, wsURL(r, ""), nil)
	b.firstFrame(t)
	if got := dialStatus(t, wsURL(r, ""), nil); got != http.StatusTooManyRequests {
		t.Fatalf("third connection from one address: %d, want 429", got)
	}
	a.conn.Close()
	<-a.done
	testenv.Eventually(t, 10*time.Second, func() bool { return dialStatus(t, wsURL(r, ""), nil) == 101 }, "a slot freed by a closed connection was not given back")

	// Joins faster than the rate are refused.
	e2 := newEnv(t)
	cfg2 := e2.config()
	cfg2.JoinRate, cfg2.JoinBurst = 0.01, 3
	r2 := startRelay(t, cfg2)
	for i := range 3 {
		if got := dialStatus(t, wsURL(r2, ""), nil); got != 101 {
			t.Fatalf("join %d within the burst: %d", i, got)
		}
	}
	if got := dialStatus(t, wsURL(r2, ""), nil); got != http.StatusTooManyRequests {
		t.Fatalf("join past the burst: %d, want 429", got)
	}
}

// Behind a trusted proxy each forwarded client has its own limit; the
// header means nothing from anyone else.
func TestTrustedProxies(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		e := newEnv(t)
		cfg := e.config()
		cfg.MaxConnsPerIP, cfg.JoinRate, cfg.JoinBurst = 1, 1000, 1000
		if trusted {
			cfg.TrustedProxies = []string{"127.0.0.1"}
		}
		r := startRelay(t, cfg)
		var keep []*websocket.Conn
		open := func(xff string) int {
			conn, resp, err := dialer().Dial(wsURL(r, ""), http.Header{"X-Forwarded-For": {xff}})
			if err == nil {
				keep = append(keep, conn)
				return 101
			}
			return resp.StatusCode
		}
		first, second, again := open("10.0.0.1"), open("192.0.2.7, 10.0.0.2"), open("10.0.0.1")
		for _, c := range keep {
			c.Close()
		}
		want := []int{101, 101, 429}
		if !trusted {
			want = []int{101, 429, 429}
		}
		if got := []int{first, second, again}; got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Errorf("trusted %v: got %v, want %v", trusted, got, want)
		}
	}
}

// A client far behind gets a snapshot rather than a resume of hundreds
// of events.
func TestFarBehindGetsASnapshot(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.MaxResumeEvents = 10
	r := startRelay(t, cfg)
	e.publish(t, 30, 0)
	dial(t, wsURL(r, ""), nil).waitCurrent(t, e, 30)
	if f := dial(t, wsURL(r, "5"), nil).firstFrame(t); f.Type != task.FrameSnapshot {
		t.Errorf("since=5 with 30 sent: %s, want a snapshot", f.Type)
	}
	if f := dial(t, wsURL(r, "25"), nil).firstFrame(t); f.Type != task.FrameUpdate || len(f.Events) != 5 {
		t.Errorf("since=25: %s with %d events, want an update with 5", f.Type, len(f.Events))
	}
}

func TestBeyondLoopbackNeedsSecrets(t *testing.T) {
	for _, tt := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"--addr", "127.0.0.1:5002"}, true},
		{[]string{"--addr", ":5002"}, false},
		{[]string{"--addr", ":5002", "--access-token", accessToken}, false},
		{[]string{"--addr", ":5002", "--access-token", accessToken, "--relay-secret", relaySecret}, true},
		{[]string{"--relay-secret", "short"}, false},
	} {
		_, err := relay.ParseConfig(tt.args, func(string) string { return "" }, &strings.Builder{})
		if (err == nil) != tt.ok {
			t.Errorf("ParseConfig(%q) = %v, want ok %v", tt.args, err, tt.ok)
		}
	}
}
