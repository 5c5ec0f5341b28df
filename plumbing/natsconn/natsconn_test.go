package natsconn_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/natsconn"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

func start(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

func TestCredentials(t *testing.T) {
	users := start(t, &server.Options{Users: []*server.User{{Username: "recv", Password: "s3cret"}}})
	token := start(t, &server.Options{Authorization: "t0ken"})
	tests := []struct {
		name string
		o    natsconn.Options
		ok   bool
	}{
		{"user and password", natsconn.Options{URL: users.ClientURL(), User: "recv", Password: "s3cret"}, true},
		{"wrong password", natsconn.Options{URL: users.ClientURL(), User: "recv", Password: "nope"}, false},
		{"no credentials", natsconn.Options{URL: users.ClientURL()}, false},
		{"token", natsconn.Options{URL: token.ClientURL(), Token: "t0ken"}, true},
		{"wrong token", natsconn.Options{URL: token.ClientURL(), Token: "t1ken"}, false},
		{"several servers, the first down", natsconn.Options{URL: "nats://127.0.0.1:1, " + token.ClientURL(), Token: "t0ken"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := natsconn.Connect(tt.o, nats.Timeout(time.Second), nats.DontRandomize())
			if nc != nil {
				defer nc.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("Connect: %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestValidateAndRedact(t *testing.T) {
	for _, bad := range []natsconn.Options{
		{URL: ""},
		{URL: "nats://a:1", User: "u", Token: "t"},
		{URL: "nats://a:1", Password: "p"},
		{URL: "nats://a:1", Token: "t", CredsFile: "x.creds"},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	o := natsconn.Options{URL: "a:1, nats://u:pw@b:2"}
	if got := o.Servers(); len(got) != 2 || got[0] != "nats://a:1" {
		t.Errorf("Servers() = %q", got)
	}
	if r := o.Redacted(); strings.Contains(r, "pw") || !strings.Contains(r, "b:2") {
		t.Errorf("Redacted() = %q", r)
	}
}
