package server

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/look"

	"github.com/hookpipe/hookpipe/dashboard/internal/precompress"
	"github.com/hookpipe/hookpipe/dashboard/internal/ui"
	"github.com/hookpipe/hookpipe/plumbing/access"
	"github.com/hookpipe/hookpipe/task"
	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

//go:embed assets
var assetFS embed.FS

// workerJS is the service worker's template; go-app fills in the version
// and the resources to cache.
//
//go:embed worker.js
var workerJS string

// Paths the page loads its resources from.
const (
	WasmPath    = "/web/app.wasm"
	StylePath   = "/web/dashboard.css"
	IconSVGPath = "/web/icon.svg"
	Icon192Path = "/web/icon-192.png"
	Icon512Path = "/web/icon-512.png"
)

// ErrNoWasm is returned when the web folder holds no app.wasm.
var ErrNoWasm = errors.New("no app.wasm")

// Handler serves the dashboard page, its wasm and its assets.
type Handler struct {
	// Version is the page's version, fixed for one build and relay URL.
	Version string
	// Wasm is the wasm as served, one entry per encoding ("" for none).
	Wasm map[string]WasmFile
	// WebDir is the folder the wasm was read from.
	WebDir string

	page   *app.Handler
	assets map[string]asset
	mux    *http.ServeMux
	root   http.Handler
	cfg    Config
}

// WasmFile is the wasm in one encoding.
type WasmFile struct {
	Body    []byte
	ETag    string
	ModTime time.Time
}

type asset struct {
	body        []byte
	contentType string
	etag        string
}

// NewHandler reads the wasm and its compressed copies from the web folder
// and prepares the page. It logs a warning when a compressed copy is
// missing or older than the wasm, and serves what it has.
func NewHandler(cfg Config, log *slog.Logger) (*Handler, error) {
	dir, err := FindWebDir(cfg.WebDir)
	if err != nil {
		return nil, err
	}
	h := &Handler{WebDir: dir, Wasm: make(map[string]WasmFile)}
	raw, err := readWasm(dir, h.Wasm, log)
	if err != nil {
		return nil, err
	}
	h.Version = cfg.Version
	if h.Version == "" {
		sum := sha256.New()
		sum.Write(raw)
		sum.Write([]byte("\x00" + cfg.RelayURL))
		h.Version = hex.EncodeToString(sum.Sum(nil))[:16]
	}
	if h.assets, err = loadAssets(); err != nil {
		return nil, err
	}
	ui.Route()
	h.page = &app.Handler{
		Name:        "hookpipe dashboard",
		ShortName:   "hookpipe",
		Title:       "hookpipe · live tasks",
		Description: "Live priority chart of the tasks hookpipe accepts.",
		Lang:        "en",
		Icon: app.Icon{
			Default:  Icon192Path,
			Large:    Icon512Path,
			Maskable: Icon512Path,
			SVG:      IconSVGPath,
		},
		BackgroundColor:   "#161a22",
		ThemeColor:        "#1f2430",
		LoadingLabel:      "Loading the dashboard… {progress}%",
		Styles:            []string{StylePath},
		Env:               map[string]string{ui.RelayURLEnv: strings.Join(cfg.RelayURLs(), " ")},
		Version:           h.Version,
		WasmContentLength: strconv.Itoa(len(raw)),
		Resources:         app.LocalDir(""),
		// go-app's own worker does its install and activation outside
		// event.waitUntil; see worker.js.
		ServiceWorkerTemplate: workerJS,
	}
	h.cfg = cfg
	gate := access.NewGate(cfg.Access.Token)
	h.mux = http.NewServeMux()
	h.mux.Handle("GET "+WasmPath, gate.Page(http.HandlerFunc(h.serveWasm)))
	h.mux.Handle("GET /web/", gate.Page(http.HandlerFunc(h.serveAsset)))
	h.mux.Handle("GET "+RelayTokenPath, gate.API(http.HandlerFunc(h.serveRelayToken)))
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	// Browsers fetch the manifest and the icons without cookies; they
	// say nothing of hookpipe's data.
	for _, p := range []string{"/manifest.webmanifest", IconSVGPath, Icon192Path, Icon512Path} {
		if p == "/manifest.webmanifest" {
			h.mux.Handle("GET "+p, h.page)
		} else {
			h.mux.HandleFunc("GET "+p, h.serveAsset)
		}
	}
	h.mux.Handle("/", gate.Page(h.page))
	h.root = access.NewHosts(cfg.Access.Hosts).Wrap(http.HandlerFunc(h.withHeaders))
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.root.ServeHTTP(w, r) }

// withHeaders sets what a browser needs to protect the page, then serves:
// a Content-Security-Policy that allows the page's own scripts, its
// WebAssembly and its relays only, forbids framing, and nosniff.
func (h *Handler) withHeaders(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", h.csp(r))
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	h.mux.ServeHTTP(w, r)
}

// csp returns the page's Content-Security-Policy: go-app sets style
// attributes and runs a service worker; the wasm needs
// 'wasm-unsafe-eval'; connect-src names every relay, over HTTP for
// /batches and WebSocket for /ws.
func (h *Handler) csp(r *http.Request) string {
	relays := h.cfg.RelayURLs()
	if len(relays) == 0 {
		// The page uses its own host name on the relay's port.
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		relays = []string{scheme + "://" + host + ":" + strconv.Itoa(task.RelayPort)}
	}
	connect := []string{"'self'"}
	for _, u := range relays {
		u = strings.TrimRight(u, "/")
		connect = append(connect, u, "ws"+strings.TrimPrefix(u, "http"))
	}
	return "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; style-src-attr 'unsafe-inline'; " +
		"img-src 'self' data:; connect-src " + strings.Join(connect, " ") + "; worker-src 'self'; manifest-src 'self'; " +
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

// RelayTokenPath is where the page gets a connection token for the relays.
const RelayTokenPath = "/relay-token"

// serveRelayToken mints a connection token for a page that has access:
// the relays take it for DefaultTokenTTL. Without a relay secret (on
// loopback) the token is empty and the relays need none.
func (h *Handler) serveRelayToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	tok := ui.RelayToken{}
	if h.cfg.RelaySecret != "" {
		now := time.Now()
		tok.Token = access.Mint(h.cfg.RelaySecret, now, access.DefaultTokenTTL)
		tok.Expires = now.Add(access.DefaultTokenTTL).Unix()
	}
	json.NewEncoder(w).Encode(tok)
}

// FindWebDir returns dir when set, else the first of "web" and
// "dashboard/web" that holds app.wasm.
func FindWebDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	candidates := []string{"web", filepath.Join("dashboard", "web")}
	for _, c := range candidates {
		if _, err := os.Stat(filepath.Join(c, "app.wasm")); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("dashboard: %w in %s; build it with: GOOS=js GOARCH=wasm go build -trimpath -ldflags=\"-s -w\" -o web/app.wasm (in dashboard/)",
		ErrNoWasm, strings.Join(candidates, " or "))
}

func readWasm(dir string, files map[string]WasmFile, log *slog.Logger) ([]byte, error) {
	path := filepath.Join(dir, "app.wasm")
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w: %v", ErrNoWasm, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dashboard: read wasm: %w", err)
	}
	sum := sha256.Sum256(raw)
	tag := hex.EncodeToString(sum[:8])
	files[""] = WasmFile{Body: raw, ETag: `"` + tag + `"`, ModTime: info.ModTime()}
	for _, e := range precompress.Encodings {
		p := path + e.Suffix
		ci, err := os.Stat(p)
		if err != nil {
			log.Warn("compressed wasm missing; serving it uncompressed to browsers without another encoding",
				"file", p, "fix", "go run ./tools/compress "+path)
			continue
		}
		if ci.ModTime().Before(info.ModTime()) {
			log.Warn("compressed wasm older than app.wasm; not serving it", "file", p, "fix", "go run ./tools/compress "+path)
			continue
		}
		body, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("dashboard: read wasm: %w", err)
		}
		files[e.Name] = WasmFile{Body: body, ETag: `"` + tag + "-" + e.Name + `"`, ModTime: info.ModTime()}
	}
	return raw, nil
}

// serveWasm serves the wasm in the best encoding the browser accepts. The
// ETag names the build and the encoding, so browsers and the service worker
// keep the file and revalidate it with a 304 instead of downloading it again.
func (h *Handler) serveWasm(w http.ResponseWriter, r *http.Request) {
	enc := ChooseEncoding(r.Header.Get("Accept-Encoding"), h.Wasm)
	f := h.Wasm[enc]
	hd := w.Header()
	hd.Set("Content-Type", "application/wasm")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Vary", "Accept-Encoding")
	hd.Set("ETag", f.ETag)
	hd.Set("X-Uncompressed-Length", strconv.Itoa(len(h.Wasm[""].Body)))
	if enc != "" {
		hd.Set("Content-Encoding", enc)
	}
	http.ServeContent(w, r, "", f.ModTime, bytes.NewReader(f.Body))
}

// ChooseEncoding returns the best encoding in files that the Accept-Encoding
// header allows, or "" for the file as it is.
func ChooseEncoding(header string, files map[string]WasmFile) string {
	accepted := make(map[string]bool)
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		q := 1.0
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				q = f
			}
		}
		accepted[name] = q > 0
	}
	for _, e := range precompress.Encodings {
		if _, ok := files[e.Name]; ok && (accepted[e.Name] || accepted["*"]) {
			return e.Name
		}
	}
	return ""
}

func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

func loadAssets() (map[string]asset, error) {
	m := make(map[string]asset)
	add := func(path, contentType string, body []byte) {
		sum := sha256.Sum256(body)
		m[path] = asset{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	add(StylePath, "text/css; charset=utf-8", look.CSS)
	files := map[string]string{IconSVGPath: "image/svg+xml"}
	for path, ct := range files {
		b, err := fs.ReadFile(assetFS, "assets/"+strings.TrimPrefix(path, "/web/"))
		if err != nil {
			return nil, fmt.Errorf("dashboard: asset %s: %w", path, err)
		}
		add(path, ct, b)
	}
	for path, size := range map[string]int{Icon192Path: 192, Icon512Path: 512} {
		b, err := drawIcon(size)
		if err != nil {
			return nil, err
		}
		add(path, "image/png", b)
	}
	return m, nil
}

// drawIcon paints the app icon, the four bars of the chart, as a PNG of
// size×size pixels; the bars stay inside the middle 80% so that the icon
// also works masked.
func drawIcon(size int) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{0x1f, 0x24, 0x30, 0xff}}, image.Point{}, draw.Src)
	colors := []color.RGBA{{0, 0x80, 0, 0xff}, {0, 0, 0xff, 0xff}, {0xff, 0xff, 0, 0xff}, {0xff, 0, 0, 0xff}}
	heights := []float64{0.30, 0.50, 0.40, 0.66}
	s := float64(size)
	left, slot, bottom := 0.14*s, 0.18*s, 0.82*s
	for i, c := range colors {
		x0 := int(left + float64(i)*slot + 0.02*s)
		x1 := int(left + float64(i+1)*slot - 0.02*s)
		y0 := int(bottom - heights[i]*s)
		draw.Draw(img, image.Rect(x0, y0, x1, int(bottom)), &image.Uniform{c}, image.Point{}, draw.Src)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, fmt.Errorf("dashboard: icon: %w", err)
	}
	return b.Bytes(), nil
}
