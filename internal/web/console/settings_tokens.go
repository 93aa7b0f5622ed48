package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"vigil/internal/auth"
)

// setToken is one API token as GET /api/v1/orgs/{org}/tokens answers it.
type setToken struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Permissions []string   `json:"permissions"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	Token       string     `json:"token"`
}

// setTokenForm is the new-token form's values.
type setTokenForm struct {
	Name      string
	Perms     []string
	ExpiresIn string
}

// setPermChoice is one checkbox of the new-token form.
type setPermChoice struct {
	Name    string
	Checked bool
}

// setExpiry is one option of the new-token form's expiry.
type setExpiry struct {
	Value, Label string
	Selected     bool
}

type tokensView struct {
	Nav      Nav
	Org      string
	Tokens   []setToken
	CanWrite bool
	Perms    []setPermChoice
	Expiries []setExpiry
	Form     setTokenForm
	Errors   setErrors
	Notice   string
	// Created is a token just made: its secret is shown this once.
	Created *setToken
}

var setTokenExpiries = []setExpiry{{"168h", "7 days", false}, {"720h", "30 days", false}, {"2160h", "90 days", false}, {"8760h", "365 days", false}}

func (c *Console) loadTokens(w http.ResponseWriter, r *http.Request, p *auth.Principal, org string, f setTokenForm) (tokensView, bool) {
	v := tokensView{Nav: nav(p, org, "tokens"), Org: org, CanWrite: p.Can(org, auth.TokensWrite), Form: f, Errors: setErrors{}}
	for _, pm := range auth.All {
		if p.Can(org, pm) {
			v.Perms = append(v.Perms, setPermChoice{Name: string(pm), Checked: slices.Contains(f.Perms, string(pm))})
		}
	}
	for _, x := range setTokenExpiries {
		x.Selected = x.Value == f.ExpiresIn
		v.Expiries = append(v.Expiries, x)
	}
	var out struct {
		Tokens []setToken `json:"tokens"`
	}
	e, err := c.apiCall(r, http.MethodGet, setOrgPath(org, "/tokens"), nil, &out)
	if err != nil {
		c.fail(w, r, err)
		return v, false
	}
	if e != nil {
		c.apiRefused(w, r, e)
		return v, false
	}
	v.Tokens = out.Tokens
	return v, true
}

func (c *Console) tokensPage(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.TokensRead)
	if !ok {
		return
	}
	v, ok := c.loadTokens(w, r, p, org, setTokenForm{ExpiresIn: "720h"})
	if !ok {
		return
	}
	v.Notice = setNotice(r.URL.Query().Get("done"))
	c.render(w, http.StatusOK, "tokens.html", v)
}

// setCreateToken is POST /api/v1/orgs/{org}/tokens; the answer page shows
// the secret once (every console page is no-store).
func (c *Console) setCreateToken(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.TokensWrite)
	if !ok {
		return
	}
	if !form(w, r) {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	f := setTokenForm{Name: strings.TrimSpace(r.PostFormValue("name")), Perms: r.PostForm["permissions"], ExpiresIn: r.PostFormValue("expires_in")}
	if !slices.ContainsFunc(setTokenExpiries, func(x setExpiry) bool { return x.Value == f.ExpiresIn }) {
		f.ExpiresIn = "720h"
	}
	perms := f.Perms
	if perms == nil {
		perms = []string{}
	}
	var out setToken
	e, err := c.apiCall(r, http.MethodPost, setOrgPath(org, "/tokens"),
		map[string]any{"name": f.Name, "permissions": perms, "expires_in": f.ExpiresIn}, &out)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e != nil && c.setRefused(w, r, e) {
		return
	}
	if e == nil {
		f = setTokenForm{ExpiresIn: "720h"}
	}
	v, ok := c.loadTokens(w, r, p, org, f)
	if !ok {
		return
	}
	if e != nil {
		v.Errors.fromAPI(e, "name", "permissions", "expires_in")
		c.render(w, e.Status, "tokens.html", v)
		return
	}
	v.Created = &out
	c.render(w, http.StatusCreated, "tokens.html", v)
}

// setRevokeToken is DELETE /api/v1/orgs/{org}/tokens/{id}.
func (c *Console) setRevokeToken(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.TokensWrite)
	if !ok {
		return
	}
	e, err := c.apiCall(r, http.MethodDelete, setOrgPath(org, "/tokens/"+url.PathEscape(r.PathValue("id"))), nil, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e == nil {
		http.Redirect(w, r, "/console/"+url.PathEscape(org)+"/tokens?done=revoke", http.StatusSeeOther)
		return
	}
	if c.setRefused(w, r, e) {
		return
	}
	v, ok := c.loadTokens(w, r, p, org, setTokenForm{ExpiresIn: "720h"})
	if !ok {
		return
	}
	v.Errors[""] = e.Error()
	c.render(w, e.Status, "tokens.html", v)
}
