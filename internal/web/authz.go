package web

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"vigil/internal/audit"
	"vigil/internal/auth"
)

// Access says what a route needs before its handler runs.
type Access int

// The access levels. Every route declares one (a test fails on a route
// without), and OrgPerm/ObjPerm routes also declare their permission.
const (
	// Public routes answer without sign-in: sign-in itself, the bootstrap
	// and password resets. Nothing else.
	Public Access = iota + 1
	// PreMFA routes answer a session whose second factor is still to come
	// (completing or enrolling it, signing out, who am I).
	PreMFA
	// Signed routes need a full session or token; the handler decides the
	// rest (its own user's settings, the organisations it reaches).
	Signed
	// OrgPerm routes carry {org} in the path: the caller must reach the
	// organisation (else 404) and hold Perm there (else 403).
	OrgPerm
	// ObjPerm routes name an object: the handler loads it and checks Perm
	// on its organisation and person with (*API).allow.
	ObjPerm
)

// SessionCookie and DeviceCookie are the cookies' names. The __Host-
// prefix makes browsers insist on Secure, Path=/ and no Domain.
const (
	SessionCookie = "__Host-vigil_session"
	DeviceCookie  = "__Host-vigil_device"
)

type principalKey struct{}

// principalOf returns the caller (nil on public routes without sign-in).
func principalOf(r *http.Request) *auth.Principal {
	p, _ := r.Context().Value(principalKey{}).(*auth.Principal)
	return p
}

// Auditor records personal-data reads and writes; an error means the
// read must not be served (fail closed).
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// clientIP is the peer address (never a forwarded header: Vigil does not
// trust proxies it was not told about).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// guard wraps a route's handler with authentication and the route-level
// part of authorisation.
func (a *API) guard(rt Route, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := a.authenticate(r)
		if err != nil && !errors.Is(err, auth.ErrUnauthenticated) {
			a.fail(w, r, err)
			return
		}
		switch {
		case rt.Access == Public:
		case p == nil:
			writeError(w, http.StatusUnauthorized, "unauthenticated", "", "sign in first")
			return
		case !p.MFA && rt.Access != PreMFA:
			writeError(w, http.StatusUnauthorized, "mfa_required", "", "complete your second factor first")
			return
		}
		if rt.Access == OrgPerm {
			org := r.PathValue("org")
			switch p.Decide(org, rt.Perm) {
			case auth.Hide:
				a.denied(r, p, org, "org", org, rt.Perm)
				writeError(w, http.StatusNotFound, "not_found", "", "no such object")
				return
			case auth.Forbid:
				a.denied(r, p, org, "org", org, rt.Perm)
				writeError(w, http.StatusForbidden, "forbidden", "", "your role does not allow this")
				return
			}
		}
		if p != nil {
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		}
		h(w, r)
	}
}

// authenticate finds the caller: a bearer API token, or the session
// cookie. No credentials: nil, ErrUnauthenticated.
func (a *API) authenticate(r *http.Request) (*auth.Principal, error) {
	if a.auth == nil {
		return nil, auth.ErrUnauthenticated
	}
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return nil, auth.ErrUnauthenticated
		}
		return a.auth.AuthenticateToken(r.Context(), tok)
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil, auth.ErrUnauthenticated
	}
	return a.auth.Authenticate(r.Context(), c.Value)
}

// allow checks perm on an organisation-wide object of org, answering 404
// or 403 itself when denied.
func (a *API) allow(w http.ResponseWriter, r *http.Request, org string, perm auth.Permission, objType, objID string) bool {
	return a.answer(w, r, principalOf(r).Decide(org, perm), org, perm, objType, objID)
}

// allowFor checks perm on an object of org that belongs to personID.
func (a *API) allowFor(w http.ResponseWriter, r *http.Request, org, personID string, perm auth.Permission, objType, objID string) bool {
	return a.answer(w, r, principalOf(r).DecideFor(org, personID, perm), org, perm, objType, objID)
}

func (a *API) answer(w http.ResponseWriter, r *http.Request, d auth.Decision, org string, perm auth.Permission, objType, objID string) bool {
	p := principalOf(r)
	switch d {
	case auth.Allow:
		return true
	case auth.Forbid:
		a.denied(r, p, org, objType, objID, perm)
		writeError(w, http.StatusForbidden, "forbidden", "", "your role does not allow this")
	default:
		a.denied(r, p, org, objType, objID, perm)
		writeError(w, http.StatusNotFound, "not_found", "", "no such object")
	}
	return false
}

// denied audits an authorisation failure (best effort: the answer is a
// refusal either way).
func (a *API) denied(r *http.Request, p *auth.Principal, org, objType, objID string, perm auth.Permission) {
	if a.audit == nil {
		return
	}
	_ = a.audit.Record(r.Context(), audit.Entry{OrgID: org, Actor: p.Actor(), SourceIP: clientIP(r), Action: "authz.denied",
		ObjectType: objType, ObjectID: objID, Outcome: "denied", Severity: "warning",
		Details: map[string]string{"permission": string(perm), "route": r.Pattern}})
}

// audited records a read or change of personal data before it is served;
// when the audit log cannot take it, the request fails with 503 (reads
// fail closed; alarms flow on regardless, on their own path).
func (a *API) audited(w http.ResponseWriter, r *http.Request, org, action, objType, objID string, details map[string]string) bool {
	if a.audit == nil {
		return true
	}
	err := a.audit.Record(r.Context(), audit.Entry{OrgID: org, Actor: principalOf(r).Actor(), SourceIP: clientIP(r), Action: action,
		ObjectType: objType, ObjectID: objID, Outcome: "ok", Severity: "info", Details: details})
	if err != nil {
		a.log.Error("audit log unavailable; personal data not served", "action", action, "err", err)
		writeError(w, http.StatusServiceUnavailable, "audit_unavailable", "", "the audit log is unavailable; try again shortly")
		return false
	}
	return true
}

// orgParam is the organisation a list is about: ?org=, or the caller's
// only one. The caller must reach it with perm.
func (a *API) orgParam(w http.ResponseWriter, r *http.Request, perm auth.Permission) (string, bool) {
	p := principalOf(r)
	org := r.URL.Query().Get("org")
	if org == "" {
		orgs := p.Orgs()
		if len(orgs) != 1 {
			a.bad(w, "org", "required: you reach several organisations")
			return "", false
		}
		org = orgs[0]
	}
	return org, a.allow(w, r, org, perm, "org", org)
}

func setSessionCookie(w http.ResponseWriter, token string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: token, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(maxAge / time.Second)})
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}
