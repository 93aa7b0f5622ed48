package workerapp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func mux() http.Handler {
	m := http.NewServeMux()
	New().Register(m)
	return m
}

// TestWorkerAppAssets: every file of the app is served with its type and
// the app's strict CSP.
func TestWorkerAppAssets(t *testing.T) {
	h := mux()
	for _, c := range []struct{ path, ctype, contains string }{
		{"/app/", "text/html; charset=utf-8", `<script src="/app/app.js" defer></script>`},
		{"/app/index.html", "text/html; charset=utf-8", `id="sos-btn"`},
		{"/app/app.js", "text/javascript; charset=utf-8", "indexedDB"},
		{"/app/sw.js", "text/javascript; charset=utf-8", "caches.open"},
		{"/app/app.css", "text/css; charset=utf-8", ".sos"},
		{"/app/manifest.webmanifest", "application/manifest+json", `"start_url": "/app/"`},
		{"/app/icon.svg", "image/svg+xml", "<svg"},
	} {
		resp := get(t, h, "GET", c.path)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", c.path, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != c.ctype {
			t.Errorf("%s: Content-Type %q, want %q", c.path, got, c.ctype)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != CSP {
			t.Errorf("%s: CSP %q", c.path, got)
		}
		if !strings.Contains(string(body), c.contains) {
			t.Errorf("%s: body lacks %q", c.path, c.contains)
		}
	}
}

// TestWorkerAppNoInline: the shell has no inline script, style or event
// handler (the CSP would block them).
func TestWorkerAppNoInline(t *testing.T) {
	b, err := static.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, bad := range []string{"<style", "style=", " onclick", " onload", " onsubmit", "javascript:", "<script>"} {
		if strings.Contains(s, bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}
	js, _ := static.ReadFile("static/app.js")
	if strings.Contains(string(js), "innerHTML") || strings.Contains(string(js), "eval(") {
		t.Error("app.js uses innerHTML or eval")
	}
}

// TestWorkerAppNotFound: anything but the app's files is a 404 with the
// CSP; only GET and HEAD answer; /app redirects to /app/.
func TestWorkerAppNotFound(t *testing.T) {
	h := mux()
	for _, p := range []string{"/app/nope.js", "/app/static/app.js", "/app/../app.go", "/app/app.go", "/app/x/..%2fapp.js", "/app/%2e%2e/app.go"} {
		resp := get(t, h, "GET", p)
		if resp.StatusCode != 404 && resp.StatusCode/100 != 3 { // the mux redirects to the cleaned path
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
		if resp.StatusCode == 404 && resp.Header.Get("Content-Security-Policy") != CSP {
			t.Errorf("%s: 404 without CSP", p)
		}
	}
	if resp := get(t, h, "POST", "/app/"); resp.StatusCode != 405 {
		t.Errorf("POST: %d", resp.StatusCode)
	}
	if resp := get(t, h, "GET", "/app"); resp.StatusCode != 301 || resp.Header.Get("Location") != "/app/" {
		t.Errorf("/app: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := get(t, h, "HEAD", "/app/app.js"); resp.StatusCode != 200 {
		t.Errorf("HEAD: %d", resp.StatusCode)
	}
}
