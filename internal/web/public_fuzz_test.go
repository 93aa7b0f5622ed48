package web_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/internal/audit"
	"vigil/internal/auth"
	"vigil/internal/auth/password"
	"vigil/internal/seal"
	"vigil/internal/store/sqlite"
	"vigil/internal/web"
)

// publicAPI is the JSON API with a real sign-in service on SQLite, for the
// routes that answer before sign-in.
func publicAPI(t testing.TB) http.Handler {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "v.db"), sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	k, err := seal.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	sl, err := seal.New(k)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	al := audit.New(st, priv, log, nil, audit.Config{})
	// Cheap hashing: the fuzzer looks for crashes, not for strength.
	svc := auth.New(st, sl, al, auth.Config{Params: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		DeviceKey: []byte("0123456789abcdef0123456789abcdef")})
	if _, err := svc.EnsureBootstrapToken(ctx); err != nil {
		t.Fatal(err)
	}
	api := web.NewAPI(nil, nil, st, log, time.Now)
	api.SetAuth(svc, al, st)
	return api.Handler()
}

// FuzzPublicRoutes feeds every route that answers before sign-in (the
// sign-in, bootstrap and reset forms, the single sign-on callback) with
// arbitrary bodies and queries: no panic, no 5xx, never a session.
func FuzzPublicRoutes(f *testing.F) {
	for _, s := range []string{`{"email":"a@example.org","password":"correct horse battery staple"}`,
		`{"token":"vgb_x","email":"a@example.org","name":"A","password":"correct horse battery staple"}`,
		`{"email":"a@example.org"}`, `{"token":"vgr_x","password":"p"}`, `{"email":1}`, `[]`, `{"email":"\u0000"}`, "", "{",
		`{"email":"a@example.org","password":"` + strings.Repeat("x", 2000) + `"}`} {
		f.Add(s, "state=s&code=c")
	}
	h := publicAPI(f)
	var public []string
	for _, rt := range web.Routes {
		if rt.Access == web.Public {
			public = append(public, rt.Pattern)
		}
	}
	f.Fuzz(func(t *testing.T, body, query string) {
		for _, p := range public {
			method, path, _ := strings.Cut(p, " ")
			req := httptest.NewRequest(method, "https://vigil.example.org"+path+"?"+url.PathEscape(query), bytes.NewReader([]byte(body)))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
				t.Fatalf("%s: %d %s", p, rec.Code, rec.Body)
			}
			for _, c := range rec.Result().Cookies() {
				if c.Name == web.SessionCookie && c.Value != "" {
					t.Fatalf("%s handed out a session for %q", p, body)
				}
			}
		}
	})
}
