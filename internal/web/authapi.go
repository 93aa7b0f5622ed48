package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"vigil/internal/auth"
)

// authError classifies the auth service's errors; ok false when err is
// not one of them.
func authError(w http.ResponseWriter, err error) bool {
	var th *auth.Throttled
	var fe *auth.FieldError
	switch {
	case errors.As(err, &th):
		secs := int(th.RetryAfter.Round(time.Second) / time.Second)
		if secs < 1 {
			secs = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, "throttled", "", "too many attempts; try again later")
	case errors.As(err, &fe):
		writeError(w, http.StatusBadRequest, "invalid", fe.Field, fe.Msg)
	case errors.Is(err, auth.ErrBadCredentials):
		// The same bytes whatever failed (no request id): the answer
		// must not tell an unknown account from a wrong password.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"code":"bad_credentials","message":"wrong e-mail or password"}}` + "\n"))
	case errors.Is(err, auth.ErrBadCode):
		writeError(w, http.StatusUnauthorized, "bad_code", "code", "wrong or already used code")
	case errors.Is(err, auth.ErrUnauthenticated):
		writeError(w, http.StatusUnauthorized, "unauthenticated", "", "sign in first")
	case errors.Is(err, auth.ErrMFARequired):
		writeError(w, http.StatusUnauthorized, "mfa_required", "", "complete your second factor first")
	case errors.Is(err, auth.ErrBootstrapUsed):
		writeError(w, http.StatusGone, "bootstrap_used", "token", "the bootstrap token was already used or has expired")
	case errors.Is(err, auth.ErrBadToken):
		writeError(w, http.StatusBadRequest, "bad_token", "token", "invalid, used or expired link")
	case errors.Is(err, auth.ErrWebAuthnOnly):
		writeError(w, http.StatusForbidden, "webauthn_required", "", "your organisation requires a passkey or security key")
	case errors.Is(err, auth.ErrNotEnrolled):
		writeError(w, http.StatusConflict, "not_enrolled", "", "no such second factor; enrol one first")
	case errors.Is(err, auth.ErrLastAdmin):
		writeError(w, http.StatusConflict, "last_admin", "", "an organisation keeps at least one admin")
	default:
		return false
	}
	return true
}

// authFail answers an auth-service error.
func (a *API) authFail(w http.ResponseWriter, r *http.Request, err error) {
	if !authError(w, err) {
		a.fail(w, r, err)
	}
}

type bootstrapBody struct {
	Token    string `json:"token"`
	Email    string `json:"email"`
	Name     string `json:"name"`
	Password string `json:"password"`
}

func (a *API) bootstrap(w http.ResponseWriter, r *http.Request) {
	var b bootstrapBody
	if f, m, ok := decode(w, r, 8<<10, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if a.auth == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "sign-in is not configured")
		return
	}
	u, err := a.auth.Bootstrap(r.Context(), b.Token, b.Email, b.Name, b.Password, clientIP(r))
	if err != nil {
		a.authFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"user": userOut(u, nil), "next": "sign in, then enrol a second factor"})
}

type loginBody struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (a *API) login(w http.ResponseWriter, r *http.Request) {
	var b loginBody
	if f, m, ok := decode(w, r, 8<<10, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if a.auth == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "sign-in is not configured")
		return
	}
	dev := ""
	if c, err := r.Cookie(DeviceCookie); err == nil {
		dev = c.Value
	}
	res, err := a.auth.Login(r.Context(), b.Email, b.Password, clientIP(r), dev)
	if err != nil {
		a.authFail(w, r, err)
		return
	}
	// A new session id on sign-in: any cookie sent before is void.
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		if p, err := a.auth.Authenticate(r.Context(), c.Value); err == nil {
			_ = a.auth.Logout(r.Context(), p, clientIP(r))
		}
	}
	setSessionCookie(w, res.Token, a.auth.Config().MaxLifetime)
	writeJSON(w, http.StatusOK, map[string]any{"mfa_required": true, "methods": nonNil(res.Methods), "must_enrol": res.MustEnrol})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type emailBody struct {
	Email string `json:"email"`
}

func (a *API) requestReset(w http.ResponseWriter, r *http.Request) {
	var b emailBody
	if f, m, ok := decode(w, r, 8<<10, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if a.auth == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "sign-in is not configured")
		return
	}
	if err := a.auth.RequestReset(r.Context(), b.Email, clientIP(r)); err != nil {
		a.authFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"message": "if the address belongs to an account, a reset link is on its way"})
}

type confirmResetBody struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

func (a *API) confirmReset(w http.ResponseWriter, r *http.Request) {
	var b confirmResetBody
	if f, m, ok := decode(w, r, 8<<10, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if a.auth == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "sign-in is not configured")
		return
	}
	if err := a.auth.ConfirmReset(r.Context(), b.Token, b.Password, clientIP(r)); err != nil {
		a.authFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "password set; sign in with it and your second factor"})
}

type membershipJSON struct {
	OrgID string `json:"org_id"`
	Role  string `json:"role"`
}

func (a *API) me(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	var ms []membershipJSON
	for _, o := range p.Orgs() {
		ms = append(ms, membershipJSON{OrgID: o, Role: string(p.Role(o))})
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": p.Actor(), "email": p.Email, "name": p.Name, "provider": p.Provider,
		"person_id": p.PersonID, "mfa": p.MFA, "mfa_method": p.MFAMethod, "orgs": ms})
}

func (a *API) logout(w http.ResponseWriter, r *http.Request) {
	if err := a.auth.Logout(r.Context(), principalOf(r), clientIP(r)); err != nil {
		a.authFail(w, r, err)
		return
	}
	clearSessionCookie(w)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) logoutEverywhere(w http.ResponseWriter, r *http.Request) {
	n, err := a.auth.LogoutEverywhere(r.Context(), principalOf(r), clientIP(r))
	if err != nil {
		a.authFail(w, r, err)
		return
	}
	clearSessionCookie(w)
	writeJSON(w, http.StatusOK, map[string]any{"sessions_ended": n})
}

type codeBody struct {
	Code string `json:"code"`
}

// upgraded answers a completed second factor: the new session's cookie,
// and the device cookie that spares this browser the account-wide
// throttle from now on.
func (a *API) upgraded(w http.ResponseWriter, r *http.Request, tok string, extra map[string]any) {
	setSessionCookie(w, tok, a.auth.Config().MaxLifetime)
	if dc := a.auth.DeviceCookieFor(principalOf(r)); dc != "" {
		http.SetCookie(w, &http.Cookie{Name: DeviceCookie, Value: dc, Path: "/", Secure: true, HttpOnly: true,
			SameSite: http.SameSiteStrictMode, MaxAge: 90 * 24 * 3600})
	}
	out := map[string]any{"mfa": true}
	for k, v := range extra {
		out[k] = v
	}
	writeJSON(w, http.StatusOK, out)
}

// codeStep completes a second factor given as a code ({"code": "…"}).
func (a *API) codeStep(w http.ResponseWriter, r *http.Request,
	check func(ctx context.Context, p *auth.Principal, code, ip string) (string, error)) {
	var b codeBody
	if f, m, ok := decode(w, r, 1<<10, &b); !ok {
		a.bad(w, f, m)
		return
	}
	tok, err := check(r.Context(), principalOf(r), b.Code, clientIP(r))
	if err != nil {
		a.authFail(w, r, err)
		return
	}
	a.upgraded(w, r, tok, nil)
}

func (a *API) verifyTOTP(w http.ResponseWriter, r *http.Request) { a.codeStep(w, r, a.auth.VerifyTOTP) }
func (a *API) useRecovery(w http.ResponseWriter, r *http.Request) {
	a.codeStep(w, r, a.auth.UseRecoveryCode)
}

func (a *API) beginTOTP(w http.ResponseWriter, r *http.Request) {
	var b struct{}
	if f, m, ok := decode(w, r, 1<<10, &b); !ok {
		a.bad(w, f, m)
		return
	}
	e, err := a.auth.BeginTOTP(r.Context(), principalOf(r))
	if err != nil {
		a.authFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"otpauth_uri": e.URI,
		"qr_png": "data:image/png;base64," + base64.StdEncoding.EncodeToString(e.PNG)})
}

func (a *API) confirmTOTP(w http.ResponseWriter, r *http.Request) {
	var b codeBody
	if f, m, ok := decode(w, r, 1<<10, &b); !ok {
		a.bad(w, f, m)
		return
	}
	tok, codes, err := a.auth.ConfirmTOTP(r.Context(), principalOf(r), b.Code, clientIP(r))
	if err != nil {
		a.authFail(w, r, err)
		return
	}
	a.upgraded(w, r, tok, map[string]any{"recovery_codes": codes})
}

func (a *API) newRecoveryCodes(w http.ResponseWriter, r *http.Request) {
	codes, err := a.auth.NewRecoveryCodes(r.Context(), principalOf(r), clientIP(r))
	if err != nil {
		a.authFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes})
}

// rawJSON reads a WebAuthn response body as it came (go-webauthn parses
// it strictly).
func rawJSON(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil || !json.Valid(b) {
		writeError(w, http.StatusBadRequest, "invalid", "", "want a JSON body of at most 64 KiB")
		return nil, false
	}
	return b, true
}

// passkeyOptions answers a WebAuthn ceremony's options (JSON for the
// browser's navigator.credentials call).
func (a *API) passkeyOptions(w http.ResponseWriter, r *http.Request, begin func(ctx context.Context, p *auth.Principal) ([]byte, error)) {
	opts, err := begin(r.Context(), principalOf(r))
	if err != nil {
		a.authFail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(opts)
}

func (a *API) beginPasskey(w http.ResponseWriter, r *http.Request) {
	a.passkeyOptions(w, r, a.auth.BeginWebAuthnRegistration)
}

func (a *API) finishPasskey(w http.ResponseWriter, r *http.Request) {
	body, ok := rawJSON(w, r)
	if !ok {
		return
	}
	tok, err := a.auth.FinishWebAuthnRegistration(r.Context(), principalOf(r), r.URL.Query().Get("name"), body, clientIP(r))
	if err != nil {
		a.authFail(w, r, err)
		return
	}
	a.upgraded(w, r, tok, nil)
}

func (a *API) beginPasskeyLogin(w http.ResponseWriter, r *http.Request) {
	a.passkeyOptions(w, r, a.auth.BeginWebAuthnLogin)
}

func (a *API) finishPasskeyLogin(w http.ResponseWriter, r *http.Request) {
	body, ok := rawJSON(w, r)
	if !ok {
		return
	}
	tok, err := a.auth.FinishWebAuthnLogin(r.Context(), principalOf(r), body, clientIP(r))
	if err != nil {
		a.authFail(w, r, err)
		return
	}
	a.upgraded(w, r, tok, nil)
}

type passwordBody struct {
	Current          string `json:"current_password"`
	New              string `json:"new_password"`
	EndOtherSessions bool   `json:"end_other_sessions"`
}

func (a *API) changePassword(w http.ResponseWriter, r *http.Request) {
	var b passwordBody
	if f, m, ok := decode(w, r, 8<<10, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if principalOf(r).TokenID != "" {
		writeError(w, http.StatusForbidden, "forbidden", "", "API tokens have no password")
		return
	}
	if err := a.auth.ChangePassword(r.Context(), principalOf(r), b.Current, b.New, b.EndOtherSessions, clientIP(r)); err != nil {
		a.authFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "password changed"})
}
