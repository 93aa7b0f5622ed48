package web

import "net/http"

// Route is one entry of the API's allowlist.
type Route struct {
	Pattern string
	handler func(a *API) http.HandlerFunc
}

// Routes is every route of the JSON API; the mux serves these and nothing
// else (a test walks them).
var Routes = []Route{
	{"GET /api/v1/alerts", func(a *API) http.HandlerFunc { return a.listAlerts }},
	{"GET /api/v1/alerts/{id}", func(a *API) http.HandlerFunc { return a.getAlert }},
	{"POST /api/v1/alerts/{id}/acknowledge", func(a *API) http.HandlerFunc { return a.acknowledge }},
	{"POST /api/v1/alerts/{id}/resolve", func(a *API) http.HandlerFunc { return a.resolve }},
	{"POST /api/v1/alerts/{id}/cancel", func(a *API) http.HandlerFunc { return a.cancel }},
	{"GET /api/v1/alerts/{id}/deliveries", func(a *API) http.HandlerFunc { return a.deliveries }},
	{"GET /api/v1/sessions", func(a *API) http.HandlerFunc { return a.listSessions }},
	{"POST /api/v1/sessions", func(a *API) http.HandlerFunc { return a.startSession }},
	{"GET /api/v1/sessions/{id}", func(a *API) http.HandlerFunc { return a.getSession }},
	{"POST /api/v1/sessions/{id}/checkin", func(a *API) http.HandlerFunc { return a.checkIn }},
	{"POST /api/v1/sessions/{id}/extend", func(a *API) http.HandlerFunc { return a.extend }},
	{"POST /api/v1/sessions/{id}/end", func(a *API) http.HandlerFunc { return a.endSession }},
	{"GET /api/v1/orgs/{org}/session-presets", func(a *API) http.HandlerFunc { return a.presets }},
	{"PUT /api/v1/orgs/{org}/session-presets/{name}", func(a *API) http.HandlerFunc { return a.putPreset }},
	{"GET /api/v1/orgs/{org}/escalation-policies", func(a *API) http.HandlerFunc { return a.escalationPolicies }},
	{"PUT /api/v1/orgs/{org}/escalation-policies/{kind}", func(a *API) http.HandlerFunc { return a.putEscalationPolicy }},
	{"GET /api/v1/orgs/{org}/feed", func(a *API) http.HandlerFunc { return a.feed }},
	{"GET /api/v1/orgs/{org}/reports/response", func(a *API) http.HandlerFunc { return a.responseReport }},
	{"GET /api/v1/orgs/{org}/zones", func(a *API) http.HandlerFunc { return a.listZones }},
	{"POST /api/v1/orgs/{org}/zones", func(a *API) http.HandlerFunc { return a.importZones }},
	{"GET /api/v1/zones/{id}", func(a *API) http.HandlerFunc { return a.getZone }},
	{"DELETE /api/v1/zones/{id}", func(a *API) http.HandlerFunc { return a.deleteZone }},
}

// Handler returns the API's mux.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range Routes {
		mux.HandleFunc(rt.Pattern, rt.handler(a))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "", "no such route")
	})
	return mux
}
