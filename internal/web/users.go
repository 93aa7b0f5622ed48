package web

import (
	"net/http"
	"time"

	"vigil/internal/auth"
	"vigil/internal/store"
)

type userJSON struct {
	ID       string           `json:"id"`
	Email    string           `json:"email"`
	Name     string           `json:"name"`
	Provider bool             `json:"provider,omitempty"`
	PersonID string           `json:"person_id,omitempty"`
	Disabled bool             `json:"disabled,omitempty"`
	MFA      bool             `json:"totp_enrolled"`
	Orgs     []membershipJSON `json:"orgs,omitempty"`
}

func userOut(u store.User, ms []store.Membership) userJSON {
	v := userJSON{ID: u.ID, Email: u.Email, Name: u.Name, Provider: u.Provider, PersonID: u.PersonID,
		Disabled: !u.DisabledAt.IsZero(), MFA: u.TOTPSeed != nil}
	for _, m := range ms {
		v.Orgs = append(v.Orgs, membershipJSON{OrgID: m.OrgID, Role: string(m.Role)})
	}
	return v
}

// --- organisations ----------------------------------------------------------

type orgJSON struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	Role            string `json:"role"`
	RequireWebAuthn bool   `json:"require_webauthn"`
}

// listOrgs lists the organisations the caller reaches.
func (a *API) listOrgs(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	out := []orgJSON{}
	for _, id := range p.Orgs() {
		o, err := a.st.GetOrg(r.Context(), id)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		out = append(out, orgJSON{ID: o.ID, Name: o.Name, Role: string(p.Role(id)), RequireWebAuthn: o.RequireWebAuthn})
	}
	writeJSON(w, http.StatusOK, map[string]any{"orgs": out})
}

type orgBody struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// createOrg lets provider staff add an organisation; its creator becomes
// its admin.
func (a *API) createOrg(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	if !p.Provider || p.TokenID != "" {
		writeError(w, http.StatusForbidden, "forbidden", "", "only provider staff create organisations")
		return
	}
	var b orgBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if !validSlug(b.ID) {
		a.bad(w, "id", "want 1 to 64 lower-case letters, digits or dashes")
		return
	}
	if b.Name == "" || len(b.Name) > 200 {
		a.bad(w, "name", "required, at most 200 characters")
		return
	}
	if err := a.dir.CreateOrg(r.Context(), store.Org{ID: b.ID, Name: b.Name, CreatedAt: a.now()}); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.dir.PutMembership(r.Context(), store.Membership{UserID: p.UserID, OrgID: b.ID, Role: store.RoleAdmin, CreatedAt: a.now()}); err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.audited(w, r, b.ID, "org.create", "org", b.ID, nil) {
		return
	}
	writeJSON(w, http.StatusCreated, orgJSON{ID: b.ID, Name: b.Name, Role: string(store.RoleAdmin)})
}

func validSlug(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

type orgSettingsBody struct {
	RequireWebAuthn *bool `json:"require_webauthn"`
}

func (a *API) putOrgSettings(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	var b orgSettingsBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if b.RequireWebAuthn == nil {
		a.bad(w, "require_webauthn", "required")
		return
	}
	if err := a.dir.SetOrgRequireWebAuthn(r.Context(), org, *b.RequireWebAuthn); err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.audited(w, r, org, "org.settings", "org", org, map[string]string{"require_webauthn": boolStr(*b.RequireWebAuthn)}) {
		return
	}
	o, err := a.st.GetOrg(r.Context(), org)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, orgJSON{ID: o.ID, Name: o.Name, Role: string(principalOf(r).Role(org)), RequireWebAuthn: o.RequireWebAuthn})
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// --- users ------------------------------------------------------------------

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	us, err := a.dir.ListUsers(r.Context(), org)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.audited(w, r, org, "user.list", "users", "", nil) {
		return
	}
	out := make([]userJSON, 0, len(us))
	for _, u := range us {
		ms, err := a.dir.ListMemberships(r.Context(), u.ID)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		// Only this organisation's role: another organisation's
		// membership is not this admin's business.
		var mine []store.Membership
		for _, m := range ms {
			if m.OrgID == org {
				mine = append(mine, m)
			}
		}
		out = append(out, userOut(u, mine))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

type inviteBody struct {
	Email    string `json:"email"`
	Name     string `json:"name"`
	Role     string `json:"role"`
	PersonID string `json:"person_id"`
}

func (a *API) inviteUser(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	var b inviteBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	inv, err := a.auth.InviteUser(r.Context(), principalOf(r), org, b.Email, b.Name, store.Role(b.Role), b.PersonID, clientIP(r))
	if err != nil {
		a.authFail(w, r, err)
		return
	}
	out := map[string]any{"user": userOut(inv.User, []store.Membership{{OrgID: org, Role: store.Role(b.Role)}}), "invite_token": inv.Token}
	if inv.Link != "" {
		out["invite_link"] = inv.Link
	}
	writeJSON(w, http.StatusCreated, out)
}

// memberOf loads a user who is a member of the path's organisation (else
// 404: users of other organisations do not exist for this caller).
func (a *API) memberOf(w http.ResponseWriter, r *http.Request) (store.User, bool) {
	org, id := r.PathValue("org"), r.PathValue("id")
	u, err := a.dir.GetUser(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return store.User{}, false
	}
	ms, err := a.dir.ListMemberships(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return store.User{}, false
	}
	for _, m := range ms {
		if m.OrgID == org {
			return u, true
		}
	}
	writeError(w, http.StatusNotFound, "not_found", "", "no such object")
	return store.User{}, false
}

type roleBody struct {
	Role string `json:"role"`
}

func (a *API) setRole(w http.ResponseWriter, r *http.Request) {
	var b roleBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	u, ok := a.memberOf(w, r)
	if !ok {
		return
	}
	if err := a.auth.SetRole(r.Context(), principalOf(r), r.PathValue("org"), u.ID, store.Role(b.Role), clientIP(r)); err != nil {
		a.authFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": u.ID, "role": b.Role})
}

func (a *API) removeUser(w http.ResponseWriter, r *http.Request) {
	u, ok := a.memberOf(w, r)
	if !ok {
		return
	}
	if err := a.auth.RemoveMember(r.Context(), principalOf(r), r.PathValue("org"), u.ID, clientIP(r)); err != nil {
		a.authFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) disableUser(w http.ResponseWriter, r *http.Request) { a.setDisabled(w, r, true) }
func (a *API) enableUser(w http.ResponseWriter, r *http.Request)  { a.setDisabled(w, r, false) }
func (a *API) setDisabled(w http.ResponseWriter, r *http.Request, d bool) {
	u, ok := a.memberOf(w, r)
	if !ok {
		return
	}
	if err := a.auth.SetDisabled(r.Context(), principalOf(r), r.PathValue("org"), u.ID, d, clientIP(r)); err != nil {
		a.authFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": u.ID, "disabled": d})
}

// --- API tokens -------------------------------------------------------------

type tokenJSON struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Permissions []string   `json:"permissions"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
	Token       string     `json:"token,omitempty"` // only when created
}

func tokenOut(t store.APIToken) tokenJSON {
	return tokenJSON{ID: t.ID, Name: t.Name, Permissions: t.Permissions, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt,
		ExpiresAt: t.ExpiresAt, RevokedAt: tptr(t.RevokedAt), LastUsedAt: tptr(t.LastUsedAt)}
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := a.dir.ListAPITokens(r.Context(), r.PathValue("org"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]tokenJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, tokenOut(t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

type tokenBody struct {
	Name        string   `json:"name"`
	Permissions []string `json:"permissions"`
	ExpiresIn   duration `json:"expires_in"`
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request) {
	var b tokenBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if principalOf(r).TokenID != "" {
		writeError(w, http.StatusForbidden, "forbidden", "", "API tokens do not make API tokens")
		return
	}
	ps := make([]auth.Permission, len(b.Permissions))
	for i, s := range b.Permissions {
		ps[i] = auth.Permission(s)
	}
	t, err := a.auth.CreateToken(r.Context(), principalOf(r), r.PathValue("org"), b.Name, ps, time.Duration(b.ExpiresIn), clientIP(r))
	if err != nil {
		a.authFail(w, r, err)
		return
	}
	v := tokenOut(t.APIToken)
	v.Token = t.Secret
	writeJSON(w, http.StatusCreated, v)
}

func (a *API) revokeToken(w http.ResponseWriter, r *http.Request) {
	if err := a.auth.RevokeToken(r.Context(), principalOf(r), r.PathValue("org"), r.PathValue("id"), clientIP(r)); err != nil {
		a.authFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
