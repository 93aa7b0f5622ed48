package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"vigil/internal/auth"
)

// orgSSORoutes: an organisation's own identity provider (single sign-on
// for its members), set by its admins.
var orgSSORoutes = []Route{
	{"GET /api/v1/orgs/{org}/sso", OrgPerm, auth.OrgSettings, func(a *API) http.HandlerFunc { return a.getOrgSSO }},
	{"PUT /api/v1/orgs/{org}/sso", OrgPerm, auth.OrgSettings, func(a *API) http.HandlerFunc { return a.putOrgSSO }},
	{"DELETE /api/v1/orgs/{org}/sso", OrgPerm, auth.OrgSettings, func(a *API) http.HandlerFunc { return a.deleteOrgSSO }},
}

type orgSSOBody struct {
	Issuer       string `json:"issuer"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

func (a *API) getOrgSSO(w http.ResponseWriter, r *http.Request) {
	info, err := a.auth.OrgSSO(r.Context(), r.PathValue("org"))
	if errors.Is(err, auth.ErrSSOOff) {
		writeJSON(w, http.StatusOK, map[string]any{"configured": false})
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"configured": true, "provider": info,
		"login_path": "/api/v1/auth/oidc/login?org=" + url.QueryEscape(r.PathValue("org"))})
}

// validIssuer: an https URL with a host, no credentials, query or
// fragment (OpenID Connect Discovery 1.0, section 4).
func validIssuer(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil && u.RawQuery == "" && u.Fragment == "" &&
		!strings.ContainsAny(s, " \t\r\n")
}

// putOrgSSO sets the organisation's provider. The server reaches it only
// through the outbound client that refuses private and metadata
// addresses (notify.outbound_allow lets chosen ranges through).
func (a *API) putOrgSSO(w http.ResponseWriter, r *http.Request) {
	var b orgSSOBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	switch {
	case !validIssuer(b.Issuer) || len(b.Issuer) > 500:
		a.bad(w, "issuer", "want the identity provider's https URL, as it names itself in its tokens")
		return
	case checkText(b.ClientID, 200, true, false) != "":
		a.bad(w, "client_id", checkText(b.ClientID, 200, true, false))
		return
	case checkText(b.ClientSecret, 1000, false, false) != "":
		a.bad(w, "client_secret", checkText(b.ClientSecret, 1000, false, false))
		return
	}
	org := r.PathValue("org")
	err := a.auth.SetOrgSSO(r.Context(), principalOf(r), org, b.Issuer, b.ClientID, b.ClientSecret, clientIP(r))
	if errors.Is(err, auth.ErrNoBaseURL) {
		writeError(w, http.StatusConflict, "no_base_url", "", "single sign-on needs the server's notify.base_url for its callback")
		return
	}
	if err != nil {
		a.authFail(w, r, err)
		return
	}
	a.getOrgSSO(w, r)
}

func (a *API) deleteOrgSSO(w http.ResponseWriter, r *http.Request) {
	// Idempotent: removing a provider that is not set answers 204 too.
	err := a.auth.DeleteOrgSSO(r.Context(), principalOf(r), r.PathValue("org"), clientIP(r))
	if err != nil && !errors.Is(err, auth.ErrSSOOff) {
		a.authFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
