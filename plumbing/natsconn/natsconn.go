// Package natsconn connects a hookpipe service to NATS the same way
// everywhere: one server or a cluster given as a comma-separated list (as
// the nats CLI takes them), and user and password, a token or a .creds
// file.
package natsconn

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/hookpipe/hookpipe/plumbing/envflag"
	"github.com/nats-io/nats.go"
)

// DefaultURL is the NATS server used when none is given.
const DefaultURL = "nats://127.0.0.1:4222"

// Options say where NATS is and who the service is to it.
type Options struct {
	// URL is one server or several, comma separated, such as
	// "nats://n1:4222,nats://n2:4222"; default DefaultURL (--nats-url,
	// NATS_URL). User and password may also be given in it.
	URL string
	// User and Password authenticate with a user of the server's own
	// configuration; default none (--nats-user, NATS_USER; --nats-password,
	// NATS_PASSWORD).
	User, Password string
	// Token authenticates with a token; default none (--nats-token,
	// HOOKPIPE_NATS_TOKEN).
	Token string
	// CredsFile is a .creds file (a user JWT and its key); default none
	// (--nats-creds, NATS_CREDS).
	CredsFile string
}

// DefaultOptions returns the defaults documented on Options.
func DefaultOptions() Options { return Options{URL: DefaultURL} }

// Bind adds the NATS flags to s.
func (o *Options) Bind(s *envflag.Set) {
	s.String(&o.URL, "nats-url", "NATS_URL", "NATS server URL, or several comma separated")
	s.String(&o.User, "nats-user", "NATS_USER", "NATS user")
	s.Secret(&o.Password, "nats-password", "NATS_PASSWORD", "password of the NATS user")
	s.Secret(&o.Token, "nats-token", "HOOKPIPE_NATS_TOKEN", "NATS authentication token")
	s.String(&o.CredsFile, "nats-creds", "NATS_CREDS", "NATS .creds file (user JWT and seed)")
}

// Validate reports servers that do not parse and credentials that
// exclude each other.
func (o Options) Validate() error {
	if len(o.Servers()) == 0 {
		return errors.New("--nats-url is empty")
	}
	for _, s := range o.Servers() {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return fmt.Errorf("--nats-url: %q is not a server URL such as nats://127.0.0.1:4222", s)
		}
	}
	n := 0
	for _, set := range []bool{o.User != "" || o.Password != "", o.Token != "", o.CredsFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("nats: give one of user and password, token or creds file")
	}
	if o.Password != "" && o.User == "" {
		return errors.New("nats: a password needs a user")
	}
	return nil
}

// Servers returns the server URLs of o.URL, each with a scheme.
func (o Options) Servers() []string {
	var out []string
	for s := range strings.SplitSeq(o.URL, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		out = append(out, s)
	}
	return out
}

// Redacted returns the servers with any password in them hidden, for logs.
func (o Options) Redacted() string {
	servers := o.Servers()
	for i, s := range servers {
		if u, err := url.Parse(s); err == nil {
			servers[i] = u.Redacted()
		}
	}
	return strings.Join(servers, ",")
}

// Connect connects with o, then the service's own options (name,
// reconnect and handlers).
func Connect(o Options, opts ...nats.Option) (*nats.Conn, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var auth []nats.Option
	switch {
	case o.User != "":
		auth = append(auth, nats.UserInfo(o.User, o.Password))
	case o.Token != "":
		auth = append(auth, nats.Token(o.Token))
	case o.CredsFile != "":
		auth = append(auth, nats.UserCredentials(o.CredsFile))
	}
	nc, err := nats.Connect(strings.Join(o.Servers(), ","), append(auth, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", o.Redacted(), err)
	}
	return nc, nil
}
