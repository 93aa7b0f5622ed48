package web

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"vigil/internal/auth"
	"vigil/internal/device"
)

// ssoCookie carries the sealed state of a sign-in at the identity
// provider between the redirect there and the callback. SameSite=Lax: the
// callback is a top-level navigation back from the provider's site.
const ssoCookie = "__Host-vigil_oidc"

// ssoLogin sends the browser to the identity provider: the install's, or
// with ?org=ID that organisation's own.
func (a *API) ssoLogin(w http.ResponseWriter, r *http.Request) {
	if a.auth == nil {
		writeError(w, http.StatusNotFound, "not_found", "", "single sign-on is not configured")
		return
	}
	org := r.URL.Query().Get("org")
	if org != "" && !device.ValidOrgID(org) {
		writeError(w, http.StatusBadRequest, "invalid", "org", "not an organisation id")
		return
	}
	u, sealed, err := a.auth.SSOBegin(r.Context(), org)
	if errors.Is(err, auth.ErrSSOOff) {
		writeError(w, http.StatusNotFound, "not_found", "", "single sign-on is not configured")
		return
	}
	if err != nil {
		a.log.Error("single sign-on unavailable", "err", err)
		writeError(w, http.StatusServiceUnavailable, "sso_unavailable", "", "the identity provider cannot be reached; sign in with your password")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: base64.RawURLEncoding.EncodeToString(sealed), Path: "/", Secure: true,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: 600})
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// ssoCallback completes the sign-in: the provider's answer must belong to
// the pending sign-in this browser started (state in the sealed cookie,
// used once).
func (a *API) ssoCallback(w http.ResponseWriter, r *http.Request) {
	if a.auth == nil {
		writeError(w, http.StatusNotFound, "not_found", "", "single sign-on is not configured")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	q := r.URL.Query()
	c, err := r.Cookie(ssoCookie)
	if err != nil || q.Get("error") != "" || q.Get("code") == "" {
		writeError(w, http.StatusUnauthorized, "sso_failed", "", "single sign-on did not complete; start again")
		return
	}
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		writeError(w, http.StatusUnauthorized, "sso_failed", "", "single sign-on did not complete; start again")
		return
	}
	res, err := a.auth.SSOFinish(r.Context(), sealed, q.Get("state"), q.Get("code"), clientIP(r))
	if err != nil {
		if errors.Is(err, auth.ErrBadCredentials) {
			writeError(w, http.StatusUnauthorized, "sso_failed", "", "single sign-on did not complete, or no account matches; start again")
			return
		}
		a.authFail(w, r, err)
		return
	}
	setSessionCookie(w, res.Token, a.auth.Config().MaxLifetime)
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		// A browser: back to the console, which asks for the second
		// factor when the provider did not assert one.
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"mfa": res.MFADone, "mfa_required": !res.MFADone, "methods": nonNil(res.Methods),
		"must_enrol": res.MustEnrol})
}
