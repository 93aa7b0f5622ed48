package oidc_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"vigil/internal/auth/oidc"
	"vigil/internal/clock"
)

const (
	clientID     = "vigil-test"
	clientSecret = "test-client-secret-0123456789abcdef"
	redirectURL  = "https://vigil.example.org/api/v1/auth/oidc/callback"
	subject      = "user-42"
)

// t0 is when every test starts, on the provider's and on Vigil's clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeIdP is an OpenID Connect provider on loopback TLS: discovery, JWKS,
// /authorize (which answers at once with a redirect carrying a code, as if
// the user had signed in) and /token (which checks the client, the code,
// the redirect URI and the PKCE verifier, then returns an ES256 ID token).
type fakeIdP struct {
	srv   *httptest.Server
	key   *ecdsa.PrivateKey
	kid   string
	clock clock.Clock // the provider's own clock: Vigil's may drift

	mu         sync.Mutex
	meta       func(m map[string]any)               // edits the discovery document
	edit       func(c map[string]any)               // edits the ID token's claims
	sign       func(payload []byte) (string, error) // signs the ID token; default: key, kid, ES256
	noIDToken  bool                                 // token response without id_token
	grants     map[string]*grant
	authorized []url.Values // every /authorize query
	authStyle  string       // "basic" or "post": how the last token request authenticated
	secrets    []string     // codes, verifiers and tokens seen or issued: must never appear in errors
}

type grant struct {
	redirectURI, nonce, challenge string
	used                          bool
}

func newIdP(tb testing.TB) *fakeIdP {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	f := &fakeIdP{key: key, kid: "k1", clock: clock.NewManual(t0), grants: map[string]*grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", f.discovery)
	mux.HandleFunc("GET /jwks", f.jwks)
	mux.HandleFunc("GET /authorize", f.authorize)
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("GET /broken/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, strings.Repeat("<p>internal error</p>", 500), http.StatusInternalServerError)
	})
	f.srv = httptest.NewTLSServer(mux)
	tb.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIdP) set(fn func(f *fakeIdP)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeIdP) discovery(w http.ResponseWriter, r *http.Request) {
	u := f.srv.URL
	m := map[string]any{
		"issuer":                                u,
		"authorization_endpoint":                u + "/authorize",
		"token_endpoint":                        u + "/token",
		"jwks_uri":                              u + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic"},
	}
	f.mu.Lock()
	if f.meta != nil {
		f.meta(m)
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, m)
}

func (f *fakeIdP) jwks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &f.key.PublicKey, KeyID: f.kid, Algorithm: string(jose.ES256), Use: "sig"},
	}})
}

func (f *fakeIdP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.authorized = append(f.authorized, q)
	switch {
	case q.Get("response_type") != "code", q.Get("client_id") != clientID, q.Get("redirect_uri") != redirectURL,
		q.Get("code_challenge_method") != "S256", q.Get("code_challenge") == "", q.Get("state") == "", q.Get("nonce") == "":
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	code := random()
	f.grants[code] = &grant{redirectURI: q.Get("redirect_uri"), nonce: q.Get("nonce"), challenge: q.Get("code_challenge")}
	f.secrets = append(f.secrets, code)
	to, _ := url.Parse(q.Get("redirect_uri"))
	to.RawQuery = url.Values{"code": {code}, "state": {q.Get("state")}}.Encode()
	http.Redirect(w, r, to.String(), http.StatusFound)
}

func (f *fakeIdP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id, secret, basic := r.BasicAuth()
	f.authStyle = "basic"
	if !basic {
		id, secret, f.authStyle = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), "post"
	}
	if id != clientID || secret != clientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	verifier := r.PostForm.Get("code_verifier")
	f.secrets = append(f.secrets, verifier)
	g := f.grants[r.PostForm.Get("code")]
	if g == nil || g.used {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	g.used = true // a code is burnt by any attempt, as at real providers
	sum := sha256.Sum256([]byte(verifier))
	if r.PostForm.Get("redirect_uri") != g.redirectURI || b64(sum[:]) != g.challenge {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}

	access := random()
	atHash := sha256.Sum256([]byte(access))
	now := f.clock.Now()
	claims := map[string]any{
		"iss":            f.srv.URL,
		"sub":            subject,
		"aud":            clientID,
		"exp":            now.Add(5 * time.Minute).Unix(),
		"iat":            now.Unix(),
		"nonce":          g.nonce,
		"at_hash":        b64(atHash[:16]),
		"email":          "ada@example.org",
		"email_verified": true,
		"name":           "Ada Lovelace",
		"amr":            []string{"pwd", "mfa"},
	}
	if f.edit != nil {
		f.edit(claims)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error")
		return
	}
	sign := f.sign
	if sign == nil {
		sign = func(p []byte) (string, error) {
			return signJWT(jose.ES256, jose.JSONWebKey{Key: f.key, KeyID: f.kid}, p)
		}
	}
	idToken, err := sign(payload)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error")
		return
	}
	resp := map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 300}
	if !f.noIDToken {
		resp["id_token"] = idToken
	}
	f.secrets = append(f.secrets, access, idToken)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}

// seen returns every code, verifier and token the provider saw or issued.
func (f *fakeIdP) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.secrets...)
}

// lastAuthStyle says how the last token request authenticated the client.
func (f *fakeIdP) lastAuthStyle() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.authStyle
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": "refused by the fake provider"})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func random() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b64(b)
}

func signJWT(alg jose.SignatureAlgorithm, key any, payload []byte) (string, error) {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	obj, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// client is the TLS client trusting the fake provider, as production passes
// one with a timeout.
func (f *fakeIdP) client() *http.Client {
	c := *f.srv.Client()
	c.Timeout = 10 * time.Second
	return &c
}

// newProvider runs discovery at f with a manual clock reading t0; edit
// changes the config first.
func newProvider(tb testing.TB, f *fakeIdP, edit func(*oidc.Config)) (*oidc.Provider, *clock.Manual) {
	tb.Helper()
	clk := clock.NewManual(t0)
	cfg := oidc.Config{
		Issuer:       f.srv.URL,
		ClientID:     clientID,
		ClientSecret: clientSecret,
		RedirectURL:  redirectURL,
		HTTPClient:   f.client(),
		Clock:        clk,
	}
	if edit != nil {
		edit(&cfg)
	}
	p, err := oidc.New(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return p, clk
}

// login is a browser: Begin, follow the URL to the provider, and read the
// callback's state and code off the redirect.
func login(tb testing.TB, f *fakeIdP, p *oidc.Provider) (pending []byte, state, code string) {
	tb.Helper()
	pending, state, code, err := tryLogin(f, p)
	if err != nil {
		tb.Fatal(err)
	}
	return pending, state, code
}

func tryLogin(f *fakeIdP, p *oidc.Provider) (pending []byte, state, code string, err error) {
	authURL, pending, err := p.Begin()
	if err != nil {
		return nil, "", "", fmt.Errorf("Begin: %w", err)
	}
	c := f.client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(authURL)
	if err != nil {
		return nil, "", "", fmt.Errorf("GET authorize: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return nil, "", "", fmt.Errorf("authorize answered %s, want 302", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), redirectURL+"?") {
		return nil, "", "", fmt.Errorf("authorize redirected to %q, want %s?…", resp.Header.Get("Location"), redirectURL)
	}
	return pending, loc.Query().Get("state"), loc.Query().Get("code"), nil
}

// assertNoLeak fails if err's text quotes a secret.
func assertNoLeak(t *testing.T, err error, secrets ...string) {
	t.Helper()
	msg := fmt.Sprintf("%v %+v", err, err)
	for _, s := range append(secrets, clientSecret) {
		if s != "" && strings.Contains(msg, s) {
			t.Errorf("error %q contains the secret %q", msg, s)
		}
	}
}

func TestBegin(t *testing.T) {
	f := newIdP(t)
	p, _ := newProvider(t, f, nil)
	authURL, pending, err := p.Begin()
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := u.Scheme+"://"+u.Host+u.Path, f.srv.URL+"/authorize"; got != want {
		t.Errorf("auth URL endpoint = %s, want %s", got, want)
	}
	q := u.Query()
	for k, want := range map[string]string{
		"response_type":         "code",
		"client_id":             clientID,
		"redirect_uri":          redirectURL,
		"scope":                 "openid email profile",
		"code_challenge_method": "S256",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		b, err := base64.RawURLEncoding.DecodeString(q.Get(k))
		if err != nil || len(b) != 32 {
			t.Errorf("%s = %q, want 32 bytes in base64url", k, q.Get(k))
		}
	}
	if q.Has("client_secret") || strings.Contains(authURL, clientSecret) {
		t.Errorf("auth URL carries the client secret")
	}
	if len(pending) == 0 {
		t.Errorf("pending is empty")
	}
	if bytes.Contains(pending, []byte(q.Get("code_challenge"))) {
		t.Errorf("pending holds the challenge as text; want the verifier only")
	}

	authURL2, pending2, _ := p.Begin()
	q2, _ := url.ParseQuery(authURL2[strings.IndexByte(authURL2, '?')+1:])
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if q.Get(k) == q2.Get(k) {
			t.Errorf("two logins share %s %q", k, q.Get(k))
		}
	}
	if bytes.Equal(pending, pending2) {
		t.Errorf("two logins share pending bytes")
	}
}

func TestFinish(t *testing.T) {
	f := newIdP(t)
	p, _ := newProvider(t, f, nil)
	pending, state, code := login(t, f, p)
	got, err := p.Finish(t.Context(), pending, state, code)
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	want := oidc.Identity{
		Subject:       f.srv.URL + " " + subject,
		Email:         "ada@example.org",
		EmailVerified: true,
		Name:          "Ada Lovelace",
		MFA:           true,
		AMR:           []string{"pwd", "mfa"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	if got := f.lastAuthStyle(); got != "basic" {
		t.Errorf("client authenticated with %s, want basic (advertised)", got)
	}

	// The code is single-use at the provider: a replayed callback fails.
	_, err = p.Finish(t.Context(), pending, state, code)
	if !errors.Is(err, oidc.ErrExchange) {
		t.Errorf("replayed callback: err = %v, want ErrExchange", err)
	}
	assertNoLeak(t, err, f.seen()...)
}

// TestFinishClaims checks what Finish reads from a valid ID token.
func TestFinishClaims(t *testing.T) {
	tests := []struct {
		name      string
		acceptAMR []string
		edit      func(c map[string]any)
		wantMFA   bool
		wantAMR   []string
		wantEV    bool
	}{
		{name: "pwd and mfa", wantMFA: true, wantAMR: []string{"pwd", "mfa"}, wantEV: true},
		{name: "pwd only", edit: func(c map[string]any) { c["amr"] = []string{"pwd"} }, wantAMR: []string{"pwd"}, wantEV: true},
		{name: "no amr", edit: func(c map[string]any) { delete(c, "amr") }, wantEV: true},
		{name: "hardware key", edit: func(c map[string]any) { c["amr"] = []string{"hwk", "pin"} }, wantMFA: true, wantAMR: []string{"hwk", "pin"}, wantEV: true},
		{name: "mfa not accepted by config", acceptAMR: []string{"hwk"}, wantAMR: []string{"pwd", "mfa"}, wantEV: true},
		{name: "email_verified as string", edit: func(c map[string]any) { c["email_verified"] = "true" }, wantMFA: true, wantAMR: []string{"pwd", "mfa"}, wantEV: true},
		{name: "email_verified false", edit: func(c map[string]any) { c["email_verified"] = false }, wantMFA: true, wantAMR: []string{"pwd", "mfa"}},
		{name: "email_verified absent", edit: func(c map[string]any) { delete(c, "email_verified") }, wantMFA: true, wantAMR: []string{"pwd", "mfa"}},
		{name: "azp names this client", edit: func(c map[string]any) { c["aud"] = []string{clientID, "other"}; c["azp"] = clientID }, wantMFA: true, wantAMR: []string{"pwd", "mfa"}, wantEV: true},
		{name: "no at_hash", edit: func(c map[string]any) { delete(c, "at_hash") }, wantMFA: true, wantAMR: []string{"pwd", "mfa"}, wantEV: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newIdP(t)
			f.set(func(f *fakeIdP) { f.edit = tt.edit })
			p, _ := newProvider(t, f, func(c *oidc.Config) { c.AcceptAMR = tt.acceptAMR })
			pending, state, code := login(t, f, p)
			id, err := p.Finish(t.Context(), pending, state, code)
			if err != nil {
				t.Fatalf("Finish: %v", err)
			}
			if id.MFA != tt.wantMFA || id.EmailVerified != tt.wantEV || !cmp.Equal(id.AMR, tt.wantAMR) {
				t.Errorf("MFA, AMR, EmailVerified = %t, %q, %t; want %t, %q, %t",
					id.MFA, id.AMR, id.EmailVerified, tt.wantMFA, tt.wantAMR, tt.wantEV)
			}
		})
	}
}

func TestFinishRefuses(t *testing.T) {
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	type callback struct {
		pending     []byte
		state, code string
	}
	tests := []struct {
		name string
		idp  func(f *fakeIdP)
		// act runs between login and Finish: it may move Vigil's clock
		// or change the callback.
		act     func(t *testing.T, f *fakeIdP, p *oidc.Provider, clk *clock.Manual, cb *callback)
		wantErr error
	}{
		{
			name: "wrong state",
			act: func(t *testing.T, f *fakeIdP, p *oidc.Provider, _ *clock.Manual, cb *callback) {
				_, cb.state, _ = login(t, f, p)
			},
			wantErr: oidc.ErrState,
		},
		{
			name:    "empty state",
			act:     func(_ *testing.T, _ *fakeIdP, _ *oidc.Provider, _ *clock.Manual, cb *callback) { cb.state = "" },
			wantErr: oidc.ErrState,
		},
		{
			name: "malformed pending",
			act: func(_ *testing.T, _ *fakeIdP, _ *oidc.Provider, _ *clock.Manual, cb *callback) {
				cb.pending = cb.pending[1:]
			},
			wantErr: oidc.ErrState,
		},
		{
			name: "pending too old",
			act: func(_ *testing.T, _ *fakeIdP, _ *oidc.Provider, clk *clock.Manual, _ *callback) {
				clk.Advance(oidc.DefaultPendingTTL + time.Second)
			},
			wantErr: oidc.ErrState,
		},
		{
			// A code stolen from another login (code injection): the
			// verifier in this pending login does not match its challenge.
			name: "code of another login (PKCE verifier mismatch)",
			act: func(t *testing.T, f *fakeIdP, p *oidc.Provider, _ *clock.Manual, cb *callback) {
				_, _, cb.code = login(t, f, p)
			},
			wantErr: oidc.ErrExchange,
		},
		{
			name:    "empty code",
			act:     func(_ *testing.T, _ *fakeIdP, _ *oidc.Provider, _ *clock.Manual, cb *callback) { cb.code = "" },
			wantErr: oidc.ErrExchange,
		},
		{
			name:    "unknown code",
			act:     func(_ *testing.T, _ *fakeIdP, _ *oidc.Provider, _ *clock.Manual, cb *callback) { cb.code = random() },
			wantErr: oidc.ErrExchange,
		},
		{
			name:    "wrong nonce",
			idp:     func(f *fakeIdP) { f.edit = func(c map[string]any) { c["nonce"] = random() } },
			wantErr: oidc.ErrToken,
		},
		{
			name:    "no nonce",
			idp:     func(f *fakeIdP) { f.edit = func(c map[string]any) { delete(c, "nonce") } },
			wantErr: oidc.ErrToken,
		},
		{
			// The provider issues the token for five minutes by its own
			// clock; Vigil's reads six minutes later.
			name: "expired",
			act: func(_ *testing.T, _ *fakeIdP, _ *oidc.Provider, clk *clock.Manual, _ *callback) {
				clk.Advance(6 * time.Minute)
			},
			wantErr: oidc.ErrToken,
		},
		{
			name:    "no exp",
			idp:     func(f *fakeIdP) { f.edit = func(c map[string]any) { delete(c, "exp") } },
			wantErr: oidc.ErrToken,
		},
		{
			name:    "wrong audience",
			idp:     func(f *fakeIdP) { f.edit = func(c map[string]any) { c["aud"] = "another-client" } },
			wantErr: oidc.ErrToken,
		},
		{
			name:    "second audience without azp",
			idp:     func(f *fakeIdP) { f.edit = func(c map[string]any) { c["aud"] = []string{clientID, "another-client"} } },
			wantErr: oidc.ErrToken,
		},
		{
			name:    "azp names another client",
			idp:     func(f *fakeIdP) { f.edit = func(c map[string]any) { c["azp"] = "another-client" } },
			wantErr: oidc.ErrToken,
		},
		{
			name:    "wrong issuer",
			idp:     func(f *fakeIdP) { f.edit = func(c map[string]any) { c["iss"] = "https://idp.example.net" } },
			wantErr: oidc.ErrToken,
		},
		{
			name:    "no sub",
			idp:     func(f *fakeIdP) { f.edit = func(c map[string]any) { delete(c, "sub") } },
			wantErr: oidc.ErrToken,
		},
		{
			name:    "sub with a newline",
			idp:     func(f *fakeIdP) { f.edit = func(c map[string]any) { c["sub"] = "user\n42" } },
			wantErr: oidc.ErrToken,
		},
		{
			name:    "wrong at_hash",
			idp:     func(f *fakeIdP) { f.edit = func(c map[string]any) { c["at_hash"] = b64(make([]byte, 16)) } },
			wantErr: oidc.ErrToken,
		},
		{
			name:    "amr not an array",
			idp:     func(f *fakeIdP) { f.edit = func(c map[string]any) { c["amr"] = "mfa" } },
			wantErr: oidc.ErrToken,
		},
		{
			name:    "email_verified not a boolean",
			idp:     func(f *fakeIdP) { f.edit = func(c map[string]any) { c["email_verified"] = "yes" } },
			wantErr: oidc.ErrToken,
		},
		{
			name: "signed by another key, same kid",
			idp: func(f *fakeIdP) {
				f.sign = func(p []byte) (string, error) {
					return signJWT(jose.ES256, jose.JSONWebKey{Key: otherKey, KeyID: f.kid}, p)
				}
			},
			wantErr: oidc.ErrToken,
		},
		{
			name: "signed by another key, unknown kid",
			idp: func(f *fakeIdP) {
				f.sign = func(p []byte) (string, error) {
					return signJWT(jose.ES256, jose.JSONWebKey{Key: otherKey, KeyID: "k2"}, p)
				}
			},
			wantErr: oidc.ErrToken,
		},
		{
			name: "alg none",
			idp: func(f *fakeIdP) {
				f.sign = func(p []byte) (string, error) {
					return b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64(p) + ".", nil
				}
			},
			wantErr: oidc.ErrToken,
		},
		{
			// HMAC keyed with the client secret, a classic confusion; the
			// provider advertises only ES256.
			name: "alg HS256",
			idp: func(f *fakeIdP) {
				f.sign = func(p []byte) (string, error) { return signJWT(jose.HS256, []byte(clientSecret), p) }
			},
			wantErr: oidc.ErrToken,
		},
		{
			// Even advertised, HS256 is refused: go-oidc drops it.
			name: "alg HS256 advertised",
			idp: func(f *fakeIdP) {
				f.meta = func(m map[string]any) { m["id_token_signing_alg_values_supported"] = []string{"ES256", "HS256"} }
				f.sign = func(p []byte) (string, error) { return signJWT(jose.HS256, []byte(clientSecret), p) }
			},
			wantErr: oidc.ErrToken,
		},
		{
			name:    "no id_token",
			idp:     func(f *fakeIdP) { f.noIDToken = true },
			wantErr: oidc.ErrToken,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newIdP(t)
			if tt.idp != nil {
				f.set(tt.idp)
			}
			p, clk := newProvider(t, f, nil)
			var cb callback
			cb.pending, cb.state, cb.code = login(t, f, p)
			if tt.act != nil {
				tt.act(t, f, p, clk, &cb)
			}
			id, err := p.Finish(t.Context(), cb.pending, cb.state, cb.code)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Finish: err = %v, want %v", err, tt.wantErr)
			}
			t.Logf("err = %v", err)
			if !cmp.Equal(id, oidc.Identity{}) {
				t.Errorf("Finish returned an identity with its error: %+v", id)
			}
			for _, other := range []error{oidc.ErrState, oidc.ErrExchange, oidc.ErrToken} {
				if other != tt.wantErr && errors.Is(err, other) {
					t.Errorf("err = %v is also %v", err, other)
				}
			}
			assertNoLeak(t, err, append(f.seen(), cb.code)...)
		})
	}
}

func TestFinishExpiredIsTokenExpiredError(t *testing.T) {
	f := newIdP(t)
	p, clk := newProvider(t, f, nil)
	pending, state, code := login(t, f, p)
	clk.Advance(6 * time.Minute)
	_, err := p.Finish(t.Context(), pending, state, code)
	if _, ok := errors.AsType[*gooidc.TokenExpiredError](err); !ok {
		t.Errorf("err = %v, want a *oidc.TokenExpiredError inside", err)
	}
}

func TestClientSecretPost(t *testing.T) {
	f := newIdP(t)
	f.set(func(f *fakeIdP) {
		f.meta = func(m map[string]any) { m["token_endpoint_auth_methods_supported"] = []string{"client_secret_post"} }
	})
	p, _ := newProvider(t, f, nil)
	pending, state, code := login(t, f, p)
	if _, err := p.Finish(t.Context(), pending, state, code); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if got := f.lastAuthStyle(); got != "post" {
		t.Errorf("client authenticated with %s, want post (the only one advertised)", got)
	}
}

func TestNewRefuses(t *testing.T) {
	f := newIdP(t)
	tests := []struct {
		name     string
		meta     func(m map[string]any)
		cfg      func(c *oidc.Config)
		wantText string // the error names what failed
	}{
		{name: "http issuer", cfg: func(c *oidc.Config) { c.Issuer = strings.Replace(c.Issuer, "https:", "http:", 1) }, wantText: "issuer"},
		{name: "no issuer", cfg: func(c *oidc.Config) { c.Issuer = "" }, wantText: "issuer"},
		{name: "issuer differs from discovery", cfg: func(c *oidc.Config) { c.Issuer += "/" }, wantText: "discovery at " + f.srv.URL + "/.well-known/openid-configuration"},
		{name: "no discovery", cfg: func(c *oidc.Config) { c.Issuer += "/tenant" }, wantText: "discovery at " + f.srv.URL + "/tenant/.well-known/openid-configuration"},
		{name: "discovery fails with a long page", cfg: func(c *oidc.Config) { c.Issuer += "/broken" }, wantText: "500 Internal Server Error"},
		{name: "no client id", cfg: func(c *oidc.Config) { c.ClientID = "" }, wantText: "client id"},
		{name: "http redirect URL", cfg: func(c *oidc.Config) { c.RedirectURL = "http://vigil.example.org/cb" }, wantText: "redirect URL"},
		{name: "scopes without openid", cfg: func(c *oidc.Config) { c.Scopes = []string{"email"} }, wantText: "openid"},
		{name: "no S256", meta: func(m map[string]any) { m["code_challenge_methods_supported"] = []string{"plain"} }, wantText: "S256"},
		{name: "no code flow", meta: func(m map[string]any) { m["response_types_supported"] = []string{"id_token"} }, wantText: "code flow"},
		{name: "http token endpoint", meta: func(m map[string]any) { m["token_endpoint"] = "http://idp.example.net/token" }, wantText: "token_endpoint"},
		{name: "no jwks", meta: func(m map[string]any) { delete(m, "jwks_uri") }, wantText: "jwks_uri"},
		{name: "unsupported client auth", meta: func(m map[string]any) { m["token_endpoint_auth_methods_supported"] = []string{"private_key_jwt"} }, wantText: "client_secret_basic"},
		{name: "discovery over 1 MiB", meta: func(m map[string]any) { m["padding"] = strings.Repeat("x", 2<<20) }, wantText: "discovery at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.set(func(f *fakeIdP) { f.meta = tt.meta })
			cfg := oidc.Config{Issuer: f.srv.URL, ClientID: clientID, ClientSecret: clientSecret, RedirectURL: redirectURL, HTTPClient: f.client()}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			p, err := oidc.New(t.Context(), cfg)
			if err == nil {
				t.Fatalf("New = %v, want an error", p)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("err = %q, want it to name %q", err, tt.wantText)
			}
			if len(err.Error()) > 600 {
				t.Errorf("error is %d bytes long, want it short", len(err.Error()))
			}
			t.Logf("err = %v", err)
			assertNoLeak(t, err)
		})
	}
}

// TestConcurrentLogins runs logins through one Provider at once (run with
// -race).
func TestConcurrentLogins(t *testing.T) {
	f := newIdP(t)
	p, _ := newProvider(t, f, nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			pending, state, code, err := tryLogin(f, p)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := p.Finish(t.Context(), pending, state, code); err != nil {
				t.Errorf("Finish: %v", err)
			}
		})
	}
	wg.Wait()
}

// TestPrintsNoSecrets proves Config, Provider and Identity print and log
// without the client secret or personal data.
func TestPrintsNoSecrets(t *testing.T) {
	f := newIdP(t)
	p, _ := newProvider(t, f, nil)
	pending, state, code := login(t, f, p)
	id, err := p.Finish(t.Context(), pending, state, code)
	if err != nil {
		t.Fatal(err)
	}
	cfg := oidc.Config{Issuer: f.srv.URL, ClientID: clientID, ClientSecret: clientSecret, RedirectURL: redirectURL}
	var buf bytes.Buffer
	for _, v := range []any{cfg, &cfg, p, id, &id} {
		fmt.Fprintf(&buf, "%v %+v %#v %s %q %x %d\n", v, v, v, v, v, v, v)
	}
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("oidc", "config", cfg, "provider", p, "identity", id)
	log.Info("oidc", "config", &cfg, "identity", &id)
	for _, secret := range []string{clientSecret, "ada@example.org", "Ada Lovelace", subject} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("output contains %q:\n%s", secret, buf.String())
		}
	}
	if !strings.Contains(buf.String(), f.srv.URL) || !strings.Contains(buf.String(), `"mfa":true`) {
		t.Errorf("output lacks the issuer or the MFA flag:\n%s", buf.String())
	}
}
