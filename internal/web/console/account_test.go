package console

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"vigil/internal/auth"
	"vigil/internal/auth/mfa"
	"vigil/internal/store"
)

// factorFake is fakeStore with the factor reads (factorStore): users by
// id with a TOTP seed or not, passkeys, recovery codes left, and whether
// org "acme" requires passkeys.
type factorFake struct {
	*fakeStore
	totp     map[string]bool
	passkeys map[string][]store.WebAuthnCredential
	recovery map[string]int
	waOnly   bool
}

func (f *factorFake) GetUser(_ context.Context, id string) (store.User, error) {
	u := store.User{ID: id}
	if f.totp[id] {
		u.TOTPSeed = []byte("sealed")
	}
	return u, nil
}

func (f *factorFake) GetOrg(_ context.Context, id string) (store.Org, error) {
	return store.Org{ID: id, RequireWebAuthn: f.waOnly}, nil
}

func (f *factorFake) ListWebAuthnCredentials(_ context.Context, userID string) ([]store.WebAuthnCredential, error) {
	return f.passkeys[userID], nil
}

func (f *factorFake) CountRecoveryCodes(_ context.Context, userID string) (int, error) {
	return f.recovery[userID], nil
}

// passkeyAuth is fakeAuth on a server with passkeys configured.
type passkeyAuth struct {
	*fakeAuth
	wa *mfa.WebAuthn
}

func (a passkeyAuth) Config() auth.Config { return auth.Config{MaxLifetime: time.Hour, WebAuthn: a.wa} }

var tenCodes = []string{"aaaa-0001", "aaaa-0002", "aaaa-0003", "aaaa-0004", "aaaa-0005",
	"aaaa-0006", "aaaa-0007", "aaaa-0008", "aaaa-0009", "aaaa-0010"}

const fakeQR = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNiAAAABgADNjd8qAAAAABJRU5ErkJggg=="

// fakeAPI answers the auth routes the account pages call, as the JSON
// API does (codes and fields), on fakeAuth's sessions.
func fakeAPI(fa *fakeAuth) http.Handler {
	mux := http.NewServeMux()
	js := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, status int, code, field, msg string) {
		js(w, status, map[string]any{"error": map[string]string{"code": code, "field": field, "message": msg}})
	}
	who := func(r *http.Request) *auth.Principal {
		ck, err := r.Cookie(sessionCookie)
		if err != nil {
			return nil
		}
		p, _ := fa.Authenticate(r.Context(), ck.Value)
		return p
	}
	var body struct {
		Code             string `json:"code"`
		Current          string `json:"current_password"`
		New              string `json:"new_password"`
		EndOtherSessions bool   `json:"end_other_sessions"`
	}
	read := func(r *http.Request) {
		body.Code, body.Current, body.New = "", "", ""
		_ = json.NewDecoder(r.Body).Decode(&body)
	}
	upgrade := func(w http.ResponseWriter, p *auth.Principal) {
		_ = fa.Logout(context.Background(), p, "")
		tok := fa.session("acme", store.RoleSupervisor, true)
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: tok, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	mux.HandleFunc("POST /api/v1/auth/totp/enrol", func(w http.ResponseWriter, r *http.Request) {
		if who(r) == nil {
			fail(w, 401, "unauthenticated", "", "sign in first")
			return
		}
		js(w, 200, map[string]string{"otpauth_uri": "otpauth://totp/Vigil:ada@example.org?secret=JBSWY3DPEHPK3PXP&issuer=Vigil", "qr_png": fakeQR})
	})
	mux.HandleFunc("POST /api/v1/auth/totp/confirm", func(w http.ResponseWriter, r *http.Request) {
		p := who(r)
		read(r)
		switch {
		case p == nil:
			fail(w, 401, "unauthenticated", "", "sign in first")
		case body.Code != "654321":
			fail(w, 401, "bad_code", "code", "wrong or already used code")
		default:
			upgrade(w, p)
			js(w, 200, map[string]any{"mfa": true, "recovery_codes": tenCodes})
		}
	})
	mux.HandleFunc("POST /api/v1/auth/recovery", func(w http.ResponseWriter, r *http.Request) {
		p := who(r)
		read(r)
		switch {
		case p == nil:
			fail(w, 401, "unauthenticated", "", "sign in first")
		case body.Code != "aaaa-0001":
			fail(w, 401, "bad_code", "code", "wrong or already used code")
		default:
			upgrade(w, p)
			js(w, 200, map[string]any{"mfa": true})
		}
	})
	mux.HandleFunc("POST /api/v1/auth/recovery-codes", func(w http.ResponseWriter, r *http.Request) {
		if p := who(r); p == nil || !p.MFA {
			fail(w, 401, "mfa_required", "", "complete your second factor first")
			return
		}
		js(w, 200, map[string]any{"recovery_codes": tenCodes})
	})
	mux.HandleFunc("POST /api/v1/auth/password", func(w http.ResponseWriter, r *http.Request) {
		p := who(r)
		read(r)
		switch {
		case p == nil || !p.MFA:
			fail(w, 401, "mfa_required", "", "complete your second factor first")
		case body.Current != "pw":
			fail(w, 400, "invalid", "current_password", "wrong password")
		case len(body.New) < 15:
			fail(w, 400, "invalid", "password", "too short: at least 15 characters <script>")
		default:
			js(w, 200, map[string]string{"message": "password changed"})
		}
	})
	mux.HandleFunc("POST /api/v1/auth/logout-everywhere", func(w http.ResponseWriter, r *http.Request) {
		p := who(r)
		if p == nil || !p.MFA {
			fail(w, 401, "mfa_required", "", "complete your second factor first")
			return
		}
		_ = fa.Logout(context.Background(), p, "")
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, MaxAge: -1})
		js(w, 200, map[string]int{"sessions_ended": 1})
	})
	return mux
}

// accountWorld is newWorld with the factor reads, a fake JSON API and,
// when passkeys, WebAuthn configured.
func accountWorld(t *testing.T, ff *factorFake, passkeys bool) *world {
	t.Helper()
	w := newWorld(t)
	ff.fakeStore = w.st
	var a Auth = w.auth
	if passkeys {
		wa, err := mfa.NewWebAuthn("vigil.example", "Vigil", []string{"https://vigil.example"})
		if err != nil {
			t.Fatal(err)
		}
		a = passkeyAuth{w.auth, wa}
	}
	c, err := New(Deps{Auth: a, Store: ff, Alerts: w.alerts, Audit: w.audit, API: fakeAPI(w.auth), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	w.h = mux
	return w
}

func has(body, id string) bool { return strings.Contains(body, `id="`+id+`"`) }

// TestSecondStepOffers: after the password, the second step offers the
// factors the user has; a user with none is led to enrol; an
// organisation requiring passkeys offers only the passkey.
func TestSecondStepOffers(t *testing.T) {
	const u = "u-supervisor"
	for _, tc := range []struct {
		name                string
		ff                  factorFake
		passkeys            bool
		totp, key, recovery bool
		enrol               bool
	}{
		{name: "totp and recovery", ff: factorFake{totp: map[string]bool{u: true}, recovery: map[string]int{u: 10}},
			totp: true, recovery: true},
		{name: "all three", passkeys: true, ff: factorFake{totp: map[string]bool{u: true}, recovery: map[string]int{u: 3},
			passkeys: map[string][]store.WebAuthnCredential{u: {{Name: "laptop"}}}}, totp: true, key: true, recovery: true},
		{name: "passkey only org", passkeys: true, ff: factorFake{totp: map[string]bool{u: true}, recovery: map[string]int{u: 3},
			passkeys: map[string][]store.WebAuthnCredential{u: {{Name: "laptop"}}}, waOnly: true}, key: true},
		{name: "nothing yet", ff: factorFake{}, enrol: true},
		{name: "passkey only org, only totp", passkeys: true, ff: factorFake{totp: map[string]bool{u: true}, waOnly: true}, enrol: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := accountWorld(t, &tc.ff, tc.passkeys)
			tok := w.auth.session("acme", store.RoleSupervisor, false)
			r := w.do(t, "GET", "/", tok, nil)
			if tc.enrol {
				if r.code != 303 || r.hdr.Get("Location") != "/console/enrol" {
					t.Fatalf("want the enrolment page: %d %v", r.code, r.hdr)
				}
				r = w.do(t, "GET", "/console/enrol", tok, nil)
				if r.code != 200 || has(r.body, "enrol-totp-start") == tc.ff.waOnly || has(r.body, "passkey-register") != tc.passkeys {
					t.Errorf("enrolment page: %d %s", r.code, r.body)
				}
				checkPage(t, "enrolment", r)
				return
			}
			if r.code != 200 || has(r.body, "totp-form") != tc.totp || has(r.body, "passkey-signin") != tc.key || has(r.body, "recovery-form") != tc.recovery {
				t.Errorf("second step: %d, want totp %v passkey %v recovery %v:\n%s", r.code, tc.totp, tc.key, tc.recovery, r.body)
			}
			checkPage(t, "second step", r)
		})
	}
}

// TestEnrolNeedsPreMFASession: the enrolment page is for a password-only
// session of a user without a second factor.
func TestEnrolNeedsPreMFASession(t *testing.T) {
	ff := &factorFake{totp: map[string]bool{"u-admin": true}}
	w := accountWorld(t, ff, false)
	for _, tc := range []struct {
		name, tok, want string
	}{
		{"anonymous", "", "/"},
		{"forged", "forged", "/"},
		{"both factors done", w.auth.session("acme", store.RoleSupervisor, true), "/console/account"},
		{"has a factor to complete", w.auth.session("acme", store.RoleAdmin, false), "/"},
	} {
		if r := w.do(t, "GET", "/console/enrol", tc.tok, nil); r.code != 303 || r.hdr.Get("Location") != tc.want {
			t.Errorf("%s: %d %v, want 303 to %s", tc.name, r.code, r.hdr.Get("Location"), tc.want)
		}
	}
	if r := w.do(t, "POST", "/console/enrol/totp", "", url.Values{}); r.code == 200 {
		t.Errorf("anonymous enrolment: %d", r.code)
	}
}

// TestTOTPEnrolmentShowsCodesOnce: the QR code as an image and the secret
// as text, a wrong code shown next to the field with the same QR code, the
// right one passes the API's new session cookie on and shows ten recovery
// codes, which no page shows again.
func TestTOTPEnrolmentShowsCodesOnce(t *testing.T) {
	w := accountWorld(t, &factorFake{}, false)
	tok := w.auth.session("acme", store.RoleSupervisor, false)
	r := w.do(t, "POST", "/console/enrol/totp", tok, url.Values{})
	if r.code != 200 || !strings.Contains(r.body, `<img id="totp-qr" src="`+fakeQR+`"`) ||
		!strings.Contains(r.body, `<code id="totp-secret">JBSWY3DPEHPK3PXP</code>`) {
		t.Fatalf("enrolment: %d %s", r.code, r.body)
	}
	checkPage(t, "enrol totp", r)

	form := url.Values{"code": {"000000"}, "qr": {fakeQR}, "secret": {"JBSWY3DPEHPK3PXP"}}
	r = w.do(t, "POST", "/console/enrol/totp/confirm", tok, form)
	if r.code != 401 || !has(r.body, "enrol-code-error") || !strings.Contains(r.body, "Wrong or already used code.") ||
		!strings.Contains(r.body, `src="`+fakeQR+`"`) || r.hdr.Get("Set-Cookie") != "" {
		t.Fatalf("wrong code: %d %v %s", r.code, r.hdr, r.body)
	}
	// A forged image comes back as no image at all.
	bad := url.Values{"code": {"000000"}, "qr": {"javascript:alert(1)"}, "secret": {"JBSWY3DPEHPK3PXP"}}
	if r := w.do(t, "POST", "/console/enrol/totp/confirm", tok, bad); strings.Contains(r.body, "javascript:") || strings.Contains(r.body, `id="totp-qr"`) {
		t.Errorf("forged QR shown: %d %s", r.code, r.body)
	}

	form.Set("code", "654321")
	r = w.do(t, "POST", "/console/enrol/totp/confirm", tok, form)
	if r.code != 200 {
		t.Fatalf("confirm: %d %s", r.code, r.body)
	}
	checkPage(t, "recovery codes", r)
	got := regexp.MustCompile(`<li><code>([a-z0-9-]+)</code></li>`).FindAllStringSubmatch(r.body, -1)
	if len(got) != 10 || got[0][1] != tenCodes[0] || !has(r.body, "codes-saved") {
		t.Errorf("recovery codes shown: %v\n%s", got, r.body)
	}
	newTok := cookieOf(t, r)
	if newTok == tok {
		t.Fatal("the new session id was not passed on")
	}
	for _, p := range []string{"/", "/console/account"} {
		r := w.do(t, "GET", p, newTok, nil)
		if r.code != 200 || strings.Contains(r.body, tenCodes[0]) {
			t.Errorf("GET %s: %d, or the codes again:\n%s", p, r.code, r.body)
		}
	}
	if r := w.do(t, "GET", "/", tok, nil); !has(r.body, "login-form") {
		t.Errorf("the old session id still works")
	}
}

// TestRecoveryCodeSignIn: a wrong recovery code is shown next to its
// field; the right one signs in with the API's new session id.
func TestRecoveryCodeSignIn(t *testing.T) {
	const u = "u-supervisor"
	w := accountWorld(t, &factorFake{totp: map[string]bool{u: true}, recovery: map[string]int{u: 10}}, false)
	tok := w.auth.session("acme", store.RoleSupervisor, false)
	r := w.do(t, "POST", "/console/recovery", tok, url.Values{"code": {"zzzz-9999"}})
	if r.code != 401 || !has(r.body, "recovery-error") || !strings.Contains(r.body, "Wrong or already used recovery code.") {
		t.Fatalf("wrong recovery code: %d %s", r.code, r.body)
	}
	checkPage(t, "wrong recovery code", r)
	r = w.do(t, "POST", "/console/recovery", tok, url.Values{"code": {"aaaa-0001"}})
	if r.code != 303 || r.hdr.Get("Location") != "/" {
		t.Fatalf("recovery code: %d %s", r.code, r.body)
	}
	newTok := cookieOf(t, r)
	if r := w.do(t, "GET", "/", newTok, nil); r.code != 200 || !strings.Contains(r.body, `href="/console/acme"`) {
		t.Errorf("after the recovery code: %d %s", r.code, r.body)
	}
	if r := w.do(t, "POST", "/console/recovery", "", url.Values{"code": {"aaaa-0001"}}); r.code != 401 {
		t.Errorf("anonymous recovery: %d", r.code)
	}
}

// TestAccountPage: only with both factors; the user's own data escaped;
// the passkeys and recovery codes left; password errors next to their
// fields; new recovery codes; signing out everywhere.
func TestAccountPage(t *testing.T) {
	const u = "u-supervisor"
	ff := &factorFake{totp: map[string]bool{u: true}, recovery: map[string]int{u: 7},
		passkeys: map[string][]store.WebAuthnCredential{u: {{Name: xss, CreatedAt: time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)}}}}
	w := accountWorld(t, ff, true)
	pre := w.auth.session("acme", store.RoleSupervisor, false)
	for _, tok := range []string{"", "forged", pre} {
		if r := w.do(t, "GET", "/console/account", tok, nil); r.code != 303 || r.hdr.Get("Location") != "/" {
			t.Errorf("account page with %q: %d %v", tok, r.code, r.hdr)
		}
		if r := w.do(t, "POST", "/console/account/recovery-codes", tok, url.Values{}); r.code == 200 {
			t.Errorf("new codes with %q: %d", tok, r.code)
		}
	}
	tok := w.auth.session("acme", store.RoleSupervisor, true)
	r := w.do(t, "GET", "/console/account", tok, nil)
	if r.code != 200 || !strings.Contains(r.body, "ada@example.org") || strings.Contains(r.body, xss) ||
		!strings.Contains(r.body, "&lt;img src=x onerror=alert(1)&gt;") || !strings.Contains(r.body, "7 unused recovery codes left") ||
		!strings.Contains(r.body, "Set up.") || !has(r.body, "passkey-register") {
		t.Fatalf("account page: %d %s", r.code, r.body)
	}
	checkPage(t, "account", r)

	r = w.do(t, "POST", "/console/account/password", tok, url.Values{"current_password": {"nope"}, "new_password": {"a long enough passphrase"}})
	if r.code != 400 || !has(r.body, "current-password-error") || has(r.body, "new-password-error") {
		t.Errorf("wrong current password: %d %s", r.code, r.body)
	}
	r = w.do(t, "POST", "/console/account/password", tok, url.Values{"current_password": {"pw"}, "new_password": {"short"}})
	if r.code != 400 || !has(r.body, "new-password-error") || !strings.Contains(r.body, "too short") || strings.Contains(r.body, "<script>") {
		t.Errorf("short password: %d %s", r.code, r.body)
	}
	checkPage(t, "password error", r)
	r = w.do(t, "POST", "/console/account/password", tok, url.Values{"current_password": {"pw"}, "new_password": {"a long enough passphrase"}})
	if r.code != 200 || !has(r.body, "password-changed-offer") || !has(r.body, "logout-everywhere-form") {
		t.Errorf("password changed: %d %s", r.code, r.body)
	}

	r = w.do(t, "POST", "/console/account/recovery-codes", tok, url.Values{})
	if r.code != 200 || strings.Count(r.body, "<li><code>") != 10 {
		t.Errorf("new recovery codes: %d %s", r.code, r.body)
	}

	r = w.do(t, "POST", "/console/account/logout-everywhere", tok, url.Values{})
	if r.code != 303 || r.hdr.Get("Location") != "/" || !strings.Contains(r.hdr.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("sign out everywhere: %d %v", r.code, r.hdr)
	}
	if r := w.do(t, "GET", "/console/account", tok, nil); r.code != 303 {
		t.Errorf("after signing out everywhere: %d", r.code)
	}
}
