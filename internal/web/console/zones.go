package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"vigil/internal/auth"
)

// zoneRoutes are the console's routes of this page family (see routes).
var zoneRoutes = []route{
	{"GET /console/{org}/zones", false, func(c *Console) http.HandlerFunc { return c.zonesPage }},
	{"GET /console/{org}/zones/export", false, func(c *Console) http.HandlerFunc { return c.zonesExport }},
	{"POST /console/{org}/zones", false, func(c *Console) http.HandlerFunc { return c.zoneSave }},
	{"POST /console/{org}/zones/import", false, func(c *Console) http.HandlerFunc { return c.zonesImport }},
	{"POST /console/{org}/zones/{id}/delete", false, func(c *Console) http.HandlerFunc { return c.zoneDelete }},
}

// zonesStore is what this page family reads from the store directly (most
// pages go through apiCall instead); part of Store.
type zonesStore interface{}

// maxZoneImport bounds a GeoJSON file imported from the console (the API
// takes larger documents from scripts).
const maxZoneImport = 4 << 20

// zoneDays are the schedule's days, in the order the form shows them.
var zoneDays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// zoneSchedule is a fence's schedule in GeoJSON.
type zoneSchedule struct {
	Days  []string `json:"days,omitempty"`
	Start string   `json:"start,omitempty"`
	End   string   `json:"end,omitempty"`
	TZ    string   `json:"tz,omitempty"`
}

// zoneFeature is one fence as the API's GeoJSON carries it.
type zoneFeature struct {
	Type       string          `json:"type"`
	ID         string          `json:"id,omitempty"`
	Geometry   json.RawMessage `json:"geometry"`
	Properties struct {
		Name     string        `json:"name,omitempty"`
		Rule     string        `json:"rule"`
		DwellS   *int64        `json:"dwell_s,omitempty"`
		RadiusM  *float64      `json:"radius_m,omitempty"`
		Schedule *zoneSchedule `json:"schedule,omitempty"`
		Assign   []string      `json:"assign,omitempty"`
	} `json:"properties"`
}

// Shape is how the list describes the geometry.
func (f zoneFeature) Shape() string {
	var g struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(f.Geometry, &g)
	switch g.Type {
	case "Point":
		if f.Properties.RadiusM != nil {
			return "circle, " + strconv.FormatFloat(*f.Properties.RadiusM, 'f', 0, 64) + " m"
		}
		return "circle"
	case "Polygon":
		return "polygon"
	case "MultiPolygon":
		return "polygons"
	}
	return g.Type
}

// Dwell is the dwell time in seconds as the list shows it.
func (f zoneFeature) Dwell() string {
	if f.Properties.DwellS == nil {
		return "30 s"
	}
	return strconv.FormatInt(*f.Properties.DwellS, 10) + " s"
}

// When is the schedule as the list shows it.
func (f zoneFeature) When() string {
	s := f.Properties.Schedule
	if s == nil {
		return "always"
	}
	days := "every day"
	if len(s.Days) > 0 {
		days = strings.Join(s.Days, " ")
	}
	return days + " " + s.Start + "–" + s.End + " " + s.TZ
}

type zoneCollection struct {
	Type     string        `json:"type"`
	Features []zoneFeature `json:"features"`
}

// zoneForm is the editor's fields, as submitted or as loaded for editing.
type zoneForm struct {
	ID       string
	Name     string
	Rule     string
	DwellS   string
	RadiusM  string
	Geometry string // GeoJSON geometry, built by zones.js
	Days     map[string]bool
	Start    string
	End      string
	TZ       string
	Assign   string
}

type zonesView struct {
	Nav       Nav
	Org       string
	Zones     []zoneFeature
	ZonesJSON string // the FeatureCollection, for the map
	CanWrite  bool
	Form      zoneForm
	Days      []string
	Errors    map[string]string // form field → message
	ImportErr string
	Notice    string
}

// zonesAccess signs in and checks zones.read on org (unscoped: zones are
// the organisation's).
// zonesAccess signs in and checks perm (zones.read for pages, zones.write
// before any form is read: a caller without it learns nothing from a
// validation error).
func (c *Console) zonesAccess(w http.ResponseWriter, r *http.Request, perm auth.Permission) (*auth.Principal, string, bool) {
	p := c.principal(r)
	if p == nil || !p.MFA {
		http.Redirect(w, r, "/", http.StatusSeeOther)
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

// loadZones reads org's zones through the API; ok false: answered.
func (c *Console) loadZones(w http.ResponseWriter, r *http.Request, p *auth.Principal, org string) (zonesView, bool) {
	var raw json.RawMessage
	e, err := c.apiCall(r, "GET", "/api/v1/orgs/"+url.PathEscape(org)+"/zones", nil, &raw)
	if err != nil {
		c.fail(w, r, err)
		return zonesView{}, false
	}
	if e != nil {
		c.apiRefused(w, r, e)
		return zonesView{}, false
	}
	var fc zoneCollection
	if err := json.Unmarshal(raw, &fc); err != nil {
		c.fail(w, r, err)
		return zonesView{}, false
	}
	v := zonesView{Nav: nav(p, org, "zones"), Org: org, Zones: fc.Features, ZonesJSON: string(raw), Days: zoneDays,
		CanWrite: p.Decide(org, auth.ZonesWrite) == auth.Allow && !p.Scoped(org), Errors: map[string]string{},
		Form: zoneForm{Rule: "must_not_enter", DwellS: "30", RadiusM: "100", TZ: "Europe/London", Days: map[string]bool{}}}
	return v, true
}

func (c *Console) zonesPage(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.zonesAccess(w, r, auth.ZonesRead)
	if !ok {
		return
	}
	v, ok := c.loadZones(w, r, p, org)
	if !ok {
		return
	}
	if id := r.URL.Query().Get("edit"); id != "" {
		for _, f := range v.Zones {
			if f.ID == id {
				v.Form = formOf(f)
			}
		}
	}
	v.Notice = map[string]string{"saved": "Zone saved.", "deleted": "Zone deleted.", "imported": "Zones imported."}[r.URL.Query().Get("done")]
	c.render(w, http.StatusOK, "zones.html", v)
}

// formOf fills the editor with an existing zone.
func formOf(f zoneFeature) zoneForm {
	z := zoneForm{ID: f.ID, Name: f.Properties.Name, Rule: f.Properties.Rule, DwellS: "30", RadiusM: "100",
		Geometry: string(f.Geometry), Days: map[string]bool{}, TZ: "Europe/London", Assign: strings.Join(f.Properties.Assign, ", ")}
	if f.Properties.DwellS != nil {
		z.DwellS = strconv.FormatInt(*f.Properties.DwellS, 10)
	}
	if f.Properties.RadiusM != nil {
		z.RadiusM = strconv.FormatFloat(*f.Properties.RadiusM, 'f', -1, 64)
	}
	if s := f.Properties.Schedule; s != nil {
		z.Start, z.End, z.TZ = s.Start, s.End, s.TZ
		for _, d := range s.Days {
			z.Days[d] = true
		}
	}
	return z
}

// zoneFields maps the API's field paths to the editor's fields.
var zoneFields = []struct{ prefix, field string }{
	{"properties.name", "name"}, {"properties.rule", "rule"}, {"properties.dwell_s", "dwell_s"},
	{"properties.radius_m", "radius_m"}, {"properties.schedule", "schedule"}, {"properties.assign", "assign"},
	{"geometry", "geometry"}, {"id", "geometry"},
}

// apiMessage drops the "feature 0: properties.name: " prefix of a
// geofence error: the page shows the message next to its field.
var apiMessage = regexp.MustCompile(`^(feature \d+: )?[A-Za-z_.\[\]0-9]+: `)

func zoneError(e *APIError) (field, msg string) {
	field = "form"
	for _, m := range zoneFields {
		if strings.HasPrefix(e.Field, m.prefix) {
			field = m.field
			break
		}
	}
	msg = e.Message
	if e.Field != "" {
		msg = apiMessage.ReplaceAllString(msg, "")
	}
	return field, msg
}

// featureOf builds the GeoJSON feature the editor describes; a field
// error for what cannot be built (the API validates the rest).
func featureOf(z zoneForm) (zoneFeature, string, string) {
	var f zoneFeature
	f.Type, f.ID = "Feature", z.ID
	g := strings.TrimSpace(z.Geometry)
	var geom struct {
		Type string `json:"type"`
	}
	if g == "" || json.Unmarshal([]byte(g), &geom) != nil || geom.Type == "" {
		return f, "geometry", "draw the zone on the map first (a circle or a polygon)"
	}
	f.Geometry = json.RawMessage(g)
	f.Properties.Name = z.Name
	f.Properties.Rule = z.Rule
	if s := strings.TrimSpace(z.DwellS); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return f, "dwell_s", "whole seconds, e.g. 30"
		}
		f.Properties.DwellS = &n
	}
	if geom.Type == "Point" {
		r, err := strconv.ParseFloat(strings.TrimSpace(z.RadiusM), 64)
		if err != nil {
			return f, "radius_m", "the radius in metres, e.g. 100"
		}
		f.Properties.RadiusM = &r
	}
	var days []string
	for _, d := range zoneDays {
		if z.Days[d] {
			days = append(days, d)
		}
	}
	if len(days) > 0 || z.Start != "" || z.End != "" {
		f.Properties.Schedule = &zoneSchedule{Days: days, Start: z.Start, End: z.End, TZ: strings.TrimSpace(z.TZ)}
	}
	for _, a := range strings.FieldsFunc(z.Assign, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' }) {
		f.Properties.Assign = append(f.Properties.Assign, a)
	}
	return f, "", ""
}

// zoneSave creates a zone, or replaces one of the organisation's zones
// (id), through POST /api/v1/orgs/{org}/zones.
func (c *Console) zoneSave(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.zonesAccess(w, r, auth.ZonesWrite)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxZoneImport)
	if err := r.ParseForm(); err != nil {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	z := zoneForm{ID: r.PostFormValue("id"), Name: r.PostFormValue("name"), Rule: r.PostFormValue("rule"),
		DwellS: r.PostFormValue("dwell_s"), RadiusM: r.PostFormValue("radius_m"), Geometry: r.PostFormValue("geometry"),
		Days: map[string]bool{}, Start: r.PostFormValue("start"), End: r.PostFormValue("end"), TZ: r.PostFormValue("tz"),
		Assign: r.PostFormValue("assign")}
	for _, d := range r.PostForm["days"] {
		z.Days[d] = true
	}
	v, ok := c.loadZones(w, r, p, org)
	if !ok {
		return
	}
	if z.ID != "" && !hasZone(v.Zones, z.ID) {
		c.errorPage(w, r, http.StatusNotFound, "No such zone.")
		return
	}
	f, field, msg := featureOf(z)
	if field == "" {
		e, err := c.apiCall(r, "POST", "/api/v1/orgs/"+url.PathEscape(org)+"/zones", zoneCollection{Type: "FeatureCollection", Features: []zoneFeature{f}}, nil)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		if e == nil {
			http.Redirect(w, r, "/console/"+url.PathEscape(org)+"/zones?done=saved", http.StatusSeeOther)
			return
		}
		if e.Status != http.StatusBadRequest && e.Status != http.StatusConflict {
			c.apiRefused(w, r, e)
			return
		}
		field, msg = zoneError(e)
	}
	v.Form = z
	v.Errors[field] = msg
	c.render(w, http.StatusBadRequest, "zones.html", v)
}

func hasZone(zs []zoneFeature, id string) bool {
	for _, f := range zs {
		if f.ID == id {
			return true
		}
	}
	return false
}

// zonesImport stores the zones of a GeoJSON file (or pasted text) through
// the API, which validates all of them before it writes any.
func (c *Console) zonesImport(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.zonesAccess(w, r, auth.ZonesWrite)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxZoneImport+64<<10)
	var doc []byte
	var tooBig *http.MaxBytesError
	if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		if errors.As(err, &tooBig) {
			c.zonesImportError(w, r, p, org, http.StatusRequestEntityTooLarge, "The file is larger than 4 MiB.")
			return
		}
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	} else if err != nil {
		if err := r.ParseForm(); err != nil {
			c.zonesImportError(w, r, p, org, http.StatusRequestEntityTooLarge, "The text is larger than 4 MiB.")
			return
		}
	}
	if r.MultipartForm != nil {
		defer r.MultipartForm.RemoveAll()
		if fh := r.MultipartForm.File["file"]; len(fh) > 0 && fh[0].Size > 0 {
			f, err := fh[0].Open()
			if err != nil {
				c.fail(w, r, err)
				return
			}
			doc, err = io.ReadAll(io.LimitReader(f, maxZoneImport+1))
			f.Close()
			if err != nil {
				c.fail(w, r, err)
				return
			}
		}
	}
	if len(doc) == 0 {
		doc = []byte(r.FormValue("geojson"))
	}
	doc = bytes.TrimSpace(doc)
	switch {
	case len(doc) > maxZoneImport:
		c.zonesImportError(w, r, p, org, http.StatusRequestEntityTooLarge, "The file is larger than 4 MiB.")
		return
	case len(doc) == 0:
		c.zonesImportError(w, r, p, org, http.StatusBadRequest, "Choose a GeoJSON file or paste GeoJSON.")
		return
	case !json.Valid(doc):
		c.zonesImportError(w, r, p, org, http.StatusBadRequest, "This is not valid JSON.")
		return
	}
	e, err := c.apiCall(r, "POST", "/api/v1/orgs/"+url.PathEscape(org)+"/zones", json.RawMessage(doc), nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e != nil {
		if e.Status != http.StatusBadRequest && e.Status != http.StatusConflict {
			c.apiRefused(w, r, e)
			return
		}
		c.zonesImportError(w, r, p, org, e.Status, e.Message)
		return
	}
	http.Redirect(w, r, "/console/"+url.PathEscape(org)+"/zones?done=imported", http.StatusSeeOther)
}

func (c *Console) zonesImportError(w http.ResponseWriter, r *http.Request, p *auth.Principal, org string, status int, msg string) {
	v, ok := c.loadZones(w, r, p, org)
	if !ok {
		return
	}
	v.ImportErr = msg
	c.render(w, status, "zones.html", v)
}

// zoneDelete deletes one of the organisation's zones through DELETE
// /api/v1/zones/{id}.
func (c *Console) zoneDelete(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.zonesAccess(w, r, auth.ZonesWrite)
	if !ok {
		return
	}
	v, ok := c.loadZones(w, r, p, org)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if !hasZone(v.Zones, id) {
		c.errorPage(w, r, http.StatusNotFound, "No such zone.")
		return
	}
	e, err := c.apiCall(r, "DELETE", "/api/v1/zones/"+url.PathEscape(id), nil, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e != nil {
		c.apiRefused(w, r, e)
		return
	}
	http.Redirect(w, r, "/console/"+url.PathEscape(org)+"/zones?done=deleted", http.StatusSeeOther)
}

// safeName keeps a file name to letters, digits, - and _.
var safeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// zonesExport downloads the organisation's zones as a GeoJSON file.
func (c *Console) zonesExport(w http.ResponseWriter, r *http.Request) {
	_, org, ok := c.zonesAccess(w, r, auth.ZonesRead)
	if !ok {
		return
	}
	var raw json.RawMessage
	e, err := c.apiCall(r, "GET", "/api/v1/orgs/"+url.PathEscape(org)+"/zones", nil, &raw)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e != nil {
		c.apiRefused(w, r, e)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/geo+json")
	hd.Set("Content-Disposition", `attachment; filename="zones-`+safeName.ReplaceAllString(org, "_")+`.geojson"`)
	hd.Set("Content-Security-Policy", downloadCSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-store")
	_, _ = w.Write(raw)
}
