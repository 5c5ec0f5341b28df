package access_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/access"
)

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:5001": true, "[::1]:5001": true, "localhost:5001": true, "127.0.0.2:1": true,
		":5001": false, "0.0.0.0:5001": false, "[::]:5001": false, "10.0.0.5:5001": false, "example.com:80": false,
	} {
		if got := access.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestGate(t *testing.T) {
	const token = "a-token-of-enough-length"
	g := access.NewGate(token)
	page := g.Page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("the page")) }))
	get := func(path string, h http.Header) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		for k, v := range h {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		page.ServeHTTP(w, r)
		return w
	}
	if w := get("/", http.Header{"Accept": {"text/html"}}); w.Code != 401 || !strings.Contains(w.Body.String(), `name="access"`) {
		t.Fatalf("no access: %d %s", w.Code, w.Body)
	}
	if w := get("/?access=wrong-token-of-length", nil); w.Code != 401 {
		t.Fatalf("wrong token: %d", w.Code)
	}
	w := get("/x?access="+token+"&a=1", nil)
	cookie := w.Result().Cookies()
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/x?a=1" || len(cookie) != 1 || !cookie[0].HttpOnly || cookie[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("entry with the token: %d %v %+v", w.Code, w.Header(), cookie)
	}
	if strings.Contains(cookie[0].Value, token) {
		t.Fatal("the cookie holds the token itself")
	}
	if w := get("/x", http.Header{"Cookie": {cookie[0].Name + "=" + cookie[0].Value}}); w.Code != 200 || w.Body.String() != "the page" {
		t.Fatalf("with the cookie: %d %s", w.Code, w.Body)
	}
	if w := get("/x", http.Header{"Authorization": {"Bearer " + token}}); w.Code != 200 {
		t.Fatalf("with the bearer token: %d", w.Code)
	}
	if w := get("/x", http.Header{"Cookie": {access.CookieName + "=forged"}}); w.Code != 401 {
		t.Fatalf("with a forged cookie: %d", w.Code)
	}
	if open := access.NewGate(""); !open.Open() || !open.Allowed(httptest.NewRequest("GET", "/", nil)) {
		t.Fatal("no token should open the gate")
	}
}

func TestConnectionTokens(t *testing.T) {
	const secret = "shared-by-all-relays"
	now := time.Unix(1_800_000_000, 0)
	tok := access.Mint(secret, now, time.Minute)
	if err := access.Check(secret, tok, now.Add(30*time.Second)); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	for name, c := range map[string]struct {
		secret, token string
		at            time.Time
	}{
		"expired":      {secret, tok, now.Add(2 * time.Minute)},
		"other secret": {"another-secret-altogether", tok, now},
		"tampered":     {secret, strings.Replace(tok, "v1.18", "v1.19", 1), now},
		"empty":        {secret, "", now},
		"no secret":    {"", tok, now},
	} {
		if err := access.Check(c.secret, c.token, c.at); !errors.Is(err, access.ErrToken) {
			t.Errorf("%s: %v, want ErrToken", name, err)
		}
	}
}

func TestHosts(t *testing.T) {
	h := access.NewHosts([]string{"Dash.Example.com", "10.0.0.5"})
	for host, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:8080": true, "[::1]:8080": true, "app.localhost": true,
		"dash.example.com": true, "dash.example.com:443": true, "10.0.0.5:8080": true,
		"evil.example:8080": false, "127.0.0.1.evil.example": false, "": false,
	} {
		if got := h.Allowed(host); got != want {
			t.Errorf("Allowed(%q) = %v, want %v", host, got, want)
		}
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "evil.example"
	h.Wrap(http.NotFoundHandler()).ServeHTTP(w, r)
	if w.Code != http.StatusMisdirectedRequest {
		t.Fatalf("rebinding host: %d", w.Code)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (access.Config{}).Validate("127.0.0.1:1"); err != nil {
		t.Fatalf("loopback without a token: %v", err)
	}
	if err := (access.Config{}).Validate(":1"); err == nil {
		t.Fatal("every interface without a token was accepted")
	}
	if err := (access.Config{Token: "short"}).Validate("127.0.0.1:1"); err == nil {
		t.Fatal("a short token was accepted")
	}
	if err := (access.Config{Token: "long-enough-access-token"}).Validate(":1"); err != nil {
		t.Fatal(err)
	}
}
