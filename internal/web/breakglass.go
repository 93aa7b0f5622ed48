package web

import (
	"net/http"
	"time"

	"vigil/internal/auth"
)

type breakGlassBody struct {
	Reason  string `json:"reason"`
	Minutes int    `json:"minutes"`
}

// breakGlass grants the caller emergency read access to one person (see
// auth.Service.BreakGlass): a reason is required, it lasts at most an hour,
// and the organisation's admins are told.
func (a *API) breakGlass(w http.ResponseWriter, r *http.Request) {
	per, err := a.dir.GetPerson(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.allow(w, r, per.OrgID, auth.BreakGlass, "person", per.ID) {
		return
	}
	var b breakGlassBody
	if f, m, ok := decode(w, r, 8<<10, &b); !ok {
		a.bad(w, f, m)
		return
	}
	g, err := a.auth.BreakGlass(r.Context(), principalOf(r), per.ID, b.Reason, time.Duration(b.Minutes)*time.Minute, clientIP(r))
	if err != nil {
		a.authFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"grant": g.ID, "person_id": g.PersonID, "expires_at": g.ExpiresAt.UTC(),
		"allows": []string{"people.read", "people.medical", "contacts.read", "alerts.read", "sessions.read"}})
}
