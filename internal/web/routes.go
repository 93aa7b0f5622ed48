package web

import (
	"net/http"
	"slices"

	"vigil/internal/auth"
)

// Route is one entry of the API's allowlist: its pattern, what it needs
// before the handler runs (Access), and the permission it checks (Perm,
// for OrgPerm and ObjPerm routes). The authorisation matrix test walks
// this table for every role.
type Route struct {
	Pattern string
	Access  Access
	Perm    auth.Permission
	handler func(a *API) http.HandlerFunc
}

// Routes is every route of the JSON API; the mux serves these and nothing
// else.
var Routes = slices.Concat(coreRoutes, directoryRoutes, alertNoteRoutes, deviceAdminRoutes, pairingRoutes, revokeRoutes, rotaRoutes, retentionRoutes, orgSSORoutes, photoRoutes, firmwareRoutes, privacyRoutes)

var coreRoutes = []Route{
	// Sign-in and one's own account.
	{"POST /api/v1/auth/bootstrap", Public, "", func(a *API) http.HandlerFunc { return a.bootstrap }},
	{"POST /api/v1/auth/login", Public, "", func(a *API) http.HandlerFunc { return a.login }},
	{"POST /api/v1/auth/reset", Public, "", func(a *API) http.HandlerFunc { return a.requestReset }},
	{"POST /api/v1/auth/reset/confirm", Public, "", func(a *API) http.HandlerFunc { return a.confirmReset }},
	{"GET /api/v1/auth/oidc/login", Public, "", func(a *API) http.HandlerFunc { return a.ssoLogin }},
	{"GET /api/v1/auth/oidc/callback", Public, "", func(a *API) http.HandlerFunc { return a.ssoCallback }},
	{"GET /api/v1/auth/me", PreMFA, "", func(a *API) http.HandlerFunc { return a.me }},
	{"POST /api/v1/auth/logout", PreMFA, "", func(a *API) http.HandlerFunc { return a.logout }},
	{"POST /api/v1/auth/totp", PreMFA, "", func(a *API) http.HandlerFunc { return a.verifyTOTP }},
	{"POST /api/v1/auth/recovery", PreMFA, "", func(a *API) http.HandlerFunc { return a.useRecovery }},
	{"POST /api/v1/auth/totp/enrol", PreMFA, "", func(a *API) http.HandlerFunc { return a.beginTOTP }},
	{"POST /api/v1/auth/totp/confirm", PreMFA, "", func(a *API) http.HandlerFunc { return a.confirmTOTP }},
	{"POST /api/v1/auth/webauthn/register/begin", PreMFA, "", func(a *API) http.HandlerFunc { return a.beginPasskey }},
	{"POST /api/v1/auth/webauthn/register/finish", PreMFA, "", func(a *API) http.HandlerFunc { return a.finishPasskey }},
	{"POST /api/v1/auth/webauthn/login/begin", PreMFA, "", func(a *API) http.HandlerFunc { return a.beginPasskeyLogin }},
	{"POST /api/v1/auth/webauthn/login/finish", PreMFA, "", func(a *API) http.HandlerFunc { return a.finishPasskeyLogin }},
	{"POST /api/v1/auth/recovery-codes", Signed, "", func(a *API) http.HandlerFunc { return a.newRecoveryCodes }},
	{"POST /api/v1/auth/password", Signed, "", func(a *API) http.HandlerFunc { return a.changePassword }},
	{"POST /api/v1/auth/logout-everywhere", Signed, "", func(a *API) http.HandlerFunc { return a.logoutEverywhere }},

	// Organisations, users and API tokens.
	{"GET /api/v1/orgs", Signed, "", func(a *API) http.HandlerFunc { return a.listOrgs }},
	{"POST /api/v1/orgs", Signed, "", func(a *API) http.HandlerFunc { return a.createOrg }},
	{"PUT /api/v1/orgs/{org}/settings", OrgPerm, auth.OrgSettings, func(a *API) http.HandlerFunc { return a.putOrgSettings }},
	{"GET /api/v1/orgs/{org}/users", OrgPerm, auth.UsersRead, func(a *API) http.HandlerFunc { return a.listUsers }},
	{"POST /api/v1/orgs/{org}/users", OrgPerm, auth.UsersWrite, func(a *API) http.HandlerFunc { return a.inviteUser }},
	{"PUT /api/v1/orgs/{org}/users/{id}/role", OrgPerm, auth.UsersWrite, func(a *API) http.HandlerFunc { return a.setRole }},
	{"DELETE /api/v1/orgs/{org}/users/{id}", OrgPerm, auth.UsersWrite, func(a *API) http.HandlerFunc { return a.removeUser }},
	{"POST /api/v1/orgs/{org}/users/{id}/disable", OrgPerm, auth.UsersWrite, func(a *API) http.HandlerFunc { return a.disableUser }},
	{"POST /api/v1/orgs/{org}/users/{id}/enable", OrgPerm, auth.UsersWrite, func(a *API) http.HandlerFunc { return a.enableUser }},
	{"GET /api/v1/orgs/{org}/tokens", OrgPerm, auth.TokensRead, func(a *API) http.HandlerFunc { return a.listTokens }},
	{"POST /api/v1/orgs/{org}/tokens", OrgPerm, auth.TokensWrite, func(a *API) http.HandlerFunc { return a.createToken }},
	{"DELETE /api/v1/orgs/{org}/tokens/{id}", OrgPerm, auth.TokensWrite, func(a *API) http.HandlerFunc { return a.revokeToken }},

	// Alerts and sessions.
	{"GET /api/v1/alerts", Signed, auth.AlertsRead, func(a *API) http.HandlerFunc { return a.listAlerts }},
	{"GET /api/v1/alerts/{id}", ObjPerm, auth.AlertsRead, func(a *API) http.HandlerFunc { return a.getAlert }},
	{"POST /api/v1/alerts/{id}/acknowledge", ObjPerm, auth.AlertsRespond, func(a *API) http.HandlerFunc { return a.acknowledge }},
	{"POST /api/v1/alerts/{id}/resolve", ObjPerm, auth.AlertsRespond, func(a *API) http.HandlerFunc { return a.resolve }},
	{"POST /api/v1/alerts/{id}/cancel", ObjPerm, auth.AlertsCancel, func(a *API) http.HandlerFunc { return a.cancel }},
	{"GET /api/v1/alerts/{id}/deliveries", ObjPerm, auth.EscalationRead, func(a *API) http.HandlerFunc { return a.deliveries }},
	{"GET /api/v1/sessions", Signed, auth.SessionsRead, func(a *API) http.HandlerFunc { return a.listSessions }},
	{"POST /api/v1/sessions", Signed, auth.SessionsWrite, func(a *API) http.HandlerFunc { return a.startSession }},
	{"GET /api/v1/sessions/{id}", ObjPerm, auth.SessionsRead, func(a *API) http.HandlerFunc { return a.getSession }},
	{"POST /api/v1/sessions/{id}/checkin", ObjPerm, auth.SessionsWrite, func(a *API) http.HandlerFunc { return a.checkIn }},
	{"POST /api/v1/sessions/{id}/extend", ObjPerm, auth.SessionsWrite, func(a *API) http.HandlerFunc { return a.extend }},
	{"POST /api/v1/sessions/{id}/end", ObjPerm, auth.SessionsWrite, func(a *API) http.HandlerFunc { return a.endSession }},

	// Organisation settings.
	{"GET /api/v1/orgs/{org}/session-presets", OrgPerm, auth.PresetsRead, func(a *API) http.HandlerFunc { return a.presets }},
	{"PUT /api/v1/orgs/{org}/session-presets/{name}", OrgPerm, auth.PresetsWrite, func(a *API) http.HandlerFunc { return a.putPreset }},
	{"GET /api/v1/orgs/{org}/escalation-policies", OrgPerm, auth.EscalationRead, func(a *API) http.HandlerFunc { return a.escalationPolicies }},
	{"PUT /api/v1/orgs/{org}/escalation-policies/{kind}", OrgPerm, auth.EscalationWrite, func(a *API) http.HandlerFunc { return a.putEscalationPolicy }},
	{"GET /api/v1/orgs/{org}/feed", OrgPerm, auth.FeedRead, func(a *API) http.HandlerFunc { return a.feed }},
	{"GET /api/v1/orgs/{org}/reports/response", OrgPerm, auth.ReportsRead, func(a *API) http.HandlerFunc { return a.responseReport }},
	{"GET /api/v1/orgs/{org}/zones", OrgPerm, auth.ZonesRead, func(a *API) http.HandlerFunc { return a.listZones }},
	{"POST /api/v1/orgs/{org}/zones", OrgPerm, auth.ZonesWrite, func(a *API) http.HandlerFunc { return a.importZones }},
	{"GET /api/v1/zones/{id}", ObjPerm, auth.ZonesRead, func(a *API) http.HandlerFunc { return a.getZone }},
	{"DELETE /api/v1/zones/{id}", ObjPerm, auth.ZonesWrite, func(a *API) http.HandlerFunc { return a.deleteZone }},

	// Device enrolment: a single-use token for a client certificate.
	{"POST /api/v1/devices/{id}/enrol-token", ObjPerm, auth.DevicesWrite, func(a *API) http.HandlerFunc { return a.enrolToken }},

	// Emergency access to one person.
	{"POST /api/v1/people/{id}/break-glass", ObjPerm, auth.BreakGlass, func(a *API) http.HandlerFunc { return a.breakGlass }},
}

// Handler returns the API's mux: every route behind its guard, cross-origin
// state changes refused (CSRF), anything else a JSON 404.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range Routes {
		mux.HandleFunc(rt.Pattern, a.guard(rt, rt.handler(a)))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "", "no such route")
	})
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross_origin", "", "cross-origin request refused")
	}))
	return cop.Handler(mux)
}
