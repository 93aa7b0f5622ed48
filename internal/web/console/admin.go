package console

import (
	"context"
	"html/template"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"vigil/internal/auth"
)

// The directory admin pages: people (admin_people.go), devices
// (admin_devices.go) and teams (admin_teams.go). Every read and change
// goes through the JSON API as the signed-in user (apiCall), so the
// permission table, validation and audit are the API's; the pages check
// the read permission first (404 for an organisation the caller does not
// reach, 403 without it or for a person-scoped role) and show write
// controls only to callers holding the write permission. Secrets (a new
// device's credentials, an enrolment token) are shown in the answer to
// the POST that made them, never in a URL, and the page is no-store.

// adminRoutes are the console's routes of this page family (see routes).
var adminRoutes = slices.Concat(peopleRoutes, deviceRoutes, teamRoutes)

// adminStore is what this page family reads from the store directly (most
// pages go through apiCall instead); part of Store. Linked carers are read
// through the optional carerLister (the real store has it).
type adminStore interface{}

// carerLister lists the people a carer is linked to (store.Store has it).
type carerLister interface {
	ListCarerPeople(ctx context.Context, userID string) ([]string, error)
}

// can reports whether p holds perm in org for everyone there (the console
// is for staff who see the whole organisation).
func can(p *auth.Principal, org string, perm auth.Permission) bool {
	return p.Can(org, perm) && !p.Scoped(org)
}

// adminAccess signs in and checks the caller holds perm in the path's
// organisation: back to sign-in without a session, 404 for an
// organisation they do not reach, 403 without perm or when limited to
// some people.
func (c *Console) adminAccess(w http.ResponseWriter, r *http.Request, perm auth.Permission) (*auth.Principal, string, bool) {
	p := c.principal(r)
	if p == nil || !p.MFA {
		if r.Method == http.MethodGet {
			http.Redirect(w, r, "/", http.StatusSeeOther)
		} else {
			c.errorPage(w, r, http.StatusUnauthorized, "Sign in again.")
		}
		return nil, "", false
	}
	org := r.PathValue("org")
	d := p.Decide(org, perm)
	if d == auth.Allow && p.Scoped(org) {
		d = auth.Forbid
	}
	if !c.decided(w, r, p, d, org, perm, "org", org) {
		return nil, "", false
	}
	return p, org, true
}

// formErrors are a form's problems by field name ("" for the form).
type formErrors map[string]string

// fieldError turns an API refusal of a form (400, 409) into the field it
// names; ok is false for any other refusal, which the caller answers
// with apiRefused.
func fieldError(e *APIError, fields ...string) (formErrors, bool) {
	if e.Status != http.StatusBadRequest && e.Status != http.StatusConflict {
		return nil, false
	}
	f := e.Field
	if !slices.Contains(fields, f) {
		f = ""
	}
	return formErrors{f: e.Message}, true
}

// telRe is an E.164 number as the API stores it (validE164).
var telRe = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// telURL is a tel: link for a stored phone number: html/template passes
// only http, https and mailto URLs, so a number is checked to be digits
// after + and only then marked as a URL. Anything else gives no link.
func telURL(phone string) template.URL {
	if !telRe.MatchString(phone) {
		return ""
	}
	return template.URL("tel:" + phone)
}

// userRef is a user of the organisation as the admin pages name them.
type userRef struct {
	ID    string
	Name  string
	Email string
	Role  string
}

// orgUsers lists the organisation's users through the API (users.read):
// nil, nil when the caller may not list them.
func (c *Console) orgUsers(r *http.Request, org string) ([]userRef, error) {
	var out struct {
		Users []struct {
			ID    string `json:"id"`
			Email string `json:"email"`
			Name  string `json:"name"`
			Orgs  []struct {
				OrgID string `json:"org_id"`
				Role  string `json:"role"`
			} `json:"orgs"`
		} `json:"users"`
	}
	e, err := c.apiCall(r, http.MethodGet, "/api/v1/orgs/"+org+"/users", nil, &out)
	if err != nil {
		return nil, err
	}
	if e != nil {
		return nil, nil
	}
	us := make([]userRef, 0, len(out.Users))
	for _, u := range out.Users {
		ref := userRef{ID: u.ID, Name: u.Name, Email: u.Email}
		for _, m := range u.Orgs {
			if m.OrgID == org {
				ref.Role = m.Role
			}
		}
		us = append(us, ref)
	}
	slices.SortFunc(us, func(a, b userRef) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	return us, nil
}

// seeOther redirects a form's POST to its page.
func seeOther(w http.ResponseWriter, r *http.Request, path string) {
	http.Redirect(w, r, path, http.StatusSeeOther)
}
