package stack

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
)

// Credentials are the users the stack gives its own NATS and Redis, one
// per role, each with the least it needs, so that nothing else can write
// the stream (a direct "PUB tasks.critical" is refused) or touch keys
// beyond hookpipe's prefix. They are made once and kept in
// <data dir>/credentials.json, readable by the owner only.
type Credentials struct {
	// NATS passwords by role: receiver (publishes tasks, runs the fold and
	// its checkpoints), relay (reads the stream), verify (what receiver
	// verify --repair needs: the receiver's).
	NATS map[string]string `json:"nats"`
	// Redis passwords by role: receiver (everything on hookpipe's keys but
	// what could destroy other data), relay (reads only).
	Redis map[string]string `json:"redis"`
}

// Roles of the credentials.
const (
	RoleReceiver = "receiver"
	RoleRelay    = "relay"
	RoleVerify   = "verify"
)

// loadCredentials reads the credentials kept under dir, or makes and
// keeps new ones.
func loadCredentials(dir string) (*Credentials, error) {
	path := filepath.Join(dir, "credentials.json")
	b, err := os.ReadFile(path)
	if err == nil {
		var c Credentials
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("stack: %s: %w", path, err)
		}
		if c.NATS[RoleReceiver] != "" && c.NATS[RoleRelay] != "" && c.Redis[RoleReceiver] != "" && c.Redis[RoleRelay] != "" {
			return &c, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("stack: %w", err)
	}
	c := &Credentials{NATS: map[string]string{}, Redis: map[string]string{}}
	for _, r := range []string{RoleReceiver, RoleRelay, RoleVerify} {
		c.NATS[r] = secret()
	}
	for _, r := range []string{RoleReceiver, RoleRelay} {
		c.Redis[r] = secret()
	}
	b, _ = json.MarshalIndent(c, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	return c, nil
}

func secret() string {
	var b [24]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// natsUsers are the NATS users of c, each allowed what its role needs.
func (c *Credentials) natsUsers(keyBucket string) []*server.User {
	// Replies come to inboxes; JetStream's API is requests.
	inbox := []string{"_INBOX.>"}
	writer := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{"tasks.>", "$JS.API.>", "$KV." + keyBucket + ".>"}},
		Subscribe: &server.SubjectPermission{Allow: inbox},
	}
	// The relay may create the stream with the shared settings when it
	// starts first (taskstream.Ensure); it cannot put anything in it.
	reader := &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			"$JS.API.INFO", "$JS.API.STREAM.INFO.TASKS", "$JS.API.STREAM.CREATE.TASKS",
			"$JS.API.CONSUMER.CREATE.TASKS", "$JS.API.CONSUMER.CREATE.TASKS.>",
			"$JS.API.CONSUMER.MSG.NEXT.TASKS.>", "$JS.API.CONSUMER.DELETE.TASKS.>", "$JS.API.CONSUMER.INFO.TASKS.>",
		}},
		Subscribe: &server.SubjectPermission{Allow: inbox},
	}
	return []*server.User{
		{Username: RoleReceiver, Password: c.NATS[RoleReceiver], Permissions: writer},
		{Username: RoleVerify, Password: c.NATS[RoleVerify], Permissions: writer},
		{Username: RoleRelay, Password: c.NATS[RoleRelay], Permissions: reader},
	}
}

// redisUsers are the redis-server arguments that make the ACL users of c
// for keys under prefix, with the default user off. Each rule is an
// argument of its own: redis-server quotes an argument that holds spaces.
func (c *Credentials) redisUsers(prefix string) []string {
	args := []string{"--user", "default", "off"}
	// Scripts, reads and writes of hookpipe's keys; CONFIG GET for the
	// memory check; nothing that could flush or reconfigure Redis.
	args = append(args, "--user", RoleReceiver, "on", ">"+c.Redis[RoleReceiver], "~"+prefix+"*", "&*", "+@all", "-@dangerous", "+config|get", "+info")
	return append(args, "--user", RoleRelay, "on", ">"+c.Redis[RoleRelay], "~"+prefix+"*", "&*", "+@read", "+@connection", "-@dangerous")
}

// redisURL returns base (redis://host:port) with role's credentials.
func (c *Credentials) redisURL(base, role string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	u.User = url.UserPassword(role, c.Redis[role])
	return u.String()
}
