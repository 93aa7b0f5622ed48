package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"vigil/internal/app"
	"vigil/internal/auth/mfa"
	"vigil/internal/auth/password"
	"vigil/internal/clock"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
	"vigil/internal/web"
)

// browser is one HTTP client with its own cookies (a browser profile),
// talking to the HTTPS listener.
type browser struct {
	t       *testing.T
	a       *app.App
	hc      *http.Client
	cookies map[string]*http.Cookie
	header  http.Header // extra headers on every request
}

func newBrowser(t *testing.T, a *app.App) *browser {
	return &browser{t: t, a: a, hc: &http.Client{Transport: &http.Transport{TLSClientConfig: vigiltest.ClientTLS(t, a)}},
		cookies: map[string]*http.Cookie{}, header: http.Header{}}
}

type reply struct {
	status int
	body   []byte
	header http.Header
	set    []*http.Cookie
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("not JSON (%d): %s", r.status, r.body)
	}
	return m
}

func (b *browser) do(method, path, body string) reply {
	b.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://"+b.a.Addr("https")+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range b.header {
		req.Header[k] = v
	}
	if h := b.header.Get("Host"); h != "" {
		req.Host = h
	}
	for _, c := range b.cookies {
		req.AddCookie(c)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return reply{resp.StatusCode, rb, resp.Header, resp.Cookies()}
}

const strongPassword = "correct horse battery staple fjord"

var bootstrapRe = regexp.MustCompile(`vgb_[A-Za-z0-9_-]+`)

// accessWorld is a server on a manual clock with its bootstrap token.
type accessWorld struct {
	a     *app.App
	clk   *clock.Manual
	token string
}

func newAccessWorld(t *testing.T) *accessWorld {
	t.Helper()
	clk := clock.NewManual(time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC))
	var out bytes.Buffer
	a, _ := vigiltest.StartAppWith(t, vigiltest.Config(t), app.Deps{Clock: clk, Out: &out})
	tok := bootstrapRe.FindString(out.String())
	if tok == "" {
		t.Fatalf("no bootstrap token printed: %q", out.String())
	}
	return &accessWorld{a: a, clk: clk, token: tok}
}

// enrolledAdmin bootstraps the first admin, signs in and enrols TOTP; it
// returns the browser (signed in with MFA) and the TOTP secret.
func (w *accessWorld) enrolledAdmin(t *testing.T) (*browser, []byte, []string) {
	t.Helper()
	b := newBrowser(t, w.a)
	r := b.do("POST", "/api/v1/auth/bootstrap", `{"token":"`+w.token+`","email":"Ada@Example.org","name":"Ada Admin","password":"`+strongPassword+`"}`)
	if r.status != 201 {
		t.Fatalf("bootstrap: %d %s", r.status, r.body)
	}
	r = b.do("POST", "/api/v1/auth/login", `{"email":"ada@example.org","password":"`+strongPassword+`"}`)
	if r.status != 200 || r.json(t)["must_enrol"] != true {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	r = b.do("POST", "/api/v1/auth/totp/enrol", `{}`)
	if r.status != 200 {
		t.Fatalf("enrol: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if png, _ := m["qr_png"].(string); !strings.HasPrefix(png, "data:image/png;base64,") {
		t.Fatalf("enrol: no QR image: %.80s", png)
	}
	u, err := url.Parse(m["otpauth_uri"].(string))
	if err != nil {
		t.Fatal(err)
	}
	secret := decodeBase32(t, u.Query().Get("secret"))
	r = b.do("POST", "/api/v1/auth/totp/confirm", `{"code":"`+mfa.TOTPCode(secret, w.clk.Now())+`"}`)
	if r.status != 200 {
		t.Fatalf("confirm: %d %s", r.status, r.body)
	}
	var codes []string
	for _, c := range r.json(t)["recovery_codes"].([]any) {
		codes = append(codes, c.(string))
	}
	if len(codes) != 10 {
		t.Fatalf("got %d recovery codes, want 10", len(codes))
	}
	return b, secret, codes
}

// TestBootstrapFirstAdmin is security requirement 1: nothing signs in
// before the bootstrap token creates the first admin; the token works once
// and not after 24 hours.
func TestBootstrapFirstAdmin(t *testing.T) {
	w := newAccessWorld(t)
	b := newBrowser(t, w.a)
	for _, cred := range [][2]string{{"admin", "admin"}, {"admin", "password"}, {"sysadmin@thingsboard.org", "sysadmin"},
		{"admin@example.org", ""}, {"", ""}} {
		body, _ := json.Marshal(map[string]string{"email": cred[0], "password": cred[1]})
		if r := b.do("POST", "/api/v1/auth/login", string(body)); r.status != 401 {
			t.Errorf("login %q/%q on a fresh install: %d %s, want 401", cred[0], cred[1], r.status, r.body)
		}
	}
	for _, p := range []string{"/api/v1/users", "/api/users", "/register", "/api/v1/register", "/api/v1/auth/register", "/api/v1/auth/signup"} {
		if r := b.do("POST", p, `{"email":"x@example.org","password":"`+strongPassword+`"}`); r.status != 404 && r.status != 401 {
			t.Errorf("self-registration POST %s: %d, want 404 or 401", p, r.status)
		}
	}
	if r := b.do("POST", "/api/v1/auth/bootstrap", `{"token":"vgb_wrong","email":"a@example.org","name":"A","password":"`+strongPassword+`"}`); r.status != 410 {
		t.Errorf("wrong bootstrap token: %d %s, want 410", r.status, r.body)
	}
	r := b.do("POST", "/api/v1/auth/bootstrap", `{"token":"`+w.token+`","email":"a@example.org","name":"A","password":"Password1!"}`)
	if r.status != 400 || r.json(t)["error"].(map[string]any)["field"] != "password" {
		t.Errorf("weak password: %d %s, want 400 naming password", r.status, r.body)
	}
	if r := b.do("POST", "/api/v1/auth/bootstrap", `{"token":"`+w.token+`","email":"a@example.org","name":"A","password":"`+strongPassword+`"}`); r.status != 201 {
		t.Fatalf("bootstrap: %d %s", r.status, r.body)
	}
	if r := b.do("POST", "/api/v1/auth/bootstrap", `{"token":"`+w.token+`","email":"b@example.org","name":"B","password":"`+strongPassword+`"}`); r.status != 410 {
		t.Errorf("bootstrap token reused: %d %s, want 410", r.status, r.body)
	}
}

func TestBootstrapTokenExpires(t *testing.T) {
	w := newAccessWorld(t)
	w.clk.Advance(24*time.Hour + time.Second)
	b := newBrowser(t, w.a)
	if r := b.do("POST", "/api/v1/auth/bootstrap", `{"token":"`+w.token+`","email":"a@example.org","name":"A","password":"`+strongPassword+`"}`); r.status != 410 {
		t.Errorf("bootstrap after 24 h: %d %s, want 410", r.status, r.body)
	}
}

// TestSignInWithTOTP walks sign-in: password, then TOTP (each code once),
// a new session id at each step, cookie attributes, idle and absolute
// timeouts, recovery codes used once, sign-out that holds.
func TestSignInWithTOTP(t *testing.T) {
	w := newAccessWorld(t)
	admin, secret, codes := w.enrolledAdmin(t)
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme Care"}`); r.status != 201 {
		t.Fatalf("create org: %d %s", r.status, r.body)
	}

	// A second browser: password only is not enough.
	b := newBrowser(t, w.a)
	b.cookies[web.SessionCookie] = &http.Cookie{Name: web.SessionCookie, Value: "planted-by-an-attacker"}
	r := b.do("POST", "/api/v1/auth/login", `{"email":"ada@example.org","password":"`+strongPassword+`"}`)
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	var sess *http.Cookie
	for _, c := range r.set {
		if c.Name == web.SessionCookie {
			sess = c
		}
	}
	if sess == nil || !sess.Secure || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/" || sess.Domain != "" {
		t.Fatalf("session cookie %+v: want __Host- with Secure, HttpOnly, SameSite=Strict, Path=/", sess)
	}
	if sess.Value == "planted-by-an-attacker" || len(sess.Value) < 32 {
		t.Fatalf("session id %q: want a new random id", sess.Value)
	}
	preMFA := sess.Value
	if r := b.do("GET", "/api/v1/orgs", ""); r.status != 401 || !strings.Contains(string(r.body), "mfa_required") {
		t.Fatalf("password-only session reached the API: %d %s", r.status, r.body)
	}
	// The code the admin used to enrol (same step) is spent.
	if r := b.do("POST", "/api/v1/auth/totp", `{"code":"`+mfa.TOTPCode(secret, w.clk.Now())+`"}`); r.status != 401 {
		t.Fatalf("replayed TOTP code: %d %s, want 401", r.status, r.body)
	}
	// A code from 90 s ago is refused.
	if r := b.do("POST", "/api/v1/auth/totp", `{"code":"`+mfa.TOTPCode(secret, w.clk.Now().Add(-90*time.Second))+`"}`); r.status != 401 {
		t.Fatalf("TOTP code from t-90s: %d %s, want 401", r.status, r.body)
	}
	w.clk.Advance(30 * time.Second)
	code := mfa.TOTPCode(secret, w.clk.Now())
	if r := b.do("POST", "/api/v1/auth/totp", `{"code":"`+code+`"}`); r.status != 200 {
		t.Fatalf("TOTP: %d %s", r.status, r.body)
	}
	if b.cookies[web.SessionCookie].Value == preMFA {
		t.Fatal("the session id did not change when the second factor was done")
	}
	if r := b.do("GET", "/api/v1/orgs", ""); r.status != 200 || !strings.Contains(string(r.body), `"acme"`) {
		t.Fatalf("after MFA: %d %s", r.status, r.body)
	}
	old := newBrowser(t, w.a)
	old.cookies[web.SessionCookie] = &http.Cookie{Name: web.SessionCookie, Value: preMFA}
	if r := old.do("GET", "/api/v1/auth/me", ""); r.status != 401 {
		t.Fatalf("the pre-MFA session id still works: %d", r.status)
	}

	// Idle for 16 minutes: signed out.
	w.clk.Advance(16 * time.Minute)
	if r := b.do("GET", "/api/v1/orgs", ""); r.status != 401 {
		t.Fatalf("after 16 idle minutes: %d, want 401", r.status)
	}

	// A recovery code works once.
	c := newBrowser(t, w.a)
	if r := c.do("POST", "/api/v1/auth/login", `{"email":"ada@example.org","password":"`+strongPassword+`"}`); r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	if r := c.do("POST", "/api/v1/auth/recovery", `{"code":"`+codes[0]+`"}`); r.status != 200 {
		t.Fatalf("recovery code: %d %s", r.status, r.body)
	}
	d := newBrowser(t, w.a)
	d.do("POST", "/api/v1/auth/login", `{"email":"ada@example.org","password":"`+strongPassword+`"}`)
	if r := d.do("POST", "/api/v1/auth/recovery", `{"code":"`+codes[0]+`"}`); r.status != 401 {
		t.Fatalf("recovery code reused: %d %s, want 401", r.status, r.body)
	}

	// Absolute lifetime: active every 10 minutes, still out after 12 h.
	for i := 0; i < 72; i++ {
		w.clk.Advance(10 * time.Minute)
		if r := c.do("GET", "/api/v1/auth/me", ""); r.status != 200 {
			if i < 71 {
				t.Fatalf("active session ended after %v: %d", time.Duration(i+1)*10*time.Minute, r.status)
			}
		}
	}
	if r := c.do("GET", "/api/v1/auth/me", ""); r.status != 401 {
		t.Fatalf("session older than 12 h: %d, want 401", r.status)
	}

	// Sign-out holds server-side: the old cookie is refused.
	e := newBrowser(t, w.a)
	e.do("POST", "/api/v1/auth/login", `{"email":"ada@example.org","password":"`+strongPassword+`"}`)
	w.clk.Advance(30 * time.Second)
	if r := e.do("POST", "/api/v1/auth/totp", `{"code":"`+mfa.TOTPCode(secret, w.clk.Now())+`"}`); r.status != 200 {
		t.Fatalf("TOTP: %d %s", r.status, r.body)
	}
	kept := *e.cookies[web.SessionCookie]
	if r := e.do("POST", "/api/v1/auth/logout", ""); r.status != 204 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	e.cookies[web.SessionCookie] = &kept
	if r := e.do("GET", "/api/v1/auth/me", ""); r.status != 401 {
		t.Fatalf("cookie replayed after logout: %d, want 401", r.status)
	}
}

// TestLoginRevealsNoAccount: an unknown e-mail and a wrong password give
// the same status and body.
func TestLoginRevealsNoAccount(t *testing.T) {
	w := newAccessWorld(t)
	w.enrolledAdmin(t)
	b := newBrowser(t, w.a)
	r1 := b.do("POST", "/api/v1/auth/login", `{"email":"nobody@example.org","password":"`+strongPassword+`x"}`)
	r2 := b.do("POST", "/api/v1/auth/login", `{"email":"ada@example.org","password":"`+strongPassword+`x"}`)
	if r1.status != 401 || r2.status != 401 || !bytes.Equal(r1.body, r2.body) {
		t.Fatalf("unknown user: %d %s; wrong password: %d %s; want the same 401", r1.status, r1.body, r2.status, r2.body)
	}
	r1 = b.do("POST", "/api/v1/auth/reset", `{"email":"nobody@example.org"}`)
	r2 = b.do("POST", "/api/v1/auth/reset", `{"email":"ada@example.org"}`)
	if r1.status != 202 || r1.status != r2.status || !bytes.Equal(r1.body, r2.body) {
		t.Fatalf("reset unknown: %d %s; reset real: %d %s; want the same 202", r1.status, r1.body, r2.status, r2.body)
	}
}

// TestCrossOriginRefused is security requirement 25: a state change from
// another origin is refused even with a valid session.
func TestCrossOriginRefused(t *testing.T) {
	w := newAccessWorld(t)
	admin, _, _ := w.enrolledAdmin(t)
	admin.header.Set("Sec-Fetch-Site", "cross-site")
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"evil","name":"Evil"}`); r.status != 403 {
		t.Errorf("cross-site POST: %d %s, want 403", r.status, r.body)
	}
	admin.header = http.Header{"Origin": {"https://evil.example"}}
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"evil","name":"Evil"}`); r.status != 403 {
		t.Errorf("POST with Origin evil.example: %d %s, want 403", r.status, r.body)
	}
	admin.header = http.Header{}
	if r := admin.do("GET", "/api/v1/orgs", ""); r.status != 200 || strings.Contains(string(r.body), "evil") {
		t.Errorf("after refused cross-origin posts: %d %s", r.status, r.body)
	}
	// Security headers on every answer, a 404 included.
	for _, p := range []string{"/api/v1/orgs", "/api/v1/nope", "/nope"} {
		r := admin.do("GET", p, "")
		csp := r.header.Get("Content-Security-Policy")
		for _, want := range []string{"object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %s", p, csp, want)
			}
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(r.header.Get("Strict-Transport-Security"), "includeSubDomains") ||
			r.header.Get("Referrer-Policy") == "" || r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("GET %s: headers %v", p, r.header)
		}
	}
}

func decodeBase32(t *testing.T, s string) []byte {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var out []byte
	var acc uint32
	bits := 0
	for _, c := range strings.TrimRight(strings.ToUpper(s), "=") {
		i := strings.IndexRune(alphabet, c)
		if i < 0 {
			t.Fatalf("bad base32 %q", s)
		}
		acc = acc<<5 | uint32(i)
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>uint(bits)))
		}
	}
	return out
}

// TestRehashOnLogin is security requirement 19's upgrade: a hash with old
// (weaker) parameters is rewritten with the current ones at sign-in.
func TestRehashOnLogin(t *testing.T) {
	w := newAccessWorld(t)
	ctx := context.Background()
	old := password.DefaultParams()
	old.Memory = 4096
	h, err := password.Hash(strongPassword, old)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.a.Store().CreateUser(ctx, store.User{ID: "u-old", Email: "old@example.org", Name: "Old", PasswordHash: h, CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, w.a)
	if r := b.do("POST", "/api/v1/auth/login", `{"email":"old@example.org","password":"`+strongPassword+`"}`); r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	u, err := w.a.Store().GetUser(ctx, "u-old")
	if err != nil {
		t.Fatal(err)
	}
	p, err := password.Parse(u.PasswordHash)
	if err != nil || !p.AtLeast(password.DefaultParams()) || u.PasswordHash == h {
		t.Fatalf("after login the hash is %q (%v), want current parameters", u.PasswordHash, err)
	}
	if ok, _, _ := password.Verify(u.PasswordHash, strongPassword, password.DefaultParams()); !ok {
		t.Fatal("the rewritten hash does not verify")
	}
}
