package console

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"vigil/internal/auth"
	"vigil/internal/store"
)

// accountRoutes are the console's routes of this page family (see routes):
// the second sign-in step's recovery code, enrolling a first factor, and
// the signed-in user's own account page. Passkey ceremonies are JSON: the
// page's static/webauthn.js fetches them from /api/v1/auth/webauthn/...
// itself (same origin, same cookie).
var accountRoutes = []route{
	{"POST /console/recovery", false, func(c *Console) http.HandlerFunc { return c.recovery }},
	{"GET /console/enrol", false, func(c *Console) http.HandlerFunc { return c.enrolPage }},
	{"POST /console/enrol/totp", false, func(c *Console) http.HandlerFunc { return c.enrolTOTP }},
	{"POST /console/enrol/totp/confirm", false, func(c *Console) http.HandlerFunc { return c.confirmTOTP }},
	{"GET /console/account", false, func(c *Console) http.HandlerFunc { return c.accountPage }},
	{"POST /console/account/password", false, func(c *Console) http.HandlerFunc { return c.changePassword }},
	{"POST /console/account/recovery-codes", false, func(c *Console) http.HandlerFunc { return c.newRecoveryCodes }},
	{"POST /console/account/logout-everywhere", false, func(c *Console) http.HandlerFunc { return c.logoutEverywhere }},
}

// accountStore is what this page family reads from the store directly (most
// pages go through apiCall instead); part of Store.
type accountStore interface{}

// factorStore is what the sign-in and account pages read of a user's
// second factors where the API has no read of them (which factors exist,
// the passkeys' names, how many recovery codes are left). The app's
// store.Store has it; a Store without it (a test fake) makes the pages
// offer every factor and list none.
type factorStore interface {
	GetUser(ctx context.Context, id string) (store.User, error)
	GetOrg(ctx context.Context, id string) (store.Org, error)
	ListWebAuthnCredentials(ctx context.Context, userID string) ([]store.WebAuthnCredential, error)
	CountRecoveryCodes(ctx context.Context, userID string) (int, error)
}

// factors is what a user has for a second factor.
type factors struct {
	Known       bool // read from the store; false: unknown, offer all
	TOTP        bool
	Passkeys    []passkeyRow
	Recovery    int  // unused recovery codes
	PasskeyOnly bool // an organisation of the user requires a passkey
}

type passkeyRow struct {
	Name     string
	Created  time.Time
	LastUsed time.Time
}

// factorsOf reads p's second factors.
func (c *Console) factorsOf(ctx context.Context, p *auth.Principal) (factors, error) {
	fs, ok := c.st.(factorStore)
	if !ok {
		return factors{}, nil
	}
	f := factors{Known: true}
	u, err := fs.GetUser(ctx, p.UserID)
	if err != nil {
		return f, fmt.Errorf("account: get user: %w", err)
	}
	f.TOTP = u.TOTPSeed != nil
	creds, err := fs.ListWebAuthnCredentials(ctx, p.UserID)
	if err != nil {
		return f, fmt.Errorf("account: list passkeys: %w", err)
	}
	for _, cr := range creds {
		name := cr.Name
		if name == "" {
			name = "Passkey"
		}
		f.Passkeys = append(f.Passkeys, passkeyRow{Name: name, Created: cr.CreatedAt, LastUsed: cr.LastUsedAt})
	}
	if f.Recovery, err = fs.CountRecoveryCodes(ctx, p.UserID); err != nil {
		return f, fmt.Errorf("account: count recovery codes: %w", err)
	}
	for _, org := range p.Orgs() {
		o, err := fs.GetOrg(ctx, org)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return f, fmt.Errorf("account: get org: %w", err)
		}
		if o.RequireWebAuthn {
			f.PasskeyOnly = true
		}
	}
	return f, nil
}

// webAuthn reports whether passkeys work on this server (it needs
// notify.base_url for the relying party's domain and origin).
func (c *Console) webAuthn() bool { return c.auth.Config().WebAuthn != nil }

// offers sets what the second sign-in step offers; mustEnrol when the
// user has nothing usable yet.
func (c *Console) offers(v *signinView, f factors) (mustEnrol bool) {
	if !f.Known {
		v.OfferTOTP, v.OfferPasskey, v.OfferRecovery = true, c.webAuthn(), true
		return false
	}
	v.OfferTOTP = f.TOTP && !f.PasskeyOnly
	v.OfferPasskey = len(f.Passkeys) > 0 && c.webAuthn()
	v.OfferRecovery = f.Recovery > 0 && !f.PasskeyOnly && (v.OfferTOTP || v.OfferPasskey)
	return !v.OfferTOTP && !v.OfferPasskey
}

// codeStep renders the second sign-in step for p with err (may be "").
func (c *Console) codeStep(w http.ResponseWriter, r *http.Request, p *auth.Principal, status int, v signinView) {
	f, err := c.factorsOf(r.Context(), p)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v.Step, v.Email = "code", p.Email
	if c.offers(&v, f) {
		http.Redirect(w, r, "/console/enrol", http.StatusSeeOther)
		return
	}
	c.render(w, status, "signin.html", v)
}

// --- calling the API with its cookies -----------------------------------

// apiCallCookies is apiCall that also passes the API's Set-Cookie headers
// on to the browser (w): the API gives the session a new id at every
// privilege step (a completed second factor, an enrolment) and clears it
// on signing out everywhere; the console's own form must hand the browser
// that cookie, or the browser keeps the old, now void, id.
func (c *Console) apiCallCookies(w http.ResponseWriter, r *http.Request, method, path string, body, out any) (*APIError, error) {
	res, err := c.apiDo(r, method, path, body)
	if err != nil {
		return nil, err
	}
	for _, sc := range res.h.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", sc)
	}
	return res.result(method, path, out)
}

// factorError is the text for a refused second-factor or enrolment call.
func factorError(e *APIError) string {
	switch e.Code {
	case "throttled":
		return "Too many attempts. Wait a little and try again."
	case "bad_code":
		return "Wrong or already used code."
	case "webauthn_required":
		return "Your organisation requires a passkey or security key."
	case "not_enrolled":
		return "That step expired or is not available. Start again."
	case "unauthenticated":
		return "Your sign-in expired. Start again."
	case "mfa_required":
		return "Complete your second factor first."
	}
	return e.Error()
}

// --- recovery code at sign-in ----------------------------------------------

func (c *Console) recovery(w http.ResponseWriter, r *http.Request) {
	p := c.principal(r)
	if p == nil {
		c.render(w, http.StatusUnauthorized, "signin.html", signinView{Step: "password", Error: "Your sign-in expired. Start again."})
		return
	}
	if p.MFA {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if !form(w, r) {
		c.codeStep(w, r, p, http.StatusBadRequest, signinView{Error: "The form could not be read."})
		return
	}
	apiErr, err := c.apiCallCookies(w, r, "POST", "/api/v1/auth/recovery",
		map[string]string{"code": strings.TrimSpace(r.PostFormValue("code"))}, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if apiErr != nil {
		if apiErr.Status == http.StatusUnauthorized && apiErr.Code != "bad_code" {
			c.render(w, http.StatusUnauthorized, "signin.html", signinView{Step: "password", Error: "Your sign-in expired. Start again."})
			return
		}
		msg := factorError(apiErr)
		if apiErr.Code == "bad_code" {
			msg = "Wrong or already used recovery code."
		}
		c.codeStep(w, r, p, apiErr.Status, signinView{RecoveryError: msg})
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// --- enrolment ------------------------------------------------------------

// enrolView is the enrolment pages' data.
type enrolView struct {
	Email       string
	PasskeyOnly bool // TOTP is not enough for the user's organisation
	Passkeys    bool // passkeys work on this server
	// Account: enrolling from the account page (second factor done).
	Account bool
	// TOTP step: the QR code (a validated PNG data URL), the secret as
	// text, an error next to the code field.
	QR        template.URL
	QRData    string
	Secret    string
	CodeError string
	Error     string
}

// codesView shows new recovery codes, once.
type codesView struct {
	Codes []string
	Next  string
}

// enrolPage is the choice of a first second factor: an authenticator app
// or a passkey. Only a password-only session of a user with nothing to
// complete it with gets it; others go back to the second step or to their
// account page.
func (c *Console) enrolPage(w http.ResponseWriter, r *http.Request) {
	p := c.principal(r)
	switch {
	case p == nil:
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	case p.MFA:
		http.Redirect(w, r, "/console/account", http.StatusSeeOther)
		return
	}
	f, err := c.factorsOf(r.Context(), p)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	var v signinView
	if f.Known && !c.offers(&v, f) {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	c.render(w, http.StatusOK, "enrol_choose.html", enrolView{Email: p.Email, PasskeyOnly: f.PasskeyOnly, Passkeys: c.webAuthn()})
}

var (
	pngDataURL = regexp.MustCompile(`^data:image/png;base64,[A-Za-z0-9+/]+={0,2}$`)
	base32Text = regexp.MustCompile(`^[A-Z2-7]+=*$`)
)

// totpView is the TOTP enrolment page from the API's answer.
func totpView(p *auth.Principal, qr, uri string) (enrolView, bool) {
	v := enrolView{Email: p.Email, Account: p.MFA}
	if len(qr) > 64<<10 || !pngDataURL.MatchString(qr) {
		return v, false
	}
	if _, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(qr, "data:image/png;base64,")); err != nil {
		return v, false
	}
	// The data URL is checked above to be a base64 PNG made by the
	// server: html/template would otherwise refuse a data: URL in src.
	v.QR, v.QRData = template.URL(qr), qr
	if u, err := url.Parse(uri); err == nil && base32Text.MatchString(u.Query().Get("secret")) {
		v.Secret = u.Query().Get("secret")
	}
	return v, v.Secret != ""
}

// enrolTOTP starts an authenticator-app enrolment (a POST: it makes a new
// secret) and shows its QR code and secret.
func (c *Console) enrolTOTP(w http.ResponseWriter, r *http.Request) {
	p := c.principal(r)
	if p == nil {
		c.render(w, http.StatusUnauthorized, "signin.html", signinView{Step: "password", Error: "Your sign-in expired. Start again."})
		return
	}
	var out struct {
		URI string `json:"otpauth_uri"`
		QR  string `json:"qr_png"`
	}
	apiErr, err := c.apiCall(r, "POST", "/api/v1/auth/totp/enrol", struct{}{}, &out)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if apiErr != nil {
		if apiErr.Code == "mfa_required" {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		c.apiRefused(w, r, apiErr)
		return
	}
	v, ok := totpView(p, out.QR, out.URI)
	if !ok {
		c.fail(w, r, errors.New("console: enrol totp: unexpected answer"))
		return
	}
	c.render(w, http.StatusOK, "enrol_totp.html", v)
}

// confirmTOTP finishes the enrolment with the first code and shows the
// recovery codes, once; a wrong code shows the same QR code again.
func (c *Console) confirmTOTP(w http.ResponseWriter, r *http.Request) {
	p := c.principal(r)
	if p == nil {
		c.render(w, http.StatusUnauthorized, "signin.html", signinView{Step: "password", Error: "Your sign-in expired. Start again."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10) // the QR code comes back for a retry
	if r.ParseForm() != nil {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	var out struct {
		Codes []string `json:"recovery_codes"`
	}
	apiErr, err := c.apiCallCookies(w, r, "POST", "/api/v1/auth/totp/confirm",
		map[string]string{"code": strings.TrimSpace(r.PostFormValue("code"))}, &out)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if apiErr != nil {
		if apiErr.Code == "bad_code" || apiErr.Code == "throttled" {
			v, ok := totpView(p, r.PostFormValue("qr"), "otpauth://totp/x?secret="+url.QueryEscape(r.PostFormValue("secret")))
			if ok {
				v.CodeError = factorError(apiErr)
				c.render(w, apiErr.Status, "enrol_totp.html", v)
				return
			}
		}
		if apiErr.Code == "not_enrolled" || apiErr.Code == "bad_code" {
			v := enrolView{Email: p.Email, Passkeys: c.webAuthn(), Account: p.MFA,
				Error: "That set-up expired. Start again: you will get a new QR code."}
			c.render(w, http.StatusConflict, "enrol_choose.html", v)
			return
		}
		if apiErr.Status == http.StatusUnauthorized {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		c.apiRefused(w, r, apiErr)
		return
	}
	next := "/"
	if p.MFA {
		next = "/console/account"
	}
	c.render(w, http.StatusOK, "account_codes.html", codesView{Codes: out.Codes, Next: next})
}

// --- the account page -------------------------------------------------------

// accountView is the account page's data.
type accountView struct {
	Name, Email string
	Factors     factors
	Passkeys    bool // passkeys work on this server
	Notice      string
	Error       string
	// The password form: errors next to their fields; Changed offers to
	// sign out everywhere.
	CurrentError, NewError string
	Changed                bool
}

// signedIn is the caller with both factors done, or a redirect to sign in.
func (c *Console) signedIn(w http.ResponseWriter, r *http.Request) (*auth.Principal, bool) {
	p := c.principal(r)
	if p == nil || !p.MFA {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil, false
	}
	return p, true
}

func (c *Console) renderAccount(w http.ResponseWriter, r *http.Request, p *auth.Principal, status int, v accountView) {
	f, err := c.factorsOf(r.Context(), p)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v.Name, v.Email, v.Factors, v.Passkeys = p.Name, p.Email, f, c.webAuthn()
	c.render(w, status, "account.html", v)
}

func (c *Console) accountPage(w http.ResponseWriter, r *http.Request) {
	p, ok := c.signedIn(w, r)
	if !ok {
		return
	}
	var v accountView
	if r.URL.Query().Get("added") == "passkey" {
		v.Notice = "Passkey added. Your other sessions were signed out."
	}
	c.renderAccount(w, r, p, http.StatusOK, v)
}

func (c *Console) changePassword(w http.ResponseWriter, r *http.Request) {
	p, ok := c.signedIn(w, r)
	if !ok {
		return
	}
	if !form(w, r) {
		c.renderAccount(w, r, p, http.StatusBadRequest, accountView{Error: "The form could not be read."})
		return
	}
	body := map[string]any{"current_password": r.PostFormValue("current_password"),
		"new_password": r.PostFormValue("new_password"), "end_other_sessions": r.PostFormValue("end_other_sessions") == "on"}
	apiErr, err := c.apiCall(r, "POST", "/api/v1/auth/password", body, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if apiErr != nil {
		var v accountView
		switch {
		case apiErr.Status == http.StatusUnauthorized:
			c.apiRefused(w, r, apiErr)
			return
		case apiErr.Field == "current_password":
			v.CurrentError = "Wrong password."
		case apiErr.Field == "password" || apiErr.Field == "new_password":
			v.NewError = "Not accepted: " + apiErr.Message + "."
		case apiErr.Code == "throttled":
			v.Error = factorError(apiErr)
		default:
			v.Error = apiErr.Error()
		}
		c.renderAccount(w, r, p, apiErr.Status, v)
		return
	}
	v := accountView{Notice: "Password changed.", Changed: true}
	if body["end_other_sessions"] == true {
		v.Notice = "Password changed. Your other sessions were signed out."
	}
	c.renderAccount(w, r, p, http.StatusOK, v)
}

// newRecoveryCodes replaces the caller's recovery codes and shows the new
// ones, once (also the last step of a passkey enrolment).
func (c *Console) newRecoveryCodes(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.signedIn(w, r); !ok {
		return
	}
	var out struct {
		Codes []string `json:"recovery_codes"`
	}
	apiErr, err := c.apiCall(r, "POST", "/api/v1/auth/recovery-codes", nil, &out)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if apiErr != nil {
		c.apiRefused(w, r, apiErr)
		return
	}
	next := "/console/account"
	if r.URL.Query().Get("next") == "home" {
		next = "/"
	}
	c.render(w, http.StatusOK, "account_codes.html", codesView{Codes: out.Codes, Next: next})
}

// logoutEverywhere ends every session of the caller, this one too.
func (c *Console) logoutEverywhere(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.signedIn(w, r); !ok {
		return
	}
	apiErr, err := c.apiCallCookies(w, r, "POST", "/api/v1/auth/logout-everywhere", nil, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if apiErr != nil {
		c.apiRefused(w, r, apiErr)
		return
	}
	w.Header().Del("Set-Cookie")
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
