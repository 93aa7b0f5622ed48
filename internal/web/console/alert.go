package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"vigil/internal/alert"
	"vigil/internal/auth"
	"vigil/internal/store"
)

// alertRoutes are the console's routes of this page family (see routes).
var alertRoutes = []route{
	{"GET /console/{org}/alerts/{id}", false, func(c *Console) http.HandlerFunc { return c.alertPage }},
	{"GET /console/{org}/alerts/{id}/live", false, func(c *Console) http.HandlerFunc { return c.alertLive }},
	{"POST /console/{org}/alerts/{id}/ack", false, func(c *Console) http.HandlerFunc { return c.alertAck }},
	{"POST /console/{org}/alerts/{id}/note", false, func(c *Console) http.HandlerFunc { return c.alertNote }},
	{"POST /console/{org}/alerts/{id}/resolve", false, func(c *Console) http.HandlerFunc { return c.alertResolve }},
	alertPhotoRoute,
}

// alertStore is what this page family reads from the store directly (most
// pages go through apiCall instead); part of Store.
type alertStore interface {
	// Positions is a device's position history (no API serves it).
	Positions(ctx context.Context, deviceID string, from, to time.Time) ([]store.PositionRecord, error)
	// GetEscalation is where an alert's escalation ladder stands.
	GetEscalation(ctx context.Context, alertID string) (store.Escalation, error)
}

// eventLister reads a device's recent events for its radio signal (the
// app's store.Store has it; a Store without it shows no signal).
type eventLister interface {
	ListEvents(ctx context.Context, f store.EventFilter) ([]store.StoredEvent, error)
}

// signalEvents is how many recent events are searched for a heartbeat
// with a signal strength.
const signalEvents = 50

// trailWindow is how much of the wearer's trail the alert view draws,
// back from the newest known position.
const trailWindow = 15 * time.Minute

// maxTrail bounds the positions drawn.
const maxTrail = 500

// The JSON API's answers, as far as the alert view shows them.
type (
	apiPosition struct {
		Lat       float64   `json:"lat"`
		Lon       float64   `json:"lon"`
		AccuracyM float64   `json:"accuracy_m"`
		At        time.Time `json:"at"`
	}
	apiEntry struct {
		Seq    int       `json:"seq"`
		At     time.Time `json:"at"`
		Actor  string    `json:"actor"`
		Action string    `json:"action"`
		Detail string    `json:"detail"`
	}
	apiAlert struct {
		ID             string       `json:"id"`
		OrgID          string       `json:"org_id"`
		DeviceID       string       `json:"device_id"`
		PersonID       string       `json:"person_id"`
		SessionID      string       `json:"session_id"`
		Kind           string       `json:"kind"`
		Severity       string       `json:"severity"`
		State          string       `json:"state"`
		RaisedAt       time.Time    `json:"raised_at"`
		AcknowledgedAt *time.Time   `json:"acknowledged_at"`
		AcknowledgedBy string       `json:"acknowledged_by"`
		ClosedAt       *time.Time   `json:"closed_at"`
		ClosedBy       string       `json:"closed_by"`
		Outcome        string       `json:"outcome"`
		OutcomeNote    string       `json:"outcome_note"`
		Note           string       `json:"note"`
		Detail         string       `json:"detail"`
		Position       *apiPosition `json:"position"`
		Duress         bool         `json:"duress"`
		Late           bool         `json:"late"`
		Timeline       []apiEntry   `json:"timeline"`
	}
	apiContact struct {
		Name     string `json:"name"`
		Relation string `json:"relation"`
		Phone    string `json:"phone"`
		Email    string `json:"email"`
		Priority int    `json:"priority"`
	}
	apiPerson struct {
		Name         string       `json:"name"`
		Kind         string       `json:"kind"`
		MedicalNotes *string      `json:"medical_notes"`
		Contacts     []apiContact `json:"contacts"`
	}
	apiSession struct {
		Note           string     `json:"note"`
		State          string     `json:"state"`
		ExpectedEnd    time.Time  `json:"expected_end"`
		NextCheckinDue *time.Time `json:"next_checkin_due"`
	}
	apiDevice struct {
		ID       string     `json:"id"`
		Name     string     `json:"name"`
		Firmware string     `json:"firmware"`
		LastSeen *time.Time `json:"last_seen"`
		Battery  *int       `json:"battery"`
	}
	apiDelivery struct {
		Event     string     `json:"event"`
		Step      int        `json:"step"`
		Attempt   int        `json:"attempt"`
		Channel   string     `json:"channel"`
		Target    string     `json:"target"`
		Status    string     `json:"status"`
		Error     string     `json:"error"`
		CreatedAt time.Time  `json:"created_at"`
		DoneAt    *time.Time `json:"done_at"`
	}
)

// outcomeOpt is one choice of the Resolve form.
type outcomeOpt struct {
	Value, Label string
}

var outcomeLabels = map[string]string{
	alert.OutcomeFalseAlarm:        "False alarm",
	alert.OutcomeAssisted:          "Assisted",
	alert.OutcomeEmergencyServices: "Emergency services called",
	alert.OutcomeOther:             "Other (describe in the note)",
}

func outcomeOpts() []outcomeOpt {
	var out []outcomeOpt
	for _, o := range alert.Outcomes() {
		l := outcomeLabels[o]
		if l == "" {
			l = o
		}
		out = append(out, outcomeOpt{Value: o, Label: l})
	}
	return out
}

// escalationView is the ladder's progress.
type escalationView struct {
	State  string
	Step   int // the next step to fire (1-based for people)
	NextAt time.Time
	Reason string
}

// alertPageView is the alert view's data.
type alertPageView struct {
	Nav  Nav
	Org  string
	A    apiAlert
	Base string // /console/{org}/alerts/{id}

	PersonName   string
	PhotoURL     string // the person's photo, "" for none (or not for this caller)
	MedicalNotes *string
	Contacts     []apiContact
	ShowContacts bool
	Session      *apiSession
	Device       *apiDevice
	SignalDBm    *int      // the newest heartbeat's signal strength
	SignalAt     time.Time // when it was received

	TrailJSON string // [[lat, lon], ...] oldest first
	Trail     int

	ShowEscalation bool
	Escalation     *escalationView
	Deliveries     []apiDelivery

	CanRespond bool
	CanAck     bool
	CanResolve bool
	Outcomes   []outcomeOpt
	Live       bool

	Names map[string]string // actor (user id) → name, for the timeline

	Form   string            // the form the errors are for: ack, note or resolve
	Errors map[string]string // field → message
	Values map[string]string // what was submitted, to fill in again
	Notice string
}

// Who is an actor as the page shows it: a user's name where known.
func (v alertPageView) Who(actor string) string {
	if n := v.Names[actor]; n != "" {
		return n
	}
	return actor
}

// loadAlertView reads everything the alert view shows, each part through
// the API as the caller (so its permission checks and audit apply) or,
// for positions, from the store with the permission checked here. ok
// false: the page has been answered (refused or failed).
func (c *Console) loadAlertView(w http.ResponseWriter, r *http.Request, fragment bool) (alertPageView, bool) {
	p := c.principal(r)
	if p == nil || !p.MFA {
		if fragment {
			w.Header().Set("HX-Redirect", "/")
			c.errorPage(w, r, http.StatusUnauthorized, "Sign in again.")
		} else {
			http.Redirect(w, r, "/", http.StatusSeeOther)
		}
		return alertPageView{}, false
	}
	org, id := r.PathValue("org"), r.PathValue("id")
	var v alertPageView
	if e, err := c.apiCall(r, "GET", "/api/v1/alerts/"+url.PathEscape(id), nil, &v.A); err != nil {
		c.fail(w, r, err)
		return v, false
	} else if e != nil {
		c.apiRefused(w, r, e)
		return v, false
	}
	if v.A.OrgID != org {
		c.decided(w, r, p, auth.Hide, org, auth.AlertsRead, "alert", id)
		return v, false
	}
	if r.Context().Err() != nil {
		return v, false // the browser went away (e.g. a live refresh cut short)
	}
	al := &v.A
	v.Org, v.Base = org, "/console/"+url.PathEscape(org)+"/alerts/"+url.PathEscape(al.ID)
	v.Nav = nav(p, org, "alarms")
	v.Live = p.Can(org, auth.FeedRead)
	v.Outcomes = outcomeOpts()
	v.Errors, v.Values = map[string]string{}, map[string]string{}
	v.CanRespond = p.DecideFor(org, al.PersonID, auth.AlertsRespond) == auth.Allow
	v.CanAck = v.CanRespond && al.State == string(store.AlertRaised)
	v.CanResolve = v.CanRespond && (al.State == string(store.AlertRaised) || al.State == string(store.AlertAcknowledged))

	if al.PersonID != "" {
		var pr apiPerson
		e, err := c.apiCall(r, "GET", "/api/v1/people/"+url.PathEscape(al.PersonID), nil, &pr)
		switch {
		case err != nil:
			c.fail(w, r, err)
			return v, false
		case e == nil:
			v.PersonName, v.MedicalNotes, v.Contacts = pr.Name, pr.MedicalNotes, pr.Contacts
			v.ShowContacts = p.DecideFor(org, al.PersonID, auth.ContactsRead) == auth.Allow
			v.PhotoURL = c.alertPhotoURL(r, p, org, v.Base, al.PersonID)
		default:
			// No people.read: the name only, as the alarm list shows it.
			if sp, err := c.st.GetPerson(r.Context(), al.PersonID); err == nil && sp.OrgID == org {
				v.PersonName = sp.Name
			}
		}
	}
	if al.SessionID != "" && p.DecideFor(org, al.PersonID, auth.SessionsRead) == auth.Allow {
		var s apiSession
		if e, err := c.apiCall(r, "GET", "/api/v1/sessions/"+url.PathEscape(al.SessionID), nil, &s); err != nil {
			c.fail(w, r, err)
			return v, false
		} else if e == nil {
			v.Session = &s
		}
	}
	if al.DeviceID != "" && p.Decide(org, auth.DevicesRead) == auth.Allow {
		var ds struct {
			Devices []apiDevice `json:"devices"`
		}
		if e, err := c.apiCall(r, "GET", "/api/v1/orgs/"+url.PathEscape(org)+"/devices", nil, &ds); err != nil {
			c.fail(w, r, err)
			return v, false
		} else if e == nil {
			for i := range ds.Devices {
				if ds.Devices[i].ID == al.DeviceID {
					v.Device = &ds.Devices[i]
				}
			}
			if el, ok := c.st.(eventLister); ok && v.Device != nil {
				evs, err := el.ListEvents(r.Context(), store.EventFilter{OrgID: org, DeviceID: al.DeviceID, Limit: signalEvents})
				if err != nil {
					c.fail(w, r, err)
					return v, false
				}
				for _, ev := range evs {
					if ev.Heartbeat != nil && ev.Heartbeat.SignalDBm != nil {
						v.SignalDBm, v.SignalAt = ev.Heartbeat.SignalDBm, ev.ReceivedAt
						break
					}
				}
			}
		}
	}
	v.Names = map[string]string{p.Actor(): p.Name}
	if p.Decide(org, auth.UsersRead) == auth.Allow && !p.Scoped(org) {
		var us struct {
			Users []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"users"`
		}
		if e, err := c.apiCall(r, "GET", "/api/v1/orgs/"+url.PathEscape(org)+"/users", nil, &us); err != nil {
			c.fail(w, r, err)
			return v, false
		} else if e == nil {
			for _, u := range us.Users {
				v.Names[u.ID] = u.Name
			}
		}
	}
	if !c.trail(w, r, p, &v) {
		return v, false
	}
	if p.DecideFor(org, al.PersonID, auth.EscalationRead) == auth.Allow {
		var ds struct {
			Deliveries []apiDelivery `json:"deliveries"`
		}
		if e, err := c.apiCall(r, "GET", "/api/v1/alerts/"+url.PathEscape(al.ID)+"/deliveries", nil, &ds); err != nil {
			c.fail(w, r, err)
			return v, false
		} else if e == nil {
			v.ShowEscalation, v.Deliveries = true, ds.Deliveries
			esc, err := c.st.GetEscalation(r.Context(), al.ID)
			switch {
			case err == nil && esc.OrgID == org:
				v.Escalation = &escalationView{State: string(esc.State), Step: esc.Step + 1, NextAt: esc.NextAt, Reason: esc.StopReason}
			case err != nil && !errors.Is(err, store.ErrNotFound):
				c.fail(w, r, err)
				return v, false
			}
		}
	}
	return v, true
}

// trail reads the wearer's last positions before the newest one known
// (up to the alert's closing): there is no API for them, so the
// permission (alerts.read on the alert's person) is checked here and the
// read recorded as position.read.
func (c *Console) trail(w http.ResponseWriter, r *http.Request, p *auth.Principal, v *alertPageView) bool {
	al := &v.A
	if al.DeviceID == "" {
		return true
	}
	if !c.decided(w, r, p, p.DecideFor(v.Org, al.PersonID, auth.AlertsRead), v.Org, auth.AlertsRead, "alert", al.ID) ||
		!c.audited(w, r, p, v.Org, "position.read", "device", al.DeviceID) {
		return false
	}
	to := al.RaisedAt.Add(12 * time.Hour)
	if al.ClosedAt != nil {
		to = al.ClosedAt.Add(time.Second)
	}
	ps, err := c.st.Positions(r.Context(), al.DeviceID, al.RaisedAt.Add(-trailWindow), to)
	if err != nil {
		c.fail(w, r, err)
		return false
	}
	if len(ps) > 0 {
		newest := ps[len(ps)-1].DeviceTime
		ps = slices.DeleteFunc(ps, func(x store.PositionRecord) bool { return newest.Sub(x.DeviceTime) > trailWindow })
	}
	if len(ps) > maxTrail {
		ps = ps[len(ps)-maxTrail:]
	}
	pts := make([][2]float64, 0, len(ps))
	for _, x := range ps {
		pts = append(pts, [2]float64{x.Lat, x.Lon})
	}
	b, _ := json.Marshal(pts)
	v.TrailJSON, v.Trail = string(b), len(pts)
	return true
}

func (c *Console) alertPage(w http.ResponseWriter, r *http.Request) {
	v, ok := c.loadAlertView(w, r, false)
	if !ok {
		return
	}
	if r.URL.Query().Get("done") != "" {
		v.Notice = map[string]string{"ack": "Acknowledged.", "note": "Note added.", "resolve": "Resolved."}[r.URL.Query().Get("done")]
	}
	c.render(w, http.StatusOK, "alert.html", v)
}

// alertLive is a live part of the alert view, re-rendered by alert.js on
// a feed event about this alert: the state and its button, or with
// ?part=history the escalation, deliveries and timeline.
func (c *Console) alertLive(w http.ResponseWriter, r *http.Request) {
	v, ok := c.loadAlertView(w, r, true)
	if !ok {
		return
	}
	name := "alert-live"
	if r.URL.Query().Get("part") == "history" {
		name = "alert-history"
	}
	c.render(w, http.StatusOK, name, v)
}

// alertForm reads a small urlencoded form (a note of 2000 characters may
// take four bytes each, escaped).
func alertForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 32<<10)
	return r.ParseForm() == nil
}

// alertAction runs one of the view's buttons through the API: on success
// back to the view (POST, redirect, GET); a refusal answers as the API
// did; a validation error shows the form again with the API's message
// next to its field.
func (c *Console) alertAction(w http.ResponseWriter, r *http.Request, form, path string, body map[string]string) {
	p := c.principal(r)
	if p == nil || !p.MFA {
		c.errorPage(w, r, http.StatusUnauthorized, "Sign in again.")
		return
	}
	org, id := r.PathValue("org"), r.PathValue("id")
	// The alert must be of the organisation in the path.
	var cur apiAlert
	if e, err := c.apiCall(r, "GET", "/api/v1/alerts/"+url.PathEscape(id), nil, &cur); err != nil {
		c.fail(w, r, err)
		return
	} else if e != nil {
		c.apiRefused(w, r, e)
		return
	}
	if cur.OrgID != org {
		c.decided(w, r, p, auth.Hide, org, auth.AlertsRespond, "alert", id)
		return
	}
	e, err := c.apiCall(r, "POST", "/api/v1/alerts/"+url.PathEscape(id)+path, body, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	base := "/console/" + url.PathEscape(org) + "/alerts/" + url.PathEscape(id)
	if e == nil {
		http.Redirect(w, r, base+"?done="+form, http.StatusSeeOther)
		return
	}
	if e.Status != http.StatusBadRequest && e.Status != http.StatusConflict {
		c.apiRefused(w, r, e)
		return
	}
	v, ok := c.loadAlertView(w, r, false)
	if !ok {
		return
	}
	v.Form, v.Values = form, body
	field := e.Field
	if field == "" {
		field = "form"
	}
	v.Errors[field] = e.Message
	c.render(w, e.Status, "alert.html", v)
}

func (c *Console) alertAck(w http.ResponseWriter, r *http.Request) {
	if !alertForm(w, r) {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	c.alertAction(w, r, "ack", "/acknowledge", map[string]string{"note": strings.TrimSpace(r.PostFormValue("note"))})
}

func (c *Console) alertNote(w http.ResponseWriter, r *http.Request) {
	if !alertForm(w, r) {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	c.alertAction(w, r, "note", "/notes", map[string]string{"note": r.PostFormValue("note")})
}

func (c *Console) alertResolve(w http.ResponseWriter, r *http.Request) {
	if !alertForm(w, r) {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	c.alertAction(w, r, "resolve", "/resolve", map[string]string{"outcome": r.PostFormValue("outcome"), "note": r.PostFormValue("note")})
}
