package app_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"vigil/internal/app"
	"vigil/internal/clock"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
)

// idp is an OpenID Connect provider at the network edge: discovery, keys,
// and a token endpoint that checks PKCE and signs ID tokens with claims the
// test chooses.
type idp struct {
	srv    *httptest.Server
	key    *ecdsa.PrivateKey
	mu     sync.Mutex
	grants map[string][2]string // code → nonce, code challenge
	claims map[string]any       // extra claims of the next token
}

func newIdP(t *testing.T) *idp {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{key: key, grants: map[string][2]string{}}
	mux := http.NewServeMux()
	p.srv = httptest.NewTLSServer(mux)
	t.Cleanup(p.srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		u := p.srv.URL
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token",
			"jwks_uri": u + "/jwks", "response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"ES256"}, "code_challenge_methods_supported": []string{"S256"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_basic"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		id, secret, _ := r.BasicAuth()
		p.mu.Lock()
		g, ok := p.grants[r.PostForm.Get("code")]
		delete(p.grants, r.PostForm.Get("code"))
		extra := p.claims
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if id != "vigil" || secret != "idp-secret" || !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != g[1] {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		claims := map[string]any{"iss": p.srv.URL, "sub": "idp-user-1", "aud": "vigil", "exp": time.Now().Add(5 * time.Minute).Unix(),
			"iat": time.Now().Unix(), "nonce": g[0], "email": "ada@example.org", "email_verified": true, "name": "Ada", "amr": []string{"pwd", "mfa"}}
		for k, v := range extra {
			claims[k] = v
		}
		b, _ := json.Marshal(claims)
		sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
		jws, _ := sig.Sign(b)
		tok, _ := jws.CompactSerialize()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": tok})
	})
	return p
}

// authorize is the provider's sign-in page: the user signs in there and
// is sent back with a code.
func (p *idp) authorize(t *testing.T, authURL string) url.Values {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil || !strings.HasPrefix(authURL, p.srv.URL+"/authorize") {
		t.Fatalf("redirected to %q, want the provider", authURL)
	}
	q := u.Query()
	code := "code-" + q.Get("state")[:8]
	p.mu.Lock()
	p.grants[code] = [2]string{q.Get("nonce"), q.Get("code_challenge")}
	p.mu.Unlock()
	return url.Values{"code": {code}, "state": {q.Get("state")}}
}

// TestSingleSignOn: a user an admin created signs in through the identity
// provider; the provider's asserted second factor counts, a sign-in
// without one still asks for Vigil's, an unknown person gets nothing, and
// a callback that does not belong to the browser's sign-in is refused.
func TestSingleSignOn(t *testing.T) {
	p := newIdP(t)
	cfg := vigiltest.Config(t)
	caFile := filepath.Join(t.TempDir(), "idp-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Notify.BaseURL = "https://vigil.example.org"
	cfg.Notify.OutboundCAFile = caFile
	cfg.Auth.OIDCIssuer, cfg.Auth.OIDCClientID, cfg.Auth.OIDCClientSecret = p.srv.URL, "vigil", "idp-secret"
	clk := clock.NewManual(time.Now())
	var out bytes.Buffer
	a, _ := vigiltest.StartAppWith(t, cfg, app.Deps{Clock: clk, Out: &out})
	w := &accessWorld{a: a, clk: clk, token: bootstrapRe.FindString(out.String())}
	admin, _, _ := w.enrolledAdmin(t) // ada@example.org
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme"}`); r.status != 201 {
		t.Fatalf("org: %d %s", r.status, r.body)
	}

	sso := func(b *browser, claims map[string]any) reply {
		t.Helper()
		p.mu.Lock()
		p.claims = claims
		p.mu.Unlock()
		b.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		r := b.do("GET", "/api/v1/auth/oidc/login", "")
		if r.status != http.StatusSeeOther {
			t.Fatalf("sso login: %d %s", r.status, r.body)
		}
		back := p.authorize(t, r.header.Get("Location"))
		return b.do("GET", "/api/v1/auth/oidc/callback?"+back.Encode(), "")
	}

	b := newBrowser(t, a)
	if r := sso(b, nil); r.status != 200 || r.json(t)["mfa"] != true {
		recs, _ := a.Store().ListAudit(t.Context(), store.AuditFilter{Action: "login.oidc"})
		t.Fatalf("sso with the provider's MFA: %d %s (audit %+v)", r.status, r.body, recs)
	}
	if r := b.do("GET", "/api/v1/orgs", ""); r.status != 200 || !strings.Contains(string(r.body), "acme") {
		t.Fatalf("after sso: %d %s", r.status, r.body)
	}
	u, err := a.Store().GetUserByEmail(t.Context(), "ada@example.org")
	if err != nil || u.OIDCSubject == "" {
		t.Fatalf("account not linked to the provider's subject: %v %+v", err, u.OIDCSubject)
	}

	c := newBrowser(t, a)
	if r := sso(c, map[string]any{"amr": []string{"pwd"}}); r.status != 200 || r.json(t)["mfa_required"] != true {
		t.Fatalf("sso without the provider's MFA: %d %s", r.status, r.body)
	}
	if r := c.do("GET", "/api/v1/orgs", ""); r.status != 401 {
		t.Fatalf("sso without MFA reached the API: %d", r.status)
	}

	d := newBrowser(t, a)
	if r := sso(d, map[string]any{"sub": "stranger", "email": "stranger@example.org"}); r.status != 401 {
		t.Fatalf("sso of someone with no account: %d %s, want 401", r.status, r.body)
	}
	if _, err := a.Store().GetUserByEmail(t.Context(), "stranger@example.org"); err == nil {
		t.Fatal("single sign-on created an account")
	}
	if recs, err := a.Store().ListAudit(t.Context(), store.AuditFilter{Action: "login.oidc"}); err != nil || len(recs) != 3 ||
		recs[2].Outcome != "denied" {
		t.Fatalf("audit of single sign-on: %v %+v, want two ok and one denied", err, recs)
	}

	// A callback from another browser's sign-in (login CSRF) is refused.
	e, f := newBrowser(t, a), newBrowser(t, a)
	e.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	f.hc.CheckRedirect = e.hc.CheckRedirect
	r := e.do("GET", "/api/v1/auth/oidc/login", "")
	back := p.authorize(t, r.header.Get("Location"))
	f.do("GET", "/api/v1/auth/oidc/login", "")
	if r := f.do("GET", "/api/v1/auth/oidc/callback?"+back.Encode(), ""); r.status != 401 {
		t.Fatalf("another browser's callback: %d %s, want 401", r.status, r.body)
	}
	if recs, err := a.Store().ListAudit(t.Context(), store.AuditFilter{Action: "login.oidc"}); err != nil || len(recs) != 4 ||
		recs[3].Outcome != "failed" || !strings.Contains(recs[3].Details, "state") {
		t.Fatalf("audit of the refused callback: %v %+v", err, recs)
	}
}

// TestOrganisationSingleSignOn: an organisation's admin sets its own
// identity provider (the secret sealed, never shown back); its members
// sign in through it with ?org=; it signs in no one of another
// organisation nor provider staff; the server reaches it only through the
// SSRF-safe client (a metadata address is refused); removing it turns it
// off.
func TestOrganisationSingleSignOn(t *testing.T) {
	p := newIdP(t)
	cfg := vigiltest.Config(t)
	caFile := filepath.Join(t.TempDir(), "idp-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Notify.BaseURL = "https://vigil.example.org"
	cfg.Notify.OutboundCAFile = caFile
	cfg.Notify.OutboundAllow = []string{"127.0.0.0/8"} // the provider is on loopback in this test
	clk := clock.NewManual(time.Now())
	var out bytes.Buffer
	a, _ := vigiltest.StartAppWith(t, cfg, app.Deps{Clock: clk, Out: &out})
	w := &accessWorld{a: a, clk: clk, token: bootstrapRe.FindString(out.String())}
	admin, _, _ := w.enrolledAdmin(t) // ada@example.org, provider staff
	for _, o := range []string{"acme", "beta"} {
		if r := admin.do("POST", "/api/v1/orgs", `{"id":"`+o+`","name":"`+o+`"}`); r.status != 201 {
			t.Fatalf("org: %d %s", r.status, r.body)
		}
	}
	for _, inv := range [][2]string{{"acme", "nina@example.org"}, {"beta", "bob@example.org"}} {
		if r := admin.do("POST", "/api/v1/orgs/"+inv[0]+"/users", `{"email":"`+inv[1]+`","name":"N","role":"supervisor"}`); r.status != 201 {
			t.Fatalf("invite: %d %s", r.status, r.body)
		}
	}

	// Not configured: 404 at login; the settings say so.
	b := newBrowser(t, a)
	b.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if r := b.do("GET", "/api/v1/auth/oidc/login?org=acme", ""); r.status != 404 {
		t.Errorf("login before it is set: %d", r.status)
	}
	if r := b.do("GET", "/api/v1/auth/oidc/login?org=..%2F", ""); r.status != 400 {
		t.Errorf("login with a bad org id: %d", r.status)
	}
	if r := admin.do("PUT", "/api/v1/orgs/acme/sso", `{"issuer":"http://idp.example.org","client_id":"vigil"}`); r.status != 400 ||
		!strings.Contains(string(r.body), `"issuer"`) {
		t.Errorf("http issuer: %d %s", r.status, r.body)
	}
	if r := admin.do("PUT", "/api/v1/orgs/acme/sso", `{"issuer":"`+p.srv.URL+`","client_id":"vigil","client_secret":"idp-secret"}`); r.status != 200 ||
		strings.Contains(string(r.body), "idp-secret") || !strings.Contains(string(r.body), `"client_secret_set":true`) {
		t.Fatalf("set: %d %s", r.status, r.body)
	}

	sso := func(org string, claims map[string]any) reply {
		t.Helper()
		p.mu.Lock()
		p.claims = claims
		p.mu.Unlock()
		c := newBrowser(t, a)
		c.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		r := c.do("GET", "/api/v1/auth/oidc/login?org="+org, "")
		if r.status != http.StatusSeeOther {
			return r
		}
		back := p.authorize(t, r.header.Get("Location"))
		return c.do("GET", "/api/v1/auth/oidc/callback?"+back.Encode(), "")
	}
	if r := sso("acme", map[string]any{"sub": "nina-at-idp", "email": "nina@example.org"}); r.status != 200 || r.json(t)["mfa"] != true {
		t.Fatalf("acme's member through acme's provider: %d %s", r.status, r.body)
	}
	if r := sso("acme", map[string]any{"sub": "bob-at-idp", "email": "bob@example.org"}); r.status != 401 {
		t.Errorf("beta's member through acme's provider: %d %s, want 401", r.status, r.body)
	}
	if r := sso("acme", map[string]any{"sub": "ada-at-idp", "email": "ada@example.org"}); r.status != 401 {
		t.Errorf("provider staff through acme's provider: %d %s, want 401", r.status, r.body)
	}
	if r := sso("beta", nil); r.status != 404 {
		t.Errorf("beta has no provider: %d", r.status)
	}
	u, err := a.Store().GetUserByEmail(t.Context(), "nina@example.org")
	if err != nil || !strings.HasPrefix(u.OIDCSubject, "org:acme:") {
		t.Errorf("nina's link: %v %q", err, u.OIDCSubject)
	}
	// The secret is sealed in the database.
	for _, f := range []string{"vigil.db", "vigil.db-wal"} {
		if raw, err := os.ReadFile(filepath.Join(cfg.DataDir, f)); err == nil && bytes.Contains(raw, []byte("idp-secret")) {
			t.Errorf("%s holds the client secret in clear", f)
		}
	}

	// A tenant-chosen address inside the cloud's metadata range is refused.
	if r := admin.do("PUT", "/api/v1/orgs/beta/sso", `{"issuer":"https://169.254.169.254/latest","client_id":"vigil"}`); r.status != 200 {
		t.Fatalf("set beta: %d %s", r.status, r.body)
	}
	if r := sso("beta", nil); r.status != 503 {
		t.Errorf("login through a metadata address: %d %s, want 503", r.status, r.body)
	}
	if r := admin.do("DELETE", "/api/v1/orgs/acme/sso", ""); r.status != 204 {
		t.Errorf("delete: %d", r.status)
	}
	if r := sso("acme", nil); r.status != 404 {
		t.Errorf("login after delete: %d", r.status)
	}
	if recs, err := a.Store().ListAudit(t.Context(), store.AuditFilter{OrgID: "acme", Action: "org.sso.set"}); err != nil || len(recs) != 1 ||
		recs[0].Severity != "high" || strings.Contains(recs[0].Details, "idp-secret") {
		t.Errorf("audit: %v %+v", err, recs)
	}
}

// TestSingleSignOnBrowserLandsOnTheConsole: a browser's callback is sent
// back to the console (303 to /) with its session, not a JSON page.
func TestSingleSignOnBrowserLandsOnTheConsole(t *testing.T) {
	p := newIdP(t)
	cfg := vigiltest.Config(t)
	caFile := filepath.Join(t.TempDir(), "idp-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Notify.BaseURL = "https://vigil.example.org"
	cfg.Notify.OutboundCAFile = caFile
	cfg.Auth.OIDCIssuer, cfg.Auth.OIDCClientID, cfg.Auth.OIDCClientSecret = p.srv.URL, "vigil", "idp-secret"
	clk := clock.NewManual(time.Now())
	var out bytes.Buffer
	a, _ := vigiltest.StartAppWith(t, cfg, app.Deps{Clock: clk, Out: &out})
	w := &accessWorld{a: a, clk: clk, token: bootstrapRe.FindString(out.String())}
	w.enrolledAdmin(t)
	b := newBrowser(t, a)
	b.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	b.header.Set("Accept", "text/html,application/xhtml+xml")
	r := b.do("GET", "/api/v1/auth/oidc/login", "")
	back := p.authorize(t, r.header.Get("Location"))
	r = b.do("GET", "/api/v1/auth/oidc/callback?"+back.Encode(), "")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/" || len(r.set) == 0 {
		t.Fatalf("browser callback: %d to %q, cookies %v", r.status, r.header.Get("Location"), r.set)
	}
	if r := b.do("GET", "/", ""); r.status != 200 || !strings.Contains(string(r.body), "Hello") {
		t.Errorf("console after single sign-on: %d %s", r.status, r.body)
	}
}
