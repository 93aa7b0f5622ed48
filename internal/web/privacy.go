package web

import (
	"context"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"vigil/internal/auth"
	"vigil/internal/store"
)

// Data-subject rights (issue 9). Erasure deletes a person's data where no
// legal duty keeps it and crypto-shreds the rest (their data key is
// destroyed: kept incident records read "[erased]"), and answers a receipt
// of what was erased and what was kept and why. A subject access export
// is everything held about one person, as JSON or as a readable,
// self-contained HTML report (no scripts, no external resources). Both
// are admin-only, authorised on the person and audited with ids only.

// privacyRoutes are the data-protection API routes: erasing a person and
// exporting everything held about them (issue 9).
var privacyRoutes = []Route{
	{"POST /api/v1/people/{id}/erase", ObjPerm, auth.PeopleErase, func(a *API) http.HandlerFunc { return a.erasePerson }},
	{"GET /api/v1/people/{id}/export", ObjPerm, auth.PeopleExport, func(a *API) http.HandlerFunc { return a.exportPerson }},
}

// PersonEraser erases people: the encrypted store (internal/store/encrypted)
// offers it; without it erasure is unavailable, as the data could not be
// shredded.
type PersonEraser interface {
	// ErasePersonData erases a person and returns the receipt, and
	// whether the erasure happened now (false: it had happened before,
	// the first receipt). Unknown person: store.ErrNotFound; an open alert
	// or active session: store.ErrConflict.
	ErasePersonData(ctx context.Context, personID, reason string, at time.Time) (store.ErasureReceipt, bool, error)
}

// erasureLedger reads the erasure ledger, to answer a repeated erasure
// with the first receipt.
type erasureLedger interface {
	GetErasure(ctx context.Context, personID string) (store.Erasure, error)
}

// maxEraseReason bounds the stated legal basis of an erasure.
const maxEraseReason = 500

type eraseBody struct {
	Reason *string `json:"reason"`
}

func (a *API) erasePerson(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p, err := a.dir.GetPerson(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		a.erasedBefore(w, r, id)
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.allowFor(w, r, p.OrgID, p.ID, auth.PeopleErase, "person", p.ID) {
		return
	}
	var b eraseBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if b.Reason == nil || strings.TrimSpace(*b.Reason) == "" {
		a.bad(w, "reason", "required: the legal basis of the erasure, e.g. \"GDPR Art. 17 request of 2026-01-05\" (not the person's name)")
		return
	}
	reason := strings.TrimSpace(*b.Reason)
	if len([]rune(reason)) > maxEraseReason || strings.IndexFunc(reason, unicode.IsControl) >= 0 {
		a.bad(w, "reason", "at most 500 characters, one line")
		return
	}
	er, ok := a.dir.(PersonEraser)
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "erasure needs encryption at rest (keys.kek_file), which is not configured")
		return
	}
	// Audited before the erasure: if the audit log is down nothing is
	// erased, and the record names the person by id only.
	if !a.audited(w, r, p.OrgID, "person.erase", "person", p.ID, nil) {
		return
	}
	rec, fresh, err := er.ErasePersonData(r.Context(), p.ID, reason, a.now().UTC())
	if errors.Is(err, store.ErrConflict) {
		writeError(w, http.StatusConflict, "erasure_blocked", "", "the person has an open alert or an active session: resolve or end them first")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if fresh && !a.audited(w, r, p.OrgID, "person.erased", "person", p.ID, map[string]string{"receipt_id": rec.ID}) {
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// erasedBefore answers an erasure of a person who is no longer there:
// the first receipt if they were erased (authorised on their former
// organisation), else 404.
func (a *API) erasedBefore(w http.ResponseWriter, r *http.Request, id string) {
	led, ok := a.dir.(erasureLedger)
	if !ok {
		a.fail(w, r, store.ErrNotFound)
		return
	}
	e, err := led.GetErasure(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// The person is gone: the organisation-wide permission decides.
	if !a.answer(w, r, principalOf(r).Decide(e.OrgID, auth.PeopleErase), e.OrgID, auth.PeopleErase, "person", id) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(e.Receipt))
}

// exportStore is what a subject access export reads; the store behind the
// directory offers it.
type exportStore interface {
	ListPersonCarers(ctx context.Context, personID string) ([]string, error)
	ListSessions(ctx context.Context, f store.SessionFilter) ([]store.Session, error)
	ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
	GetAlert(ctx context.Context, id string) (store.Alert, error)
	Positions(ctx context.Context, deviceID string, from, to time.Time) ([]store.PositionRecord, error)
	ListEvents(ctx context.Context, f store.EventFilter) ([]store.StoredEvent, error)
	GetPersonPhoto(ctx context.Context, personID string) (store.PersonPhoto, error)
}

// ExportJSON is everything held about one person.
type ExportJSON struct {
	GeneratedAt  time.Time            `json:"generated_at"`
	Person       personJSON           `json:"person"`
	MedicalNotes string               `json:"medical_notes"`
	Contacts     []contactJSON        `json:"contacts"`
	Carers       []exportUserJSON     `json:"carers"`
	Accounts     []exportUserJSON     `json:"accounts"`
	Devices      []exportDeviceJSON   `json:"devices"`
	Sessions     []SessionJSON        `json:"sessions"`
	Alerts       []AlertJSON          `json:"alerts"`
	Positions    []exportPositionJSON `json:"positions"`
	Events       []exportEventJSON    `json:"events"`
	Photo        *exportPhotoJSON     `json:"photo,omitempty"`
}

type exportUserJSON struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

type exportDeviceJSON struct {
	ID           string        `json:"id"`
	Name         string        `json:"name"`
	Firmware     string        `json:"firmware,omitempty"`
	CreatedAt    time.Time     `json:"created_at"`
	LastSeen     *time.Time    `json:"last_seen,omitempty"`
	LastPosition *positionJSON `json:"last_position,omitempty"`
	Battery      *int          `json:"battery,omitempty"`
}

type exportPositionJSON struct {
	DeviceID   string    `json:"device_id"`
	DeviceTime time.Time `json:"device_time"`
	ReceivedAt time.Time `json:"received_at"`
	Lat        float64   `json:"lat"`
	Lon        float64   `json:"lon"`
	AccuracyM  float64   `json:"accuracy_m"`
}

type exportEventJSON struct {
	Seq        int64     `json:"seq"`
	DeviceID   string    `json:"device_id"`
	Type       string    `json:"type"`
	DeviceTime time.Time `json:"device_time"`
	ReceivedAt time.Time `json:"received_at"`
}

type exportPhotoJSON struct {
	ContentType string `json:"content_type"`
	Data        string `json:"data"` // base64
}

// exportLimit bounds each paged list of an export.
const exportLimit = 1000

func (a *API) exportPerson(w http.ResponseWriter, r *http.Request) {
	p, ok := a.personAs(w, r, auth.PeopleExport)
	if !ok {
		return
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "html" {
		a.bad(w, "format", "want json or html")
		return
	}
	es, ok := a.dir.(exportStore)
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "exports are not available")
		return
	}
	out, err := a.collectExport(r.Context(), es, p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.audited(w, r, p.OrgID, "person.export", "person", p.ID, map[string]string{
		"format": map[bool]string{true: "html", false: "json"}[format == "html"],
		"alerts": strconv.Itoa(len(out.Alerts)), "sessions": strconv.Itoa(len(out.Sessions)),
		"positions": strconv.Itoa(len(out.Positions)), "events": strconv.Itoa(len(out.Events)),
	}) {
		return
	}
	if format != "html" {
		w.Header().Set("Content-Disposition", `attachment; filename="vigil-export-`+p.ID+`.json"`)
		writeJSON(w, http.StatusOK, out)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	h.Set("Content-Disposition", `attachment; filename="vigil-export-`+p.ID+`.html"`)
	w.WriteHeader(http.StatusOK)
	if err := exportHTML.Execute(w, out); err != nil {
		a.log.Error("export report not written", "person_id", p.ID, "err", err)
	}
}

// CollectExport gathers everything held about p (the CLI uses it too).
func CollectExport(ctx context.Context, dir Directory, p store.Person, now time.Time) (ExportJSON, error) {
	es, ok := dir.(exportStore)
	if !ok {
		return ExportJSON{}, errors.New("export: the store cannot list everything held")
	}
	a := &API{dir: dir, now: func() time.Time { return now }}
	return a.collectExport(ctx, es, p)
}

func (a *API) collectExport(ctx context.Context, es exportStore, p store.Person) (ExportJSON, error) {
	out := ExportJSON{GeneratedAt: a.now().UTC(), Person: personOut(p), Contacts: []contactJSON{}, Carers: []exportUserJSON{},
		Accounts: []exportUserJSON{}, Devices: []exportDeviceJSON{}, Sessions: []SessionJSON{}, Alerts: []AlertJSON{},
		Positions: []exportPositionJSON{}, Events: []exportEventJSON{}}
	var err error
	if out.MedicalNotes, err = a.dir.GetPersonNotes(ctx, p.ID); err != nil {
		return out, err
	}
	cs, err := a.dir.ListContacts(ctx, p.ID)
	if err != nil {
		return out, err
	}
	out.Contacts = contactsOut(cs)
	carers, err := es.ListPersonCarers(ctx, p.ID)
	if err != nil {
		return out, err
	}
	for _, id := range carers {
		u, err := a.dir.GetUser(ctx, id)
		if err != nil {
			return out, err
		}
		out.Carers = append(out.Carers, exportUserJSON{ID: u.ID, Name: u.Name, Email: u.Email})
	}
	users, err := a.dir.ListUsers(ctx, p.OrgID)
	if err != nil {
		return out, err
	}
	for _, u := range users {
		if u.PersonID == p.ID {
			out.Accounts = append(out.Accounts, exportUserJSON{ID: u.ID, Name: u.Name, Email: u.Email})
		}
	}
	devs, err := a.dir.ListDevices(ctx, p.OrgID)
	if err != nil {
		return out, err
	}
	for _, d := range devs {
		if d.PersonID != p.ID {
			continue
		}
		dj := exportDeviceJSON{ID: d.ID, Name: d.Name, Firmware: d.Firmware, CreatedAt: d.CreatedAt.UTC(), LastSeen: tptr(d.State.LastSeen), Battery: d.State.Battery}
		if lp := d.State.LastPosition; lp != nil {
			dj.LastPosition = &positionJSON{Lat: lp.Lat, Lon: lp.Lon, AccuracyM: lp.AccuracyM, FixTime: tptr(lp.FixTime), At: d.State.PositionTime}
		}
		out.Devices = append(out.Devices, dj)
		pos, err := es.Positions(ctx, d.ID, time.Time{}, time.Time{})
		if err != nil {
			return out, err
		}
		for _, x := range pos {
			out.Positions = append(out.Positions, exportPositionJSON{DeviceID: x.DeviceID, DeviceTime: x.DeviceTime.UTC(), ReceivedAt: x.ReceivedAt.UTC(),
				Lat: x.Lat, Lon: x.Lon, AccuracyM: x.AccuracyM})
		}
		evs, err := es.ListEvents(ctx, store.EventFilter{OrgID: p.OrgID, DeviceID: d.ID, Limit: exportLimit})
		if err != nil {
			return out, err
		}
		for _, e := range evs {
			out.Events = append(out.Events, exportEventJSON{Seq: e.Seq, DeviceID: e.DeviceID, Type: string(e.Type), DeviceTime: e.DeviceTime.UTC(), ReceivedAt: e.ReceivedAt.UTC()})
		}
	}
	ss, err := es.ListSessions(ctx, store.SessionFilter{OrgID: p.OrgID, PersonID: p.ID, Limit: exportLimit})
	if err != nil {
		return out, err
	}
	for _, s := range ss {
		out.Sessions = append(out.Sessions, SessionView(s, time.Time{}))
	}
	f := store.AlertFilter{OrgID: p.OrgID, PersonID: p.ID, Limit: exportLimit}
	for {
		page, err := es.ListAlerts(ctx, f)
		if err != nil {
			return out, err
		}
		for _, al := range page {
			full, err := es.GetAlert(ctx, al.ID)
			if err != nil {
				return out, err
			}
			out.Alerts = append(out.Alerts, AlertView(full))
		}
		if len(page) < f.Limit {
			break
		}
		f.RaisedBefore = page[len(page)-1].RaisedAt
	}
	ph, err := es.GetPersonPhoto(ctx, p.ID)
	switch {
	case err == nil:
		out.Photo = &exportPhotoJSON{ContentType: ph.ContentType, Data: base64.StdEncoding.EncodeToString(ph.Bytes)}
	case !errors.Is(err, store.ErrNotFound):
		return out, err
	}
	return out, nil
}

// WriteExportHTML writes the readable report of an export.
func WriteExportHTML(w interface{ Write([]byte) (int, error) }, x ExportJSON) error {
	return exportHTML.Execute(w, x)
}

var exportHTML = template.Must(template.New("export").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2 Jan 2006 15:04:05 UTC")
	},
	"whenp": func(t *time.Time) string {
		if t == nil {
			return "—"
		}
		return t.UTC().Format("2 Jan 2006 15:04:05 UTC")
	},
	"photo": func(p *exportPhotoJSON) template.URL {
		if p == nil || (p.ContentType != "image/jpeg" && p.ContentType != "image/png") {
			return ""
		}
		// Only a base64 data URL of an image type the server re-encoded.
		return template.URL("data:" + p.ContentType + ";base64," + p.Data)
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Vigil: data held about {{.Person.ID}}</title>
<style>body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#111}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}th,td{border:1px solid #bbb;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#eee}h2{margin-top:2rem;border-bottom:2px solid #333}.muted{color:#555}</style></head>
<body>
<h1>Data held about {{.Person.Name}}</h1>
<p class="muted">Subject access report generated {{when .GeneratedAt}} by Vigil. Person id {{.Person.ID}}, organisation {{.Person.OrgID}}.</p>
{{with photo .Photo}}<p><img src="{{.}}" alt="Photo held of the person" width="160"></p>{{end}}
<h2>Person</h2>
<table><tr><th>Name</th><td>{{.Person.Name}}</td></tr><tr><th>Kind</th><td>{{.Person.Kind}}</td></tr>
<tr><th>Created</th><td>{{when .Person.CreatedAt}}</td></tr><tr><th>Medical notes</th><td>{{if .MedicalNotes}}{{.MedicalNotes}}{{else}}none{{end}}</td></tr></table>
<h2>Emergency contacts ({{len .Contacts}})</h2>
{{if .Contacts}}<table><tr><th>Name</th><th>Relation</th><th>Phone</th><th>E-mail</th><th>Priority</th></tr>
{{range .Contacts}}<tr><td>{{.Name}}</td><td>{{.Relation}}</td><td>{{.Phone}}</td><td>{{.Email}}</td><td>{{.Priority}}</td></tr>{{end}}</table>{{else}}<p>None.</p>{{end}}
<h2>Carers ({{len .Carers}}) and sign-in accounts ({{len .Accounts}})</h2>
{{if or .Carers .Accounts}}<table><tr><th>Link</th><th>Name</th><th>E-mail</th></tr>
{{range .Carers}}<tr><td>carer</td><td>{{.Name}}</td><td>{{.Email}}</td></tr>{{end}}
{{range .Accounts}}<tr><td>own account</td><td>{{.Name}}</td><td>{{.Email}}</td></tr>{{end}}</table>{{else}}<p>None.</p>{{end}}
<h2>Devices ({{len .Devices}})</h2>
{{if .Devices}}<table><tr><th>Id</th><th>Name</th><th>Last seen</th><th>Last position</th></tr>
{{range .Devices}}<tr><td>{{.ID}}</td><td>{{.Name}}</td><td>{{whenp .LastSeen}}</td><td>{{with .LastPosition}}{{.Lat}}, {{.Lon}} (±{{.AccuracyM}} m){{else}}—{{end}}</td></tr>{{end}}</table>{{else}}<p>None.</p>{{end}}
<h2>Sessions ({{len .Sessions}})</h2>
{{if .Sessions}}<table><tr><th>Started</th><th>Expected end</th><th>State</th><th>Note</th></tr>
{{range .Sessions}}<tr><td>{{when .StartedAt}}</td><td>{{when .ExpectedEnd}}</td><td>{{.State}}</td><td>{{.Note}}</td></tr>{{end}}</table>{{else}}<p>None.</p>{{end}}
<h2>Alerts ({{len .Alerts}})</h2>
{{range .Alerts}}<h3>{{.Kind}} — {{when .RaisedAt}} ({{.State}})</h3>
<table><tr><th>Severity</th><td>{{.Severity}}</td></tr><tr><th>Note</th><td>{{.Note}}</td></tr><tr><th>Detail</th><td>{{.Detail}}</td></tr>
<tr><th>Outcome</th><td>{{.Outcome}} {{.OutcomeNote}}</td></tr>{{with .Position}}<tr><th>Position</th><td>{{.Lat}}, {{.Lon}} (±{{.AccuracyM}} m)</td></tr>{{end}}</table>
{{if .Timeline}}<table><tr><th>When</th><th>Who</th><th>What</th><th>Detail</th></tr>
{{range .Timeline}}<tr><td>{{when .At}}</td><td>{{.Actor}}</td><td>{{.Action}}</td><td>{{.Detail}}</td></tr>{{end}}</table>{{end}}
{{else}}<p>None.</p>{{end}}
<h2>Position history ({{len .Positions}})</h2>
{{if .Positions}}<table><tr><th>Device time</th><th>Device</th><th>Latitude</th><th>Longitude</th><th>Accuracy (m)</th></tr>
{{range .Positions}}<tr><td>{{when .DeviceTime}}</td><td>{{.DeviceID}}</td><td>{{.Lat}}</td><td>{{.Lon}}</td><td>{{.AccuracyM}}</td></tr>{{end}}</table>{{else}}<p>None.</p>{{end}}
<h2>Device events ({{len .Events}})</h2>
{{if .Events}}<table><tr><th>Received</th><th>Device</th><th>Type</th></tr>
{{range .Events}}<tr><td>{{when .ReceivedAt}}</td><td>{{.DeviceID}}</td><td>{{.Type}}</td></tr>{{end}}</table>{{else}}<p>None.</p>{{end}}
</body></html>
`))
