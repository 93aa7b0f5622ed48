package web

import (
	"crypto/rand"
	"encoding/base32"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"vigil/internal/auth"
)

// directoryRoutes are the organisations' people, contacts, carers,
// devices, teams and audit log. People, their notes and contacts are
// personal data: every read and change is audited before it is served
// (directory_people.go). Devices, teams and the audit browse are in
// directory_org.go.
var directoryRoutes = []Route{
	// People (workers and residents), their medical notes, emergency
	// contacts, carers and device.
	{"GET /api/v1/orgs/{org}/people", OrgPerm, auth.PeopleRead, func(a *API) http.HandlerFunc { return a.listPeople }},
	{"POST /api/v1/orgs/{org}/people", OrgPerm, auth.PeopleWrite, func(a *API) http.HandlerFunc { return a.createPerson }},
	{"GET /api/v1/people/{id}", ObjPerm, auth.PeopleRead, func(a *API) http.HandlerFunc { return a.getPerson }},
	{"PUT /api/v1/people/{id}/notes", ObjPerm, auth.PeopleWrite, func(a *API) http.HandlerFunc { return a.putPersonNotes }},
	{"GET /api/v1/people/{id}/contacts", ObjPerm, auth.ContactsRead, func(a *API) http.HandlerFunc { return a.listContacts }},
	{"POST /api/v1/people/{id}/contacts", ObjPerm, auth.ContactsWrite, func(a *API) http.HandlerFunc { return a.createContact }},
	{"DELETE /api/v1/contacts/{id}", ObjPerm, auth.ContactsWrite, func(a *API) http.HandlerFunc { return a.deleteContact }},
	{"PUT /api/v1/people/{id}/carers/{user}", ObjPerm, auth.UsersWrite, func(a *API) http.HandlerFunc { return a.linkCarer }},
	{"DELETE /api/v1/people/{id}/carers/{user}", ObjPerm, auth.UsersWrite, func(a *API) http.HandlerFunc { return a.unlinkCarer }},
	{"PUT /api/v1/people/{id}/device", ObjPerm, auth.DevicesWrite, func(a *API) http.HandlerFunc { return a.putPersonDevice }},

	// Devices, teams and the audit log.
	{"GET /api/v1/orgs/{org}/devices", OrgPerm, auth.DevicesRead, func(a *API) http.HandlerFunc { return a.listDevices }},
	{"GET /api/v1/orgs/{org}/teams", OrgPerm, auth.TeamsRead, func(a *API) http.HandlerFunc { return a.listTeams }},
	{"POST /api/v1/orgs/{org}/teams", OrgPerm, auth.TeamsWrite, func(a *API) http.HandlerFunc { return a.createTeam }},
	{"DELETE /api/v1/orgs/{org}/teams/{id}", OrgPerm, auth.TeamsWrite, func(a *API) http.HandlerFunc { return a.deleteTeam }},
	{"PUT /api/v1/orgs/{org}/teams/{id}/members/{user}", OrgPerm, auth.TeamsWrite, func(a *API) http.HandlerFunc { return a.addTeamMember }},
	{"DELETE /api/v1/orgs/{org}/teams/{id}/members/{user}", OrgPerm, auth.TeamsWrite, func(a *API) http.HandlerFunc { return a.removeTeamMember }},
	{"GET /api/v1/orgs/{org}/audit", OrgPerm, auth.AuditRead, func(a *API) http.HandlerFunc { return a.browseAudit }},
}

// dirIDEnc spells the random part of server-made ids.
var dirIDEnc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newDirID returns a new random id: prefix and 16 lower-case base32
// characters (80 bits), e.g. "p_" for people.
func newDirID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return prefix + dirIDEnc.EncodeToString(b[:])
}

// checkText validates a free-text field: valid UTF-8, at most max
// characters, no control characters (line breaks and tabs too when
// multiline). It returns the problem, "" when s is fine; required
// refuses an empty or blank value.
func checkText(s string, max int, required, multiline bool) string {
	switch {
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	case required && strings.TrimSpace(s) == "":
		return "required"
	case utf8.RuneCountInString(s) > max:
		return "at most " + strconv.Itoa(max) + " characters"
	}
	for _, c := range s {
		if multiline && (c == '\n' || c == '\r' || c == '\t') {
			continue
		}
		if unicode.IsControl(c) || c == '\u2028' || c == '\u2029' {
			return "must not contain control characters"
		}
	}
	return ""
}

// validE164 reports whether s is a phone number in E.164 form: "+", a
// non-zero digit and 6 to 14 more digits, nothing else.
func validE164(s string) bool {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9' {
		return false
	}
	for _, c := range s[2:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// dirNotFound is the answer for an object the caller may not know about.
func dirNotFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "not_found", "", "no such object")
}
