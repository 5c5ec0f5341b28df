// Package access decides who may see and drive hookpipe. On loopback, with
// nothing configured, everything is open, for development; beyond it every
// component needs what it protects with: an access token for the
// dashboard and producer pages and every /metrics, signed connection
// tokens for the relay's socket and /batches, a Host allow-list against
// DNS rebinding.
//
// The access token is given at start (HOOKPIPE_ACCESS_TOKEN) and entered
// once in the browser (the page asks for it, or a link carries it as
// ?access=): the browser then holds a cookie derived from it. Programs
// send it as "Authorization: Bearer <token>". Connection tokens are minted
// by the dashboard server for a page that has access, expire within
// minutes, and are checked by every relay with the secret all relays and
// dashboards share (HOOKPIPE_RELAY_SECRET).
package access

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// IsLoopback reports whether listen address addr binds loopback
// interfaces only: "127.0.0.1:5001", "[::1]:5001" and "localhost:5001" do;
// ":5001" and "0.0.0.0:5001" bind every interface and do not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// MinSecretLen is the shortest access token or relay secret accepted.
const MinSecretLen = 16

// CheckSecret reports a secret too short to stand against guessing.
func CheckSecret(name, s string) error {
	if s != "" && len(s) < MinSecretLen {
		return fmt.Errorf("%s must be at least %d characters", name, MinSecretLen)
	}
	return nil
}

// CookieName is the cookie a browser holds once it was given the access
// token.
const CookieName = "hookpipe_access"

// Gate lets through the requests that carry the access token (a Bearer
// header, or the cookie derived from it), and everyone when there is no
// token.
type Gate struct {
	token  string
	cookie string // the cookie's value: derived from the token, never the token itself
}

// NewGate returns the gate of token ("" opens everything).
func NewGate(token string) *Gate {
	g := &Gate{token: token}
	if token != "" {
		m := hmac.New(sha256.New, []byte(token))
		m.Write([]byte("hookpipe access cookie v1"))
		g.cookie = hex.EncodeToString(m.Sum(nil))
	}
	return g
}

// Open reports whether the gate lets everyone through.
func (g *Gate) Open() bool { return g.token == "" }

// Bearer reports whether an Authorization header value carries the token.
func (g *Gate) Bearer(authorization string) bool {
	v, ok := strings.CutPrefix(authorization, "Bearer ")
	return ok && equal(v, g.token)
}

// Allowed reports whether r may pass.
func (g *Gate) Allowed(r *http.Request) bool {
	if g.Open() || g.Bearer(r.Header.Get("Authorization")) {
		return true
	}
	c, err := r.Cookie(CookieName)
	return err == nil && equal(c.Value, g.cookie)
}

func equal(a, b string) bool {
	return b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Page guards a site that browsers open. A GET that carries the right
// token as ?access= gets the cookie and is sent to the same page without
// it; a request without access gets a 401 and, for a browser, a page that
// asks for the token.
func (g *Gate) Page(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.Open() {
			next.ServeHTTP(w, r)
			return
		}
		if v := r.URL.Query().Get("access"); v != "" && r.Method == http.MethodGet {
			if !equal(v, g.token) {
				g.refuse(w, r, "That is not the access token.")
				return
			}
			http.SetCookie(w, &http.Cookie{Name: CookieName, Value: g.cookie, Path: "/", HttpOnly: true,
				SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: 30 * 24 * 3600})
			u := *r.URL
			q := u.Query()
			q.Del("access")
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		if g.Allowed(r) {
			next.ServeHTTP(w, r)
			return
		}
		g.refuse(w, r, "")
	})
}

// API guards endpoints that programs call: without access, a 401.
func (g *Gate) API(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.Allowed(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hookpipe"`)
			http.Error(w, "access token required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (g *Gate) refuse(w http.ResponseWriter, r *http.Request, problem string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="hookpipe"`)
	w.Header().Set("Cache-Control", "no-store")
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		http.Error(w, "access token required", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>hookpipe</title>
<style>body{font:16px system-ui,sans-serif;max-width:28em;margin:4em auto;padding:0 1em}input{font:inherit;width:100%%;margin:.5em 0}</style>
<h1>hookpipe</h1><p>This page needs the access token hookpipe was started with (HOOKPIPE_ACCESS_TOKEN).</p>
<form method="get" action="%s"><input type="password" name="access" autofocus autocomplete="current-password" aria-label="access token"><button>Open</button></form>
<p role="alert">%s</p>`, html.EscapeString(r.URL.Path), html.EscapeString(problem))
}

// Connection tokens.

// ErrToken is returned for a connection token that is missing, malformed,
// forged or expired.
var ErrToken = errors.New("access: connection token missing, invalid or expired")

// DefaultTokenTTL is how long a connection token is good for: a page asks
// for a new one before each connection.
const DefaultTokenTTL = 5 * time.Minute

// Mint returns a connection token good until now+ttl: "v1.<unix
// expiry>.<base64url HMAC-SHA256 of "v1.<expiry>">".
func Mint(secret string, now time.Time, ttl time.Duration) string {
	payload := "v1." + strconv.FormatInt(now.Add(ttl).Unix(), 10)
	return payload + "." + sign(secret, payload)
}

// Check reports whether token was minted with secret and is still good.
func Check(secret, token string, now time.Time) error {
	i := strings.LastIndexByte(token, '.')
	if secret == "" || i < 0 {
		return ErrToken
	}
	payload, sig := token[:i], token[i+1:]
	exp, ok := strings.CutPrefix(payload, "v1.")
	if !ok || !hmac.Equal([]byte(sig), []byte(sign(secret, payload))) {
		return ErrToken
	}
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || now.Unix() > n {
		return ErrToken
	}
	return nil
}

func sign(secret, payload string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Hosts is an allow-list of the names a listener answers to, against DNS
// rebinding: a page of another site whose name was made to point at
// 127.0.0.1 sends its own name as Host, and is refused. Loopback names and
// addresses are always allowed.
type Hosts struct {
	names map[string]bool
}

// NewHosts returns the allow-list of names (host names or addresses, no
// ports; "*" allows every name).
func NewHosts(names []string) *Hosts {
	h := &Hosts{names: map[string]bool{}}
	for _, n := range names {
		h.names[strings.ToLower(strings.Trim(strings.TrimSpace(n), "[]"))] = true
	}
	return h
}

// Allowed reports whether a request's Host may be served.
func (h *Hosts) Allowed(hostport string) bool {
	host := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		host = hh
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	return h.names["*"] || h.names[host]
}

// Wrap refuses requests for a Host not in the list with 421.
func (h *Hosts) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.Allowed(r.Host) {
			http.Error(w, "host not allowed: start with --allowed-hosts naming it", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SameOrigin reports whether a browser Origin is one of the allowed
// origins (scheme, host and port, as "http://127.0.0.1:8080").
func SameOrigin(origin string, allowed []string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return true
		}
	}
	return false
}
