package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"vigil/internal/auth"
)

// setPreset is one session preset as the API answers it.
type setPreset struct {
	Name             string  `json:"name"`
	DurationS        float64 `json:"duration_s"`
	CheckinIntervalS float64 `json:"checkin_interval_s"`
	GraceS           float64 `json:"grace_s"`
}

// setPresetRow is one preset as the page shows it (Go durations).
type setPresetRow struct {
	Name, Duration, CheckinInterval, Grace string
}

type presetsView struct {
	Nav      Nav
	Org      string
	CanWrite bool
	Presets  []setPresetRow
	Form     setPresetRow
	Editing  bool
	Errors   setErrors
	Notice   string
}

func setSeconds(s float64) string {
	return time.Duration(s * float64(time.Second)).String()
}

func (c *Console) loadPresets(w http.ResponseWriter, r *http.Request, p *auth.Principal, org string) (presetsView, bool) {
	v := presetsView{Nav: nav(p, org, "presets"), Org: org, CanWrite: p.Can(org, auth.PresetsWrite), Errors: setErrors{}}
	var out struct {
		Presets []setPreset `json:"presets"`
	}
	e, err := c.apiCall(r, http.MethodGet, setOrgPath(org, "/session-presets"), nil, &out)
	if err != nil {
		c.fail(w, r, err)
		return v, false
	}
	if e != nil {
		c.apiRefused(w, r, e)
		return v, false
	}
	for _, ps := range out.Presets {
		v.Presets = append(v.Presets, setPresetRow{Name: ps.Name, Duration: setSeconds(ps.DurationS),
			CheckinInterval: setSeconds(ps.CheckinIntervalS), Grace: setSeconds(ps.GraceS)})
	}
	return v, true
}

func (c *Console) presetsPage(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.PresetsRead)
	if !ok {
		return
	}
	v, ok := c.loadPresets(w, r, p, org)
	if !ok {
		return
	}
	v.Notice = setNotice(r.URL.Query().Get("done"))
	if name := r.URL.Query().Get("edit"); name != "" {
		for _, ps := range v.Presets {
			if ps.Name == name {
				v.Form, v.Editing = ps, true
			}
		}
	}
	c.render(w, http.StatusOK, "presets.html", v)
}

// savePreset is PUT /api/v1/orgs/{org}/session-presets/{name}: adds a
// preset or replaces the one of that name.
func (c *Console) savePreset(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.PresetsWrite)
	if !ok {
		return
	}
	if !form(w, r) {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	f := setPresetRow{Name: strings.TrimSpace(r.PostFormValue("name")), Duration: strings.TrimSpace(r.PostFormValue("duration")),
		CheckinInterval: strings.TrimSpace(r.PostFormValue("checkin_interval")), Grace: strings.TrimSpace(r.PostFormValue("grace"))}
	errs := setErrors{}
	body := map[string]string{}
	for _, fd := range []struct{ name, val string }{{"duration", f.Duration}, {"checkin_interval", f.CheckinInterval}, {"grace", f.Grace}} {
		v := fd.val
		if v == "" {
			v = "0s"
		}
		if _, err := time.ParseDuration(v); err != nil {
			errs[fd.name] = "want a duration such as 90m, 8h or 30s"
		}
		body[fd.name] = v
	}
	if f.Name == "" || len(f.Name) > 40 || strings.ContainsFunc(f.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		errs["name"] = "1 to 40 of a-z, 0-9, - and _"
	}
	var e *APIError
	if len(errs) == 0 {
		var err error
		e, err = c.apiCall(r, http.MethodPut, setOrgPath(org, "/session-presets/"+url.PathEscape(f.Name)), body, nil)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		if e == nil {
			http.Redirect(w, r, "/console/"+url.PathEscape(org)+"/presets?done=saved", http.StatusSeeOther)
			return
		}
		if c.setRefused(w, r, e) {
			return
		}
		errs.fromAPI(e, "name", "duration", "checkin_interval", "grace")
	}
	v, ok := c.loadPresets(w, r, p, org)
	if !ok {
		return
	}
	v.Form, v.Errors = f, errs
	status := http.StatusBadRequest
	if e != nil {
		status = e.Status
	}
	c.render(w, status, "presets.html", v)
}
