package console

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"vigil/internal/auth"
	"vigil/internal/escalation"
)

// setStepRow is one step of a ladder as the page shows it.
type setStepRow struct {
	Name       string
	Recipients []string
	Wait       string
	Repeat     string
}

// setPolicyRow is one alert kind's policy.
type setPolicyRow struct {
	Kind     string
	Source   string // "org" or "default"
	Steps    []setStepRow
	Admins   []string
	JSON     string // the editor's text
	Default  string // the built-in policy, as JSON
	Error    string // the API's refusal of the last save
	ErrField string
	Saved    bool
}

type policiesView struct {
	Nav      Nav
	Org      string
	CanWrite bool
	Policies []setPolicyRow
}

// setRecipientText describes whom a recipient reaches and how.
func setRecipientText(rc escalation.Recipient) string {
	var who string
	switch {
	case rc.User != "":
		who = "user " + rc.User
	case rc.Role != "":
		who = "every " + rc.Role
	case rc.Team != "":
		who = "team " + rc.Team
	case rc.Contacts:
		who = "the person's emergency contacts"
	case rc.Carers:
		who = "the person's carers"
	case rc.Address != "":
		who = rc.Address
	}
	s := rc.Channel
	if who != "" {
		s += ": " + who
	}
	if rc.Name != "" {
		s += " (" + rc.Name + ")"
	}
	return s
}

func setRepeatText(d escalation.Duration) string {
	if d == 0 {
		return "once"
	}
	return time.Duration(d).String()
}

func setIndentJSON(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return ""
	}
	return string(b)
}

func setPolicyRowOf(kind, source string, pol escalation.Policy) setPolicyRow {
	row := setPolicyRow{Kind: kind, Source: source, JSON: setIndentJSON(pol), Default: setIndentJSON(escalation.DefaultPolicy(kind))}
	for _, s := range pol.Steps {
		sr := setStepRow{Name: s.Name, Wait: time.Duration(s.Wait).String(), Repeat: setRepeatText(s.Repeat)}
		for _, rc := range s.Recipients {
			sr.Recipients = append(sr.Recipients, setRecipientText(rc))
		}
		row.Steps = append(row.Steps, sr)
	}
	for _, rc := range pol.Admins {
		row.Admins = append(row.Admins, setRecipientText(rc))
	}
	return row
}

func (c *Console) loadPolicies(w http.ResponseWriter, r *http.Request, p *auth.Principal, org string) (policiesView, bool) {
	v := policiesView{Nav: nav(p, org, "policies"), Org: org, CanWrite: p.Can(org, auth.EscalationWrite)}
	var out struct {
		Policies []struct {
			Kind   string            `json:"kind"`
			Source string            `json:"source"`
			Policy escalation.Policy `json:"policy"`
		} `json:"policies"`
	}
	e, err := c.apiCall(r, http.MethodGet, setOrgPath(org, "/escalation-policies"), nil, &out)
	if err != nil {
		c.fail(w, r, err)
		return v, false
	}
	if e != nil {
		c.apiRefused(w, r, e)
		return v, false
	}
	for _, pl := range out.Policies {
		v.Policies = append(v.Policies, setPolicyRowOf(pl.Kind, pl.Source, pl.Policy))
	}
	return v, true
}

func (c *Console) policiesPage(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.EscalationRead)
	if !ok {
		return
	}
	v, ok := c.loadPolicies(w, r, p, org)
	if !ok {
		return
	}
	if k := r.URL.Query().Get("saved"); k != "" {
		for i := range v.Policies {
			v.Policies[i].Saved = v.Policies[i].Kind == k
		}
	}
	c.render(w, http.StatusOK, "policies.html", v)
}

// setMaxPolicyForm bounds the policy editor's form.
const setMaxPolicyForm = 64 << 10

// savePolicy is PUT /api/v1/orgs/{org}/escalation-policies/{kind} with
// the editor's JSON; the API's field error is shown next to the editor,
// which keeps the text as typed.
func (c *Console) savePolicy(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.EscalationWrite)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, setMaxPolicyForm)
	if err := r.ParseForm(); err != nil {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read (at most 64 KiB).")
		return
	}
	kind := r.PathValue("kind")
	text := r.PostFormValue("policy")
	var e *APIError
	if kind != escalation.DefaultKind && (kind == "" || strings.ContainsFunc(kind, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r == '_') })) {
		c.errorPage(w, r, http.StatusNotFound, "No such page.")
		return
	}
	if !json.Valid([]byte(text)) {
		e = &APIError{Status: http.StatusBadRequest, Code: "invalid", Field: "policy", Message: "not valid JSON: " + setJSONProblem(text)}
	} else {
		var err error
		e, err = c.apiCall(r, http.MethodPut, setOrgPath(org, "/escalation-policies/"+url.PathEscape(kind)), json.RawMessage(text), nil)
		if err != nil {
			c.fail(w, r, err)
			return
		}
	}
	if e == nil {
		http.Redirect(w, r, "/console/"+url.PathEscape(org)+"/policies?saved="+url.QueryEscape(kind)+"#policy-"+url.QueryEscape(kind), http.StatusSeeOther)
		return
	}
	if c.setRefused(w, r, e) {
		return
	}
	v, ok := c.loadPolicies(w, r, p, org)
	if !ok {
		return
	}
	found := false
	for i := range v.Policies {
		if v.Policies[i].Kind == kind {
			v.Policies[i].JSON, v.Policies[i].Error, v.Policies[i].ErrField = text, e.Message, e.Field
			found = true
		}
	}
	if !found {
		c.errorPage(w, r, e.Status, e.Error())
		return
	}
	c.render(w, e.Status, "policies.html", v)
}

// setJSONProblem is where a text stops being JSON, in words.
func setJSONProblem(s string) string {
	var v any
	err := json.NewDecoder(strings.NewReader(s)).Decode(&v)
	switch {
	case err == io.EOF:
		return "the editor is empty"
	case err != nil:
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "one JSON object expected"
}
