package console

import (
	"net/http"
	"net/url"
)

// settingsRoutes are the console's routes of this page family (see routes):
// users and roles, organisation settings, API tokens, escalation policies
// and session presets. Every read and change goes through the JSON API
// (apiCall), so its permission table, validation and audit apply.
var settingsRoutes = []route{
	{"GET /console/{org}/users", false, func(c *Console) http.HandlerFunc { return c.setUsersPage }},
	{"POST /console/{org}/users", false, func(c *Console) http.HandlerFunc { return c.setInvite }},
	{"POST /console/{org}/users/{id}/role", false, func(c *Console) http.HandlerFunc { return c.setUserRole }},
	{"POST /console/{org}/users/{id}/disable", false, func(c *Console) http.HandlerFunc { return c.setUserAction("disable") }},
	{"POST /console/{org}/users/{id}/enable", false, func(c *Console) http.HandlerFunc { return c.setUserAction("enable") }},
	{"POST /console/{org}/users/{id}/remove", false, func(c *Console) http.HandlerFunc { return c.setUserAction("remove") }},
	{"GET /console/{org}/settings", false, func(c *Console) http.HandlerFunc { return c.orgSettingsPage }},
	{"POST /console/{org}/settings", false, func(c *Console) http.HandlerFunc { return c.saveOrgSettings }},
	{"GET /console/{org}/tokens", false, func(c *Console) http.HandlerFunc { return c.tokensPage }},
	{"POST /console/{org}/tokens", false, func(c *Console) http.HandlerFunc { return c.setCreateToken }},
	{"POST /console/{org}/tokens/{id}/revoke", false, func(c *Console) http.HandlerFunc { return c.setRevokeToken }},
	{"GET /console/{org}/policies", false, func(c *Console) http.HandlerFunc { return c.policiesPage }},
	{"POST /console/{org}/policies/{kind}", false, func(c *Console) http.HandlerFunc { return c.savePolicy }},
	{"GET /console/{org}/presets", false, func(c *Console) http.HandlerFunc { return c.presetsPage }},
	{"POST /console/{org}/presets", false, func(c *Console) http.HandlerFunc { return c.savePreset }},
}

// settingsStore is what this page family reads from the store directly (most
// pages go through apiCall instead); part of Store.
type settingsStore interface{}

// setOrgPath is /api/v1/orgs/{org} plus rest, org escaped.
func setOrgPath(org, rest string) string {
	return "/api/v1/orgs/" + url.PathEscape(org) + rest
}

// setErrors is a form's errors by field name; "" is the form's own.
type setErrors map[string]string

// fromAPI files an API refusal under its field, or under "" when it names
// none or a field the form does not have.
func (fe setErrors) fromAPI(e *APIError, fields ...string) {
	for _, f := range fields {
		if e.Field == f {
			fe[f] = e.Message
			return
		}
	}
	fe[""] = e.Error()
}

// setRefused reports whether e is a refusal that replaces the whole page
// (signed out, hidden, forbidden); it answers it.
func (c *Console) setRefused(w http.ResponseWriter, r *http.Request, e *APIError) bool {
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		c.apiRefused(w, r, e)
		return true
	}
	return false
}
