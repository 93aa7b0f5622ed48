package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"vigil/internal/app"
	"vigil/internal/auth/mfa"
	"vigil/internal/clock"
	"vigil/internal/vigiltest"
	"vigil/internal/web"
)

// passkeyWorld is an accessWorld whose HTTPS listener has a fixed port
// and whose base URL is https://localhost:port: WebAuthn scopes
// credentials to a domain (never an IP address) and checks the exact
// origin.
func passkeyWorld(t *testing.T) (*accessWorld, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := vigiltest.Config(t)
	cfg.HTTPS.Listen = fmt.Sprintf("127.0.0.1:%d", port)
	base := fmt.Sprintf("https://localhost:%d", port)
	cfg.Notify.BaseURL = base
	clk := clock.NewManual(time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC))
	var out bytes.Buffer
	a, _ := vigiltest.StartAppWith(t, cfg, app.Deps{Clock: clk, Out: &out})
	return &accessWorld{a: a, clk: clk, token: bootstrapRe.FindString(out.String())}, base
}

// acctVirtualAuthenticator enables WebAuthn in the browser's tab with one
// virtual platform authenticator that says yes to everything.
func (b *chrome) acctVirtualAuthenticator() {
	b.t.Helper()
	b.do("virtual authenticator", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{Protocol: webauthn.AuthenticatorProtocolCtap2,
				Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
				IsUserVerified: true, AutomaticPresenceSimulation: true}})
		return err
	}))
}

// Hostile text in names: the pages must show it as text.
const (
	acctHostileName    = `Nina <img src=x onerror=alert(1)>`
	acctHostilePasskey = `"><svg onload=alert(1)>`
)

// acctNothingRan fails the test if hostile text became markup.
func (b *chrome) acctNothingRan() {
	b.t.Helper()
	if n := b.eval(`document.querySelectorAll('img[src="x"], svg[onload], [onerror], [onload]').length`); n != 0 {
		b.t.Errorf("hostile text became %d element(s) on %s", n, b.text("title"))
	}
}

// TestTOTPEnrolmentInBrowser: an invited user signs in with the password
// set from the invitation, is led to enrol, sees the QR code as an image
// and the secret as text, confirms a code, sees ten recovery codes once
// and continues to the signed-in page; their hostile name stays text.
func TestTOTPEnrolmentInBrowser(t *testing.T) {
	chromiumPath(t)
	w := newAccessWorld(t)
	admin, _, _ := w.enrolledAdmin(t)
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme Care"}`); r.status != 201 {
		t.Fatalf("create org: %d %s", r.status, r.body)
	}
	r := admin.do("POST", "/api/v1/orgs/acme/users", `{"email":"nina@example.org","name":"Nina <img src=x onerror=alert(1)>","role":"supervisor"}`)
	if r.status != 201 {
		t.Fatalf("invite: %d %s", r.status, r.body)
	}
	tok, _ := r.json(t)["invite_token"].(string)
	anon := newBrowser(t, w.a)
	if r := anon.do("POST", "/api/v1/auth/reset/confirm", `{"token":"`+tok+`","password":"`+strongPassword+`"}`); r.status != 200 {
		t.Fatalf("set password: %d %s", r.status, r.body)
	}

	b := newChrome(t, "https://"+w.a.Addr("https"), 90*time.Second)
	b.do("sign in with the password",
		chromedp.Navigate(b.base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#email"), "nina@example.org"),
		chromedp.SendKeys(chromedp.CSS("#password"), strongPassword),
		chromedp.Submit(chromedp.CSS("#login-form")),
		chromedp.WaitVisible(chromedp.CSS("#enrol-totp-start")),
		chromedp.Submit(chromedp.CSS("#enrol-totp-start")),
		chromedp.WaitVisible(chromedp.CSS("#totp-qr")),
	)
	b.poll("the QR image is decoded", `document.getElementById("totp-qr").complete && document.getElementById("totp-qr").naturalWidth > 0`, 10*time.Second)
	if n := b.eval(`document.getElementById("totp-qr").src.startsWith("data:image/png;base64,") ? 1 : 0`); n != 1 {
		t.Errorf("the QR code is not a PNG data URL image")
	}
	secret := decodeBase32(t, b.text("#totp-secret"))
	if len(secret) != 20 {
		t.Fatalf("secret of %d bytes, want 20 (160 bits)", len(secret))
	}
	b.do("confirm a code",
		chromedp.SendKeys(chromedp.CSS("#enrol-code"), mfa.TOTPCode(secret, w.clk.Now())),
		chromedp.Submit(chromedp.CSS("#enrol-totp-form")),
		chromedp.WaitVisible(chromedp.CSS("#recovery-codes")),
	)
	codes := b.eval(`document.querySelectorAll("#recovery-codes li code").length`)
	first := b.text("#recovery-codes li code")
	if codes != 10 || first == "" {
		t.Fatalf("%d recovery codes shown (first %q), want 10", codes, first)
	}
	b.screenshot("enrol-codes")
	b.do("continue",
		chromedp.Click(chromedp.CSS("#codes-saved")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/console/acme"]`)),
	)
	if got := b.text("h1"); got != "Hello, "+acctHostileName {
		t.Errorf("signed-in page says %q", got)
	}
	b.acctNothingRan()
	b.do("the account page",
		chromedp.Navigate(b.base+"/console/account"),
		chromedp.WaitVisible(chromedp.CSS("#password-form")),
	)
	if name, state, left := b.text("#account-name"), b.text("#totp-state"), b.text("#recovery-left"); name != acctHostileName ||
		state != "Set up." || left != "10 unused recovery codes left." {
		t.Errorf("account page: name %q, totp %q, recovery %q", name, state, left)
	}
	if n := b.eval(`document.body.textContent.includes(` + fmt.Sprintf("%q", first) + `) ? 1 : 0`); n != 0 {
		t.Errorf("a recovery code is shown again")
	}
	b.acctNothingRan()
	b.noProblems()

	// The API agrees: the browser's session has its second factor.
	nina := newBrowser(t, w.a)
	nina.do("POST", "/api/v1/auth/login", `{"email":"nina@example.org","password":"`+strongPassword+`"}`)
	if r := nina.do("POST", "/api/v1/auth/recovery", `{"code":"`+first+`"}`); r.status != 200 {
		t.Errorf("the recovery code shown does not work: %d %s", r.status, r.body)
	}
}

// TestPasskeyInBrowser is security requirement 22's browser half: a
// signed-in user registers a passkey on the account page through
// Chromium's virtual authenticator, signs out, signs in with password and
// passkey, then with password and a recovery code.
func TestPasskeyInBrowser(t *testing.T) {
	chromiumPath(t)
	w, base := passkeyWorld(t)
	admin, secret, codes := w.enrolledAdmin(t)
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme Care"}`); r.status != 201 {
		t.Fatalf("create org: %d %s", r.status, r.body)
	}
	w.clk.Advance(30 * time.Second) // the enrolment used this step's code

	b := newChrome(t, base, 120*time.Second)
	b.do("open", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	b.acctVirtualAuthenticator()
	b.signIn("ada@example.org", strongPassword, secret, w.clk.Now())
	b.do("register a passkey",
		chromedp.Navigate(base+"/console/account"),
		chromedp.WaitVisible(chromedp.CSS("#passkey-add")),
		chromedp.SendKeys(chromedp.CSS("#passkey-name"), acctHostilePasskey),
		chromedp.Click(chromedp.CSS("#passkey-add")),
		chromedp.WaitVisible(chromedp.CSS("#account-notice")),
	)
	if got := b.text("#passkeys td.passkey-name"); got != acctHostilePasskey {
		t.Errorf("passkey listed as %q (error shown: %q)", got, b.text("#passkey-error"))
	}
	b.acctNothingRan()
	b.screenshot("account")

	signOut := func() {
		t.Helper()
		b.do("sign out",
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.CSS(`form[action="/console/logout"] button`)),
			chromedp.Click(chromedp.CSS(`form[action="/console/logout"] button`)),
			chromedp.WaitVisible(chromedp.CSS("#login-form")),
		)
	}
	password := func() {
		t.Helper()
		b.do("password",
			chromedp.SendKeys(chromedp.CSS("#email"), "ada@example.org"),
			chromedp.SendKeys(chromedp.CSS("#password"), strongPassword),
			chromedp.Submit(chromedp.CSS("#login-form")),
			chromedp.WaitVisible(chromedp.CSS("#passkey-login")),
		)
	}
	signOut()
	password()
	if n := b.eval(`["#totp-form", "#passkey-signin", "#recovery-form"].filter(s => document.querySelector(s)).length`); n != 3 {
		t.Errorf("the second step offers %d of code, passkey and recovery code", n)
	}
	b.screenshot("signin")
	b.do("sign in with the passkey",
		chromedp.Click(chromedp.CSS("#passkey-login")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/console/acme"]`)),
	)
	b.do("the account page shows it used",
		chromedp.Navigate(base+"/console/account"),
		chromedp.WaitVisible(chromedp.CSS("#passkeys")),
	)
	if got := b.text("#passkeys tbody tr td:last-child"); got == "never" || got == "" {
		t.Errorf("passkey last used %q", got)
	}

	signOut()
	password()
	b.do("sign in with a recovery code",
		chromedp.SendKeys(chromedp.CSS("#recovery-code"), codes[0]),
		chromedp.Submit(chromedp.CSS("#recovery-form")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/console/acme"]`)),
	)
	b.do("the account page counts it",
		chromedp.Navigate(base+"/console/account"),
		chromedp.WaitVisible(chromedp.CSS("#recovery-left")),
	)
	if got := b.text("#recovery-left"); !strings.HasPrefix(got, "9 ") {
		t.Errorf("recovery codes left: %q, want 9", got)
	}
	b.noProblems()
}

// invite makes a user in org with the password strongPassword.
func (w *accessWorld) acctInvite(t *testing.T, admin *browser, org, email, name string) {
	t.Helper()
	r := admin.do("POST", "/api/v1/orgs/"+org+"/users", fmt.Sprintf(`{"email":%q,"name":%q,"role":"supervisor"}`, email, name))
	if r.status != 201 {
		t.Fatalf("invite: %d %s", r.status, r.body)
	}
	tok, _ := r.json(t)["invite_token"].(string)
	if r := newBrowser(t, w.a).do("POST", "/api/v1/auth/reset/confirm", `{"token":"`+tok+`","password":"`+strongPassword+`"}`); r.status != 200 {
		t.Fatalf("set password: %d %s", r.status, r.body)
	}
}

// TestPasskeyEnrolmentInBrowser: a new user enrols a passkey as their
// first factor at sign-in and sees their recovery codes once; a user of
// an organisation that requires passkeys is offered only the passkey,
// at enrolment and at every sign-in after.
func TestPasskeyEnrolmentInBrowser(t *testing.T) {
	chromiumPath(t)
	w, base := passkeyWorld(t)
	admin, _, _ := w.enrolledAdmin(t)
	for _, org := range []string{"acme", "strict"} {
		if r := admin.do("POST", "/api/v1/orgs", `{"id":"`+org+`","name":"`+org+`"}`); r.status != 201 {
			t.Fatalf("create org: %d %s", r.status, r.body)
		}
	}
	if r := admin.do("PUT", "/api/v1/orgs/strict/settings", `{"require_webauthn":true}`); r.status != 200 {
		t.Fatalf("require passkeys: %d %s", r.status, r.body)
	}
	w.acctInvite(t, admin, "acme", "pia@example.org", "Pia")
	w.acctInvite(t, admin, "strict", "rex@example.org", "Rex")

	b := newChrome(t, base, 120*time.Second)
	b.do("open", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	b.acctVirtualAuthenticator()
	password := func(email, then string) {
		t.Helper()
		b.do("password of "+email,
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.CSS("#login-form")),
			chromedp.SendKeys(chromedp.CSS("#email"), email),
			chromedp.SendKeys(chromedp.CSS("#password"), strongPassword),
			chromedp.Submit(chromedp.CSS("#login-form")),
			chromedp.WaitVisible(chromedp.CSS(then)),
		)
	}
	signOut := func() {
		t.Helper()
		b.do("sign out",
			chromedp.Click(chromedp.CSS(`form[action="/console/logout"] button`)),
			chromedp.WaitVisible(chromedp.CSS("#login-form")),
		)
	}

	password("pia@example.org", "#passkey-add")
	if n := b.eval(`document.querySelectorAll("#enrol-totp-start").length`); n != 1 {
		t.Errorf("the authenticator app is not offered next to the passkey")
	}
	b.do("enrol a passkey",
		chromedp.SendKeys(chromedp.CSS("#passkey-name"), "phone"),
		chromedp.Click(chromedp.CSS("#passkey-add")),
		chromedp.WaitVisible(chromedp.CSS("#recovery-codes")),
	)
	if n := b.eval(`document.querySelectorAll("#recovery-codes li code").length`); n != 10 {
		t.Errorf("%d recovery codes shown, want 10", n)
	}
	b.do("continue",
		chromedp.Click(chromedp.CSS("#codes-saved")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/console/acme"]`)),
	)
	signOut()

	password("rex@example.org", "#passkey-add")
	if n := b.eval(`document.querySelectorAll("#enrol-totp-start, #passkey-required").length`); n != 1 || b.text("#passkey-required") == "" {
		t.Errorf("a passkey-only organisation's user is offered the authenticator app")
	}
	b.do("enrol a passkey",
		chromedp.Click(chromedp.CSS("#passkey-add")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/console/strict"]`)),
	)
	signOut()
	password("rex@example.org", "#passkey-login")
	if n := b.eval(`document.querySelectorAll("#totp-form, #recovery-form").length`); n != 0 {
		t.Errorf("a passkey-only user is offered %d other factors", n)
	}
	b.do("sign in with the passkey",
		chromedp.Click(chromedp.CSS("#passkey-login")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/console/strict"]`)),
	)
	b.noProblems()
}

// acctForm posts a console form as b (its cookies; no Origin or
// Sec-Fetch-Site, as a non-browser client) and returns the answer.
func acctForm(t *testing.T, b *browser, path string, form url.Values) reply {
	t.Helper()
	req, err := http.NewRequest("POST", "https://"+b.a.Addr("https")+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range b.cookies {
		req.AddCookie(c)
	}
	hc := *b.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return reply{resp.StatusCode, body, resp.Header, resp.Cookies()}
}

// TestAccountPasswordForms: the account page's password form against the
// real API: a wrong current password and a refused new one are shown next
// to their fields; a change that ends the other sessions ends them; signing
// out everywhere ends this one too.
func TestAccountPasswordForms(t *testing.T) {
	w := newAccessWorld(t)
	admin, secret, _ := w.enrolledAdmin(t)
	other := newBrowser(t, w.a)
	other.do("POST", "/api/v1/auth/login", `{"email":"ada@example.org","password":"`+strongPassword+`"}`)
	w.clk.Advance(30 * time.Second)
	if r := other.do("POST", "/api/v1/auth/totp", `{"code":"`+mfa.TOTPCode(secret, w.clk.Now())+`"}`); r.status != 200 {
		t.Fatalf("second session: %d %s", r.status, r.body)
	}

	r := admin.do("GET", "/console/account", "")
	if r.status != 200 || !strings.Contains(string(r.body), `id="account-email">ada@example.org<`) ||
		!strings.Contains(string(r.body), "10 unused recovery codes left.") {
		t.Fatalf("account page: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		current, next, field, text string
	}{
		{"not my password at all", "another long passphrase here", "current-password-error", "Wrong password."},
		{strongPassword, "short", "new-password-error", "Not accepted: "},
		{strongPassword, "password1234567890", "new-password-error", "Not accepted: "},
	} {
		r := acctForm(t, admin, "/console/account/password", url.Values{"current_password": {tc.current}, "new_password": {tc.next}})
		if r.status != 400 || !strings.Contains(string(r.body), `id="`+tc.field+`">`+tc.text) {
			t.Errorf("new %q: %d, want %s %q:\n%s", tc.next, r.status, tc.field, tc.text, r.body)
		}
	}
	const newPassword = "a different and long passphrase 7"
	r = acctForm(t, admin, "/console/account/password", url.Values{"current_password": {strongPassword}, "new_password": {newPassword},
		"end_other_sessions": {"on"}})
	if r.status != 200 || !strings.Contains(string(r.body), `id="password-changed-offer"`) {
		t.Fatalf("change: %d %s", r.status, r.body)
	}
	if r := other.do("GET", "/api/v1/auth/me", ""); r.status != 401 {
		t.Errorf("the other session survived the password change: %d", r.status)
	}
	if r := admin.do("GET", "/api/v1/auth/me", ""); r.status != 200 {
		t.Errorf("this session ended with the password change: %d", r.status)
	}
	if r := newBrowser(t, w.a).do("POST", "/api/v1/auth/login", `{"email":"ada@example.org","password":"`+newPassword+`"}`); r.status != 200 {
		t.Errorf("sign in with the new password: %d", r.status)
	}

	kept := *admin.cookies[web.SessionCookie]
	r = acctForm(t, admin, "/console/account/logout-everywhere", url.Values{})
	if r.status != 303 || r.header.Get("Location") != "/" || admin.cookies[web.SessionCookie] != nil {
		t.Fatalf("sign out everywhere: %d %v", r.status, r.header)
	}
	admin.cookies[web.SessionCookie] = &kept
	if r := admin.do("GET", "/api/v1/auth/me", ""); r.status != 401 {
		t.Errorf("the session survived signing out everywhere: %d", r.status)
	}
}
