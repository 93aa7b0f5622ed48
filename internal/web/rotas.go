package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"

	"vigil/internal/auth"
	"vigil/internal/escalation"
	"vigil/internal/store"
)

// rotaRoutes are the on-call rota API routes (see Routes): an
// organisation's rotas, named escalation recipients ({"rota": "night"})
// that reach whoever is on call when a step fires.
var rotaRoutes = []Route{
	{"GET /api/v1/orgs/{org}/rotas", OrgPerm, auth.EscalationRead, func(a *API) http.HandlerFunc { return a.listRotas }},
	{"GET /api/v1/orgs/{org}/rotas/{name}", OrgPerm, auth.EscalationRead, func(a *API) http.HandlerFunc { return a.getRota }},
	{"PUT /api/v1/orgs/{org}/rotas/{name}", OrgPerm, auth.EscalationWrite, func(a *API) http.HandlerFunc { return a.putRota }},
	{"DELETE /api/v1/orgs/{org}/rotas/{name}", OrgPerm, auth.EscalationWrite, func(a *API) http.HandlerFunc { return a.deleteRota }},
	{"POST /api/v1/orgs/{org}/rotas/{name}/overrides", OrgPerm, auth.EscalationWrite, func(a *API) http.HandlerFunc { return a.addRotaOverride }},
	{"DELETE /api/v1/orgs/{org}/rotas/{name}/overrides/{id}", OrgPerm, auth.EscalationWrite, func(a *API) http.HandlerFunc { return a.deleteRotaOverride }},
	{"GET /api/v1/orgs/{org}/rotas/{name}/oncall", OrgPerm, auth.EscalationRead, func(a *API) http.HandlerFunc { return a.onCall }},
}

// rotaStore is what the rota routes need of the directory: the store
// behind it offers it.
type rotaStore interface {
	PutRota(ctx context.Context, r store.Rota) error
	GetRota(ctx context.Context, orgID, name string) (store.Rota, error)
	ListRotas(ctx context.Context, orgID string) ([]store.Rota, error)
	DeleteRota(ctx context.Context, orgID, name string) error
	AddRotaOverride(ctx context.Context, o store.RotaOverride) error
	DeleteRotaOverride(ctx context.Context, orgID, rota, id string) error
}

// Limits on overrides.
const (
	maxOverrideSpan = 92 * 24 * time.Hour // one cover at most a quarter long
	maxOverrides    = 500                 // per rota
)

type rotaJSON struct {
	Name string `json:"name"`
	escalation.RotaDoc
	Overrides []overrideJSON `json:"overrides"`
	UpdatedAt time.Time      `json:"updated_at"`
}

type overrideJSON struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	CreatedAt time.Time `json:"created_at"`
}

func rotaOut(r store.Rota) rotaJSON {
	out := rotaJSON{Name: r.Name, RotaDoc: escalation.DocOf(r), Overrides: make([]overrideJSON, 0, len(r.Overrides)), UpdatedAt: r.UpdatedAt.UTC()}
	for _, o := range r.Overrides {
		out.Overrides = append(out.Overrides, overrideJSON{ID: o.ID, User: o.UserID, From: o.From.UTC(), To: o.To.UTC(), CreatedAt: o.CreatedAt.UTC()})
	}
	return out
}

// rotas is the directory's rota store, or a 503 when it has none.
func (a *API) rotas(w http.ResponseWriter) (rotaStore, bool) {
	rs, ok := a.dir.(rotaStore)
	if !ok || rs == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "rotas are not available")
		return nil, false
	}
	return rs, true
}

// rotaName checks the path's rota name.
func (a *API) rotaName(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	if !escalation.ValidRotaName(name) {
		a.bad(w, "name", "want 1 to 64 lower-case letters, digits, - or _, starting with a letter or digit")
		return "", false
	}
	return name, true
}

// member reports whether user id is a member of org (a user of another
// organisation reads as unknown).
func (a *API) member(ctx context.Context, org, id string) (bool, error) {
	if _, err := a.dir.GetUser(ctx, id); errors.Is(err, store.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	ms, err := a.dir.ListMemberships(ctx, id)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(ms, func(m store.Membership) bool { return m.OrgID == org }), nil
}

func (a *API) listRotas(w http.ResponseWriter, r *http.Request) {
	rs, ok := a.rotas(w)
	if !ok {
		return
	}
	list, err := rs.ListRotas(r.Context(), r.PathValue("org"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]rotaJSON, 0, len(list))
	for _, x := range list {
		out = append(out, rotaOut(x))
	}
	writeJSON(w, http.StatusOK, map[string]any{"rotas": out})
}

func (a *API) getRota(w http.ResponseWriter, r *http.Request) {
	rs, ok := a.rotas(w)
	if !ok {
		return
	}
	name, ok := a.rotaName(w, r)
	if !ok {
		return
	}
	x, err := rs.GetRota(r.Context(), r.PathValue("org"), name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rotaOut(x))
}

// putRota creates or replaces a rota's time zone and weekly pattern; its
// overrides stay. Every user named must be a member of the organisation.
func (a *API) putRota(w http.ResponseWriter, r *http.Request) {
	rs, ok := a.rotas(w)
	if !ok {
		return
	}
	org := r.PathValue("org")
	name, ok := a.rotaName(w, r)
	if !ok {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			a.bad(w, "", "Content-Type must be application/json")
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		a.bad(w, "", "body too large or unreadable")
		return
	}
	x, err := escalation.ParseRota(body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	for i, s := range x.Shifts {
		for j, u := range s.Users {
			ok, err := a.member(r.Context(), org, u)
			if err != nil {
				a.fail(w, r, err)
				return
			}
			if !ok {
				a.bad(w, fmt.Sprintf("shifts[%d].users[%d]", i, j), "no such user in this organisation")
				return
			}
		}
	}
	if !a.audited(w, r, org, "rota.put", "rota", name, map[string]string{"shifts": strconv.Itoa(len(x.Shifts))}) {
		return
	}
	x.OrgID, x.Name, x.UpdatedAt = org, name, a.now().UTC()
	if err := rs.PutRota(r.Context(), x); err != nil {
		a.fail(w, r, err)
		return
	}
	got, err := rs.GetRota(r.Context(), org, name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rotaOut(got))
}

// deleteRota removes a rota and its overrides, unless an escalation
// policy still names it: a step would find nobody (409, naming the kind).
func (a *API) deleteRota(w http.ResponseWriter, r *http.Request) {
	rs, ok := a.rotas(w)
	if !ok {
		return
	}
	org := r.PathValue("org")
	name, ok := a.rotaName(w, r)
	if !ok {
		return
	}
	policies, err := a.st.ListEscalationPolicies(r.Context(), org)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	kinds := make([]string, 0, len(policies))
	for k := range policies {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		p, err := escalation.ParsePolicy([]byte(policies[k]))
		if err != nil {
			continue // not applied either (the built-in one is)
		}
		names := func(rc escalation.Recipient) bool { return rc.Rota == name }
		used := slices.ContainsFunc(p.Admins, names)
		for _, s := range p.Steps {
			used = used || slices.ContainsFunc(s.Recipients, names)
		}
		if used {
			writeError(w, http.StatusConflict, "in_use", "name", "the escalation policy for "+k+" names this rota; change it first")
			return
		}
	}
	if !a.audited(w, r, org, "rota.delete", "rota", name, nil) {
		return
	}
	if err := rs.DeleteRota(r.Context(), org, name); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type overrideBody struct {
	User string    `json:"user"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// addRotaOverride adds dated cover: user is on call from from until to in
// place of the weekly pattern. Overrides may overlap (everyone covering
// is on call, by start); one that has already ended is refused.
func (a *API) addRotaOverride(w http.ResponseWriter, r *http.Request) {
	rs, ok := a.rotas(w)
	if !ok {
		return
	}
	org := r.PathValue("org")
	name, ok := a.rotaName(w, r)
	if !ok {
		return
	}
	var b overrideBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	switch {
	case b.User == "":
		a.bad(w, "user", "required: a user id")
		return
	case b.From.IsZero():
		a.bad(w, "from", "required: an RFC 3339 time")
		return
	case b.To.IsZero():
		a.bad(w, "to", "required: an RFC 3339 time")
		return
	case !b.To.After(b.From):
		a.bad(w, "to", "must be after from")
		return
	case b.To.Sub(b.From) > maxOverrideSpan:
		a.bad(w, "to", "at most 92 days after from")
		return
	case !b.To.After(a.now()):
		a.bad(w, "to", "already past")
		return
	}
	x, err := rs.GetRota(r.Context(), org, name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if len(x.Overrides) >= maxOverrides {
		writeError(w, http.StatusConflict, "too_many", "", fmt.Sprintf("at most %d overrides per rota; delete old ones", maxOverrides))
		return
	}
	if ok, err := a.member(r.Context(), org, b.User); err != nil {
		a.fail(w, r, err)
		return
	} else if !ok {
		a.bad(w, "user", "no such user in this organisation")
		return
	}
	o := store.RotaOverride{ID: newDirID("o_"), OrgID: org, Rota: name, UserID: b.User, From: b.From.UTC(), To: b.To.UTC(), CreatedAt: a.now().UTC()}
	if !a.audited(w, r, org, "rota.override.add", "rota", name, map[string]string{"override_id": o.ID, "user_id": o.UserID}) {
		return
	}
	if err := rs.AddRotaOverride(r.Context(), o); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, overrideJSON{ID: o.ID, User: o.UserID, From: o.From, To: o.To, CreatedAt: o.CreatedAt})
}

func (a *API) deleteRotaOverride(w http.ResponseWriter, r *http.Request) {
	rs, ok := a.rotas(w)
	if !ok {
		return
	}
	org := r.PathValue("org")
	name, ok := a.rotaName(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if !a.audited(w, r, org, "rota.override.delete", "rota", name, map[string]string{"override_id": id}) {
		return
	}
	if err := rs.DeleteRotaOverride(r.Context(), org, name, id); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type onCallUserJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Reachable is false for a user escalation would skip: disabled, or
	// no longer a member of the organisation.
	Reachable bool `json:"reachable"`
}

// onCall answers who is on call on a rota at ?at= (RFC 3339; now if
// absent), in order. Nobody is a valid answer.
func (a *API) onCall(w http.ResponseWriter, r *http.Request) {
	rs, ok := a.rotas(w)
	if !ok {
		return
	}
	org := r.PathValue("org")
	name, ok := a.rotaName(w, r)
	if !ok {
		return
	}
	at := a.now()
	if s := r.URL.Query().Get("at"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			a.bad(w, "at", "want an RFC 3339 time such as 2026-11-29T22:30:00Z")
			return
		}
		at = t
	}
	x, err := rs.GetRota(r.Context(), org, name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ids, err := escalation.OnCall(x, at)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]onCallUserJSON, 0, len(ids))
	for _, id := range ids {
		v := onCallUserJSON{ID: id}
		u, err := a.dir.GetUser(r.Context(), id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			a.fail(w, r, err)
			return
		}
		if err == nil {
			v.Name = u.Name
			member, err := a.member(r.Context(), org, id)
			if err != nil {
				a.fail(w, r, err)
				return
			}
			v.Reachable = member && u.DisabledAt.IsZero()
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"rota": name, "at": at.UTC(), "users": out})
}
