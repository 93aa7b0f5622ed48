package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"vigil/internal/auth"
)

// teamRoutes are the teams page: list, create, delete, and members (users
// of the organisation) added and removed.
var teamRoutes = []route{
	{"GET /console/{org}/teams", false, func(c *Console) http.HandlerFunc { return c.teamsPage }},
	{"POST /console/{org}/teams", false, func(c *Console) http.HandlerFunc { return c.createTeam }},
	{"POST /console/{org}/teams/{id}/delete", false, func(c *Console) http.HandlerFunc { return c.deleteTeam }},
	{"POST /console/{org}/teams/{id}/members", false, func(c *Console) http.HandlerFunc { return c.addTeamMember }},
	{"POST /console/{org}/teams/{id}/members/{user}/delete", false, func(c *Console) http.HandlerFunc { return c.removeTeamMember }},
}

type teamAPI struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

type teamRow struct {
	ID        string
	Name      string
	Members   []userRef
	Available []userRef // users of the organisation not on the team
}

type teamsView struct {
	Nav      Nav
	Org      string
	Teams    []teamRow
	CanWrite bool
	Notice   string
	Form     struct{ Name string }
	Errors   formErrors
	ErrTeam  string // the team a member error is about
}

func (c *Console) teamsView(r *http.Request, p *auth.Principal, org string) (teamsView, *APIError, error) {
	v := teamsView{Nav: nav(p, org, "teams"), Org: org, CanWrite: can(p, org, auth.TeamsWrite), Errors: formErrors{}}
	var out struct {
		Teams []teamAPI `json:"teams"`
	}
	e, err := c.apiCall(r, http.MethodGet, "/api/v1/orgs/"+org+"/teams", nil, &out)
	if err != nil || e != nil {
		return v, e, err
	}
	us, err := c.orgUsers(r, org)
	if err != nil {
		return v, nil, err
	}
	byID := map[string]userRef{}
	for _, u := range us {
		byID[u.ID] = u
	}
	for _, t := range out.Teams {
		row := teamRow{ID: t.ID, Name: t.Name}
		for _, m := range t.Members {
			u, ok := byID[m]
			if !ok {
				u = userRef{ID: m, Name: m} // left the organisation, or users.read not held
			}
			row.Members = append(row.Members, u)
		}
		slices.SortFunc(row.Members, func(a, b userRef) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
		for _, u := range us {
			if !slices.Contains(t.Members, u.ID) {
				row.Available = append(row.Available, u)
			}
		}
		v.Teams = append(v.Teams, row)
	}
	return v, nil, nil
}

func (c *Console) teamsPage(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.TeamsRead)
	if !ok {
		return
	}
	v, e, err := c.teamsView(r, p, org)
	switch {
	case err != nil:
		c.fail(w, r, err)
	case e != nil:
		c.apiRefused(w, r, e)
	default:
		if r.URL.Query().Get("done") == "1" {
			v.Notice = "Teams updated."
		}
		c.render(w, http.StatusOK, "teams.html", v)
	}
}

// teamDone answers a teams form: back to the page, the page with the
// error of a validation refusal, or the refusal page.
func (c *Console) teamDone(w http.ResponseWriter, r *http.Request, p *auth.Principal, org string, e *APIError, keep func(*teamsView), fields ...string) {
	if e == nil {
		seeOther(w, r, "/console/"+org+"/teams?done=1")
		return
	}
	fe, ok := fieldError(e, fields...)
	if !ok {
		c.apiRefused(w, r, e)
		return
	}
	v, e2, err := c.teamsView(r, p, org)
	switch {
	case err != nil:
		c.fail(w, r, err)
		return
	case e2 != nil:
		c.apiRefused(w, r, e2)
		return
	}
	v.Errors = fe
	if keep != nil {
		keep(&v)
	}
	c.render(w, e.Status, "teams.html", v)
}

// teamForm is the common start of a teams POST.
func (c *Console) teamForm(w http.ResponseWriter, r *http.Request) (*auth.Principal, string, bool) {
	p, org, ok := c.adminAccess(w, r, auth.TeamsWrite)
	if !ok {
		return nil, "", false
	}
	if !form(w, r) {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return nil, "", false
	}
	return p, org, true
}

func (c *Console) createTeam(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.teamForm(w, r)
	if !ok {
		return
	}
	name := r.PostFormValue("name")
	e, err := c.apiCall(r, http.MethodPost, "/api/v1/orgs/"+org+"/teams", map[string]string{"name": name}, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.teamDone(w, r, p, org, e, func(v *teamsView) { v.Form.Name = name }, "name")
}

func (c *Console) deleteTeam(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.teamForm(w, r)
	if !ok {
		return
	}
	e, err := c.apiCall(r, http.MethodDelete, "/api/v1/orgs/"+org+"/teams/"+url.PathEscape(r.PathValue("id")), nil, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.teamDone(w, r, p, org, e, nil)
}

func (c *Console) addTeamMember(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.teamForm(w, r)
	if !ok {
		return
	}
	team, user := r.PathValue("id"), r.PostFormValue("user")
	if user == "" {
		c.teamDone(w, r, p, org, &APIError{Status: http.StatusBadRequest, Field: "user", Message: "choose a user"},
			func(v *teamsView) { v.ErrTeam = team }, "user")
		return
	}
	e, err := c.apiCall(r, http.MethodPut, "/api/v1/orgs/"+org+"/teams/"+url.PathEscape(team)+"/members/"+url.PathEscape(user), nil, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.teamDone(w, r, p, org, e, func(v *teamsView) { v.ErrTeam = team }, "user")
}

func (c *Console) removeTeamMember(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.teamForm(w, r)
	if !ok {
		return
	}
	e, err := c.apiCall(r, http.MethodDelete, "/api/v1/orgs/"+org+"/teams/"+url.PathEscape(r.PathValue("id"))+
		"/members/"+url.PathEscape(r.PathValue("user")), nil, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.teamDone(w, r, p, org, e, nil)
}
