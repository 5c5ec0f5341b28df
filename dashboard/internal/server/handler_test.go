package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/dashboard/internal/precompress"
	"github.com/hookpipe/hookpipe/plumbing/access"
)

// fakeWasm writes a stand-in app.wasm and its compressed copies; the
// server only serves the bytes, so they need not be a real module.
func fakeWasm(t testing.TB, compress bool) (dir string, raw []byte) {
	t.Helper()
	dir = t.TempDir()
	raw = bytes.Repeat([]byte("\x00asm\x01\x00\x00\x00 hookpipe "), 2000)
	path := filepath.Join(dir, "app.wasm")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if compress {
		if _, err := precompress.WriteFiles(path); err != nil {
			t.Fatal(err)
		}
	}
	return dir, raw
}

func newHandler(t testing.TB, cfg Config) (*Handler, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	h, err := NewHandler(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return h, &logs
}

func get(h http.Handler, path string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.Host = "127.0.0.1:8080"
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			r.Host = header[i+1]
			continue
		}
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestServeWasm(t *testing.T) {
	dir, raw := fakeWasm(t, true)
	h, _ := newHandler(t, Config{WebDir: dir})
	tests := []struct {
		accept string
		enc    string
	}{
		{"br, gzip, deflate", "br"},
		{"gzip, deflate, br;q=0", "gzip"},
		{"gzip;q=0.5", "gzip"},
		{"identity", ""},
		{"", ""},
		{"*", "br"},
		{"BR", "br"},
	}
	for _, tt := range tests {
		t.Run(tt.accept, func(t *testing.T) {
			w := get(h, WasmPath, "Accept-Encoding", tt.accept)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			hd := w.Header()
			if ct := hd.Get("Content-Type"); ct != "application/wasm" {
				t.Errorf("Content-Type %q, want application/wasm", ct)
			}
			if ce := hd.Get("Content-Encoding"); ce != tt.enc {
				t.Errorf("Content-Encoding %q, want %q", ce, tt.enc)
			}
			if !strings.Contains(hd.Get("Vary"), "Accept-Encoding") || hd.Get("ETag") == "" || hd.Get("Cache-Control") == "" {
				t.Errorf("cache headers Vary %q ETag %q Cache-Control %q", hd.Get("Vary"), hd.Get("ETag"), hd.Get("Cache-Control"))
			}
			body := w.Body.Bytes()
			if tt.enc != "" {
				var err error
				if body, err = precompress.Decompress(tt.enc, body); err != nil {
					t.Fatal(err)
				}
				if w.Body.Len() >= len(raw) {
					t.Errorf("%s body %d bytes, not smaller than %d", tt.enc, w.Body.Len(), len(raw))
				}
			}
			if !bytes.Equal(body, raw) {
				t.Errorf("served wasm differs from app.wasm")
			}
			// The browser keeps it: a revalidation is a 304 without a body.
			again := get(h, WasmPath, "Accept-Encoding", tt.accept, "If-None-Match", hd.Get("ETag"))
			if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
				t.Errorf("revalidation: status %d with %d bytes, want 304 and none", again.Code, again.Body.Len())
			}
		})
	}
	// Each encoding has its own ETag, so caches never mix them up.
	tags := map[string]bool{}
	for _, a := range []string{"br", "gzip", "identity"} {
		tags[get(h, WasmPath, "Accept-Encoding", a).Header().Get("ETag")] = true
	}
	if len(tags) != 3 {
		t.Errorf("ETags of the three encodings: %v, want three different", tags)
	}
}

func TestPageGivesUncompressedLength(t *testing.T) {
	dir, raw := fakeWasm(t, true)
	h, _ := newHandler(t, Config{WebDir: dir})
	js := get(h, "/app.js").Body.String()
	want := `const goappWasmContentLength = "` + strconv.Itoa(len(raw)) + `"`
	if !strings.Contains(js, want) {
		t.Errorf("app.js does not give the progress bar the wasm's length: want %s", want)
	}
}

func TestStaleOrMissingCompressedCopies(t *testing.T) {
	dir, raw := fakeWasm(t, true)
	// app.wasm rebuilt after the copies were made: they are stale.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "app.wasm"), later, later); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "app.wasm.gz"))
	h, logs := newHandler(t, Config{WebDir: dir})
	w := get(h, WasmPath, "Accept-Encoding", "br, gzip")
	if w.Header().Get("Content-Encoding") != "" || !bytes.Equal(w.Body.Bytes(), raw) {
		t.Errorf("served encoding %q, want the fresh app.wasm itself", w.Header().Get("Content-Encoding"))
	}
	for _, want := range []string{"older than app.wasm", "missing", "tools/compress"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, logs)
		}
	}
}

func TestNoWasm(t *testing.T) {
	_, err := NewHandler(Config{WebDir: t.TempDir()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !errors.Is(err, ErrNoWasm) {
		t.Fatalf("err = %v, want ErrNoWasm", err)
	}
}

func TestFindWebDir(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "dashboard", "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "dashboard", "web", "app.wasm"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	if got, err := FindWebDir(""); err != nil || got != filepath.Join("dashboard", "web") {
		t.Errorf("from the repository root: %q, %v; want dashboard/web", got, err)
	}
	t.Chdir(filepath.Join(root, "dashboard"))
	if got, err := FindWebDir(""); err != nil || got != "web" {
		t.Errorf("from the module: %q, %v; want web", got, err)
	}
	if got, _ := FindWebDir("/srv/web"); got != "/srv/web" {
		t.Errorf("configured: %q, want /srv/web", got)
	}
	t.Chdir(t.TempDir())
	if _, err := FindWebDir(""); !errors.Is(err, ErrNoWasm) || !strings.Contains(err.Error(), "GOOS=js") {
		t.Errorf("nowhere: %v, want ErrNoWasm with the build command", err)
	}
}

func TestVersion(t *testing.T) {
	dir, _ := fakeWasm(t, false)
	a, _ := newHandler(t, Config{WebDir: dir, RelayURL: "http://127.0.0.1:5002"})
	b, _ := newHandler(t, Config{WebDir: dir, RelayURL: "http://127.0.0.1:5002"})
	c, _ := newHandler(t, Config{WebDir: dir, RelayURL: "http://relay:5002"})
	d, _ := newHandler(t, Config{WebDir: dir, Version: "v7"})
	if a.Version != b.Version {
		t.Errorf("restart changed the version: %s then %s", a.Version, b.Version)
	}
	if a.Version == c.Version {
		t.Errorf("another relay URL kept version %s, so installed pages would keep the old one", a.Version)
	}
	if d.Version != "v7" {
		t.Errorf("configured version %q, want v7", d.Version)
	}
	if !strings.Contains(get(a, "/app-worker.js").Body.String(), a.Version) {
		t.Errorf("service worker does not carry version %s", a.Version)
	}
}

func TestPageAndPWA(t *testing.T) {
	dir, _ := fakeWasm(t, false)
	h, _ := newHandler(t, Config{WebDir: dir, RelayURL: "http://127.0.0.1:5002"})

	page := get(h, "/").Body.String()
	for _, want := range []string{
		`id="dashboard"`, `id="conn"`, `data-state="connecting"`, `id="messages"`,
		`class="bar"`, `data-priority="Critical"`, `data-count="0"`, `<svg`, `<rect`,
		`Tasks Priority Matrix`, `/web/dashboard.css`, `/manifest.webmanifest`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if !strings.Contains(get(h, "/app.js").Body.String(), `"HOOKPIPE_RELAY_URL":"http://127.0.0.1:5002"`) {
		t.Error("app.js does not pass the relay URL to the page")
	}

	var manifest struct {
		Name  string
		Icons []struct{ Src, Type, Sizes string }
	}
	if err := json.Unmarshal(get(h, "/manifest.webmanifest").Body.Bytes(), &manifest); err != nil {
		t.Fatal(err)
	}
	if manifest.Name == "" || len(manifest.Icons) == 0 {
		t.Fatalf("manifest %+v has no name or icons", manifest)
	}
	for _, ic := range manifest.Icons {
		if !strings.HasPrefix(ic.Src, "/web/") {
			t.Errorf("icon %s is not served locally", ic.Src)
			continue
		}
		w := get(h, ic.Src)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != ic.Type {
			t.Errorf("icon %s: status %d type %q, want 200 %s", ic.Src, w.Code, w.Header().Get("Content-Type"), ic.Type)
		}
		if ic.Type == "image/png" && !bytes.HasPrefix(w.Body.Bytes(), []byte("\x89PNG")) {
			t.Errorf("icon %s is not a PNG", ic.Src)
		}
	}
	for _, remote := range []string{"https://", "http://"} {
		for _, path := range []string{"/", "/manifest.webmanifest", "/app-worker.js"} {
			var kept []string
			for _, line := range strings.Split(get(h, path).Body.String(), "\n") {
				// og: tags name the page for link previews; nothing loads them.
				if !strings.Contains(line, `property="og:`) {
					kept = append(kept, line)
				}
			}
			body := strings.Join(kept, "\n")
			body = strings.ReplaceAll(body, "http://www.w3.org/2000/svg", "")
			body = strings.ReplaceAll(body, "http://127.0.0.1:5002", "")
			if i := strings.Index(body, remote); i >= 0 {
				t.Errorf("%s refers to a remote URL: %.80s", path, body[i:])
			}
		}
	}
	if w := get(h, "/web/nothing.js"); w.Code != http.StatusNotFound {
		t.Errorf("unknown asset: status %d, want 404", w.Code)
	}
	if w := get(h, "/healthz"); w.Code != http.StatusOK {
		t.Errorf("healthz: status %d", w.Code)
	}
}

func TestSecurityHeadersAndHosts(t *testing.T) {
	dir, _ := fakeWasm(t, false)
	h, _ := newHandler(t, Config{WebDir: dir, RelayURL: "http://r1:5002 https://r2:443"})
	w := get(h, "/")
	csp := w.Header().Get("Content-Security-Policy")
	for _, want := range []string{"frame-ancestors 'none'", "'wasm-unsafe-eval'", "connect-src 'self' http://r1:5002 ws://r1:5002 https://r2:443 wss://r2:443"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
	if w := get(h, "/", "Host", "evil.example"); w.Code != http.StatusMisdirectedRequest {
		t.Errorf("Host evil.example: %d, want 421", w.Code)
	}
	// Without relay URLs the page uses its own host on the relay's port.
	d, _ := newHandler(t, Config{WebDir: dir})
	if csp := get(d, "/", "Host", "localhost:8080").Header().Get("Content-Security-Policy"); !strings.Contains(csp, "ws://localhost:5002") {
		t.Errorf("CSP %q does not allow the derived relay", csp)
	}
}

func TestAccessTokenAndRelayToken(t *testing.T) {
	dir, _ := fakeWasm(t, false)
	const token, secret = "dashboard-access-token", "relays-shared-secret"
	h, _ := newHandler(t, Config{WebDir: dir, Access: access.Config{Token: token}, RelaySecret: secret})
	if w := get(h, "/", "Accept", "text/html"); w.Code != 401 || !strings.Contains(w.Body.String(), "access token") {
		t.Fatalf("page without access: %d", w.Code)
	}
	if w := get(h, RelayTokenPath); w.Code != 401 {
		t.Fatalf("relay token without access: %d", w.Code)
	}
	if w := get(h, "/healthz"); w.Code != 200 {
		t.Fatalf("/healthz: %d", w.Code)
	}
	if w := get(h, "/manifest.webmanifest"); w.Code != 200 {
		t.Fatalf("manifest: %d (browsers fetch it without cookies)", w.Code)
	}
	entry := get(h, "/?access="+token)
	cookies := entry.Result().Cookies()
	if entry.Code != http.StatusSeeOther || len(cookies) != 1 {
		t.Fatalf("entry: %d %v", entry.Code, cookies)
	}
	c := cookies[0].Name + "=" + cookies[0].Value
	if w := get(h, "/", "Cookie", c); w.Code != 200 {
		t.Fatalf("page with the cookie: %d", w.Code)
	}
	w := get(h, RelayTokenPath, "Cookie", c)
	var tok struct {
		Token   string
		Expires int64
	}
	if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil || w.Code != 200 {
		t.Fatalf("relay token: %d %s", w.Code, w.Body)
	}
	if err := access.Check(secret, tok.Token, time.Now()); err != nil || tok.Expires < time.Now().Unix() {
		t.Fatalf("minted token %+v does not pass the relays' check: %v", tok, err)
	}
}
