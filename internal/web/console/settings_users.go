package console

import (
	"net/http"
	"net/url"
	"strings"

	"vigil/internal/auth"
)

// setUser is one user as GET /api/v1/orgs/{org}/users answers it.
type setUser struct {
	ID       string `json:"id"`
	Email    string `json:"email"`
	Name     string `json:"name"`
	Provider bool   `json:"provider"`
	PersonID string `json:"person_id"`
	Disabled bool   `json:"disabled"`
	MFA      bool   `json:"totp_enrolled"`
	Orgs     []struct {
		OrgID string `json:"org_id"`
		Role  string `json:"role"`
	} `json:"orgs"`
}

// setUserRow is one user as the page shows it.
type setUserRow struct {
	setUser
	Role string
	Self bool
}

// setInviteForm is the invitation form's values.
type setInviteForm struct {
	Email, Name, Role, PersonID string
}

type usersView struct {
	Nav         Nav
	Org         string
	Users       []setUserRow
	Roles       []string
	CanWrite    bool
	CanSettings bool
	Form        setInviteForm
	Errors      setErrors
	Notice      string
	// Invited is a fresh invitation: the link (or the token when no
	// mail link is configured), shown once.
	InvitedEmail string
	InviteLink   string
	InviteToken  string
}

// usersView loads org's users for p.
func (c *Console) setLoadUsers(w http.ResponseWriter, r *http.Request, p *auth.Principal, org string) (usersView, bool) {
	v := usersView{Nav: nav(p, org, "users"), Org: org, CanWrite: p.Can(org, auth.UsersWrite),
		CanSettings: p.Can(org, auth.OrgSettings), Errors: setErrors{}, Form: setInviteForm{Role: "responder"}}
	for _, role := range auth.Roles {
		if role == "provider" && !p.Provider {
			continue
		}
		v.Roles = append(v.Roles, string(role))
	}
	var out struct {
		Users []setUser `json:"users"`
	}
	e, err := c.apiCall(r, http.MethodGet, setOrgPath(org, "/users"), nil, &out)
	if err != nil {
		c.fail(w, r, err)
		return v, false
	}
	if e != nil {
		c.apiRefused(w, r, e)
		return v, false
	}
	for _, u := range out.Users {
		row := setUserRow{setUser: u, Self: u.ID == p.UserID}
		for _, m := range u.Orgs {
			if m.OrgID == org {
				row.Role = m.Role
			}
		}
		v.Users = append(v.Users, row)
	}
	return v, true
}

func (c *Console) setUsersPage(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.UsersRead)
	if !ok {
		return
	}
	v, ok := c.setLoadUsers(w, r, p, org)
	if !ok {
		return
	}
	v.Notice = setNotice(r.URL.Query().Get("done"))
	c.render(w, http.StatusOK, "users.html", v)
}

// setNotice is the notice after a change redirected back to a page.
func setNotice(done string) string {
	return map[string]string{
		"role":    "Role changed.",
		"disable": "User disabled: their sessions and sign-ins stop.",
		"enable":  "User enabled.",
		"remove":  "User removed from this organisation.",
		"revoke":  "Token revoked.",
		"saved":   "Saved.",
	}[done]
}

// setInvite is the invitation form: POST /api/v1/orgs/{org}/users. The
// invitation link (or token) is shown once.
func (c *Console) setInvite(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.UsersWrite)
	if !ok {
		return
	}
	if !form(w, r) {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	f := setInviteForm{Email: strings.TrimSpace(r.PostFormValue("email")), Name: strings.TrimSpace(r.PostFormValue("name")),
		Role: r.PostFormValue("role"), PersonID: strings.TrimSpace(r.PostFormValue("person_id"))}
	var out struct {
		Link  string `json:"invite_link"`
		Token string `json:"invite_token"`
	}
	e, err := c.apiCall(r, http.MethodPost, setOrgPath(org, "/users"),
		map[string]string{"email": f.Email, "name": f.Name, "role": f.Role, "person_id": f.PersonID}, &out)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e != nil && c.setRefused(w, r, e) {
		return
	}
	v, ok := c.setLoadUsers(w, r, p, org)
	if !ok {
		return
	}
	if e != nil {
		v.Form = f
		v.Errors.fromAPI(e, "email", "name", "role", "person_id")
		c.render(w, e.Status, "users.html", v)
		return
	}
	v.InvitedEmail, v.InviteLink, v.InviteToken = f.Email, out.Link, out.Token
	c.render(w, http.StatusCreated, "users.html", v)
}

// setUserRole is PUT /api/v1/orgs/{org}/users/{id}/role.
func (c *Console) setUserRole(w http.ResponseWriter, r *http.Request) {
	_, org, ok := c.adminAccess(w, r, auth.UsersWrite)
	if !ok {
		return
	}
	if !form(w, r) {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	e, err := c.apiCall(r, http.MethodPut, setOrgPath(org, "/users/"+url.PathEscape(r.PathValue("id"))+"/role"),
		map[string]string{"role": r.PostFormValue("role")}, nil)
	c.setAfterUserChange(w, r, org, "role", e, err)
}

// setUserAction is disable, enable or remove one user of the organisation.
func (c *Console) setUserAction(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, org, ok := c.adminAccess(w, r, auth.UsersWrite)
		if !ok {
			return
		}
		path := setOrgPath(org, "/users/"+url.PathEscape(r.PathValue("id")))
		method := http.MethodPost
		switch action {
		case "remove":
			method = http.MethodDelete
		default:
			path += "/" + action
		}
		e, err := c.apiCall(r, method, path, nil, nil)
		c.setAfterUserChange(w, r, org, action, e, err)
	}
}

// setAfterUserChange answers a change of a user: back to the list with a
// notice, or the list with the API's refusal (e.g. the last admin).
func (c *Console) setAfterUserChange(w http.ResponseWriter, r *http.Request, org, done string, e *APIError, err error) {
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e == nil {
		http.Redirect(w, r, "/console/"+url.PathEscape(org)+"/users?done="+done, http.StatusSeeOther)
		return
	}
	if c.setRefused(w, r, e) {
		return
	}
	p := c.principal(r)
	v, ok := c.setLoadUsers(w, r, p, org)
	if !ok {
		return
	}
	v.Errors[""] = e.Error()
	c.render(w, e.Status, "users.html", v)
}

// --- organisation settings ---------------------------------------------------

type orgSettingsView struct {
	Nav             Nav
	Org             string
	Name            string
	RequireWebAuthn bool
	Errors          setErrors
	Notice          string
}

// loadOrgSettings reads the organisation from GET /api/v1/orgs.
func (c *Console) loadOrgSettings(w http.ResponseWriter, r *http.Request, p *auth.Principal, org string) (orgSettingsView, bool) {
	v := orgSettingsView{Nav: nav(p, org, "users"), Org: org, Errors: setErrors{}}
	var out struct {
		Orgs []struct {
			ID              string `json:"id"`
			Name            string `json:"name"`
			RequireWebAuthn bool   `json:"require_webauthn"`
		} `json:"orgs"`
	}
	e, err := c.apiCall(r, http.MethodGet, "/api/v1/orgs", nil, &out)
	if err != nil {
		c.fail(w, r, err)
		return v, false
	}
	if e != nil {
		c.apiRefused(w, r, e)
		return v, false
	}
	for _, o := range out.Orgs {
		if o.ID == org {
			v.Name, v.RequireWebAuthn = o.Name, o.RequireWebAuthn
			return v, true
		}
	}
	c.errorPage(w, r, http.StatusNotFound, "No such page.")
	return v, false
}

func (c *Console) orgSettingsPage(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.OrgSettings)
	if !ok {
		return
	}
	v, ok := c.loadOrgSettings(w, r, p, org)
	if !ok {
		return
	}
	v.Notice = setNotice(r.URL.Query().Get("done"))
	c.render(w, http.StatusOK, "orgsettings.html", v)
}

// saveOrgSettings is PUT /api/v1/orgs/{org}/settings.
func (c *Console) saveOrgSettings(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.OrgSettings)
	if !ok {
		return
	}
	if !form(w, r) {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	req := r.PostFormValue("require_webauthn") == "on"
	e, err := c.apiCall(r, http.MethodPut, setOrgPath(org, "/settings"), map[string]bool{"require_webauthn": req}, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e != nil {
		if c.setRefused(w, r, e) {
			return
		}
		v, ok := c.loadOrgSettings(w, r, p, org)
		if !ok {
			return
		}
		v.Errors.fromAPI(e, "require_webauthn")
		c.render(w, e.Status, "orgsettings.html", v)
		return
	}
	http.Redirect(w, r, "/console/"+url.PathEscape(org)+"/settings?done=saved", http.StatusSeeOther)
}
