// Package workerapp serves the worker app at /app/: a mobile-first
// progressive web app (an HTML shell, one script, a stylesheet, a service
// worker, a manifest and an icon, all embedded with go:embed). Everything
// it does happens in the browser over the public APIs: sign-in and
// sessions through the JSON API (/api/v1/...), pairing through POST
// /api/v1/me/device, and the phone's own events through the HTTPS device
// API (POST /api/v1/devices/{id}/events) from an IndexedDB queue.
//
// It must not import the store, the bus, gateways, app, web, safety or
// notify (TestDeps): it serves static files and nothing else. Files come
// only from the embedded set (never a path built from the request), and
// every answer, 404s included, carries the app's own strict
// Content-Security-Policy: no inline script or style.
package workerapp

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// CSP is the app's Content-Security-Policy, on every answer.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// types are the content types of the files the app serves; a file of
// another kind is not served.
var types = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".svg":         "image/svg+xml",
	".webmanifest": "application/manifest+json",
}

// Handler serves /app and /app/...
type Handler struct {
	files fs.FS
}

// New returns the worker app's handler.
func New() *Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded directory exists: a build error otherwise
	}
	return &Handler{files: sub}
}

// Register mounts the app on mux at /app and /app/.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("/app", h)
	mux.Handle("/app/", h)
}

// ServeHTTP answers GET and HEAD for the app's files; /app redirects to
// /app/, which is the shell (index.html).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Permissions-Policy", "geolocation=(self), camera=(), microphone=()")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/app" {
		http.Redirect(w, r, "/app/", http.StatusMovedPermanently)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/app/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if name == "" {
		name = "index.html"
	}
	ctype, known := types[path.Ext(name)]
	if !known || strings.Contains(name, "/") || !fs.ValidPath(name) {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(h.files, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	hd.Set("Content-Type", ctype)
	// Always revalidated: the service worker keeps the offline copy.
	hd.Set("Cache-Control", "no-cache")
	if name == "sw.js" {
		hd.Set("Service-Worker-Allowed", "/app/")
	}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(b)
}
