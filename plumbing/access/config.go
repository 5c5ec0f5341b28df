package access

import (
	"fmt"
	"strings"

	"github.com/hookpipe/hookpipe/plumbing/envflag"
)

// Config is what a component is told of access.
type Config struct {
	// Token is the access token; default none, which is allowed only on
	// loopback (--access-token, HOOKPIPE_ACCESS_TOKEN).
	Token string
	// Hosts are the host names the component answers to besides loopback
	// ones, such as the name a load balancer is reached at; default none
	// (--allowed-hosts, HOOKPIPE_ALLOWED_HOSTS, space or comma separated).
	Hosts []string
}

// Bind adds --access-token and --allowed-hosts to fs.
func (c *Config) Bind(fs *envflag.Set) {
	fs.Secret(&c.Token, "access-token", "HOOKPIPE_ACCESS_TOKEN", "token that pages, /metrics and /batches require; required beyond loopback")
	fs.Var((*List)(&c.Hosts), "allowed-hosts", "HOOKPIPE_ALLOWED_HOSTS", "host names served besides loopback ones (against DNS rebinding), space or comma separated")
}

// Validate reports a token too short, or a listener beyond loopback
// without one.
func (c Config) Validate(addr string) error {
	if err := CheckSecret("--access-token", c.Token); err != nil {
		return err
	}
	if c.Token == "" && !IsLoopback(addr) {
		return fmt.Errorf("listening on %s, beyond loopback, needs --access-token (HOOKPIPE_ACCESS_TOKEN): without one anyone who can reach the port could see and drive hookpipe", addr)
	}
	return nil
}

// List is a flag of words separated by spaces or commas.
type List []string

func (l *List) String() string { return strings.Join(*l, " ") }

// Set replaces the list with the words of s.
func (l *List) Set(s string) error {
	*l = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	return nil
}
