package web

import (
	"net/http"
	"sort"
	"strconv"
	"time"

	"vigil/internal/auth"
	"vigil/internal/geofence"
	"vigil/internal/safety"
	"vigil/internal/store"
)

// --- alerts -----------------------------------------------------------------

func (a *API) listAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	org, ok := a.orgParam(w, r, auth.AlertsRead)
	if !ok {
		return
	}
	f := store.AlertFilter{OrgID: org, PersonID: q.Get("person"), Kind: q.Get("kind")}
	for _, s := range q["state"] {
		st := store.AlertState(s)
		if !st.Open() && st != store.AlertResolved && st != store.AlertCancelled {
			a.bad(w, "state", "want pending, raised, acknowledged, resolved or cancelled")
			return
		}
		f.States = append(f.States, st)
	}
	if q.Get("open") == "true" {
		f.States = []store.AlertState{store.AlertPending, store.AlertRaised, store.AlertAcknowledged}
	}
	n, ok := limitParam(r)
	if !ok {
		a.bad(w, "limit", "want 1 to 1000")
		return
	}
	f.Limit = n
	list, err := a.scopedAlerts(r, org, f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.audited(w, r, org, "alert.list", "alerts", "", map[string]string{"count": strconv.Itoa(len(list))}) {
		return
	}
	p := principalOf(r)
	out := make([]AlertJSON, len(list))
	for i, al := range list {
		out[i] = alertFor(p, al)
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": out})
}

// scopedAlerts lists alerts of org that the caller sees: everyone's, or
// only those of the people a worker or carer is limited to.
func (a *API) scopedAlerts(r *http.Request, org string, f store.AlertFilter) ([]store.Alert, error) {
	p := principalOf(r)
	if !p.Scoped(org) {
		return a.st.ListAlerts(r.Context(), f)
	}
	var out []store.Alert
	for _, person := range p.People(org) {
		if f.PersonID != "" && f.PersonID != person {
			continue
		}
		g := f
		g.PersonID = person
		l, err := a.st.ListAlerts(r.Context(), g)
		if err != nil {
			return nil, err
		}
		out = append(out, l...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RaisedAt.After(out[j].RaisedAt) })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// alertFor is the alert as the caller may see it: to the wearer (a
// worker), a duress alert looks cancelled, whoever holds their phone.
func alertFor(p *auth.Principal, al store.Alert) AlertJSON {
	v := AlertView(al)
	if al.Duress && p.Scoped(al.OrgID) && p.Role(al.OrgID) == store.RoleWorker {
		v.Duress = false
		v.State = string(store.AlertCancelled)
		v.AcknowledgedAt, v.AcknowledgedBy = nil, ""
		v.Timeline = nil
	}
	return v
}

// alertAs loads an alert and checks perm on it.
func (a *API) alertAs(w http.ResponseWriter, r *http.Request, perm auth.Permission) (store.Alert, bool) {
	al, err := a.st.GetAlert(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return store.Alert{}, false
	}
	if !a.allowFor(w, r, al.OrgID, al.PersonID, perm, "alert", al.ID) {
		return store.Alert{}, false
	}
	return al, true
}

func (a *API) getAlert(w http.ResponseWriter, r *http.Request) {
	al, ok := a.alertAs(w, r, auth.AlertsRead)
	if !ok || !a.audited(w, r, al.OrgID, "alert.read", "alert", al.ID, nil) {
		return
	}
	writeJSON(w, http.StatusOK, alertFor(principalOf(r), al))
}

type noteBody struct {
	Note string `json:"note"`
}

func (a *API) acknowledge(w http.ResponseWriter, r *http.Request) {
	var b noteBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	prev, ok := a.alertAs(w, r, auth.AlertsRespond)
	if !ok || !a.audited(w, r, prev.OrgID, "alert.acknowledge", "alert", prev.ID, nil) {
		return
	}
	al, err := a.alerts.Acknowledge(r.Context(), prev.ID, principalOf(r).Actor(), b.Note)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, alertFor(principalOf(r), al))
}

type resolveBody struct {
	Outcome string `json:"outcome"`
	Note    string `json:"note"`
}

func (a *API) resolve(w http.ResponseWriter, r *http.Request) {
	var b resolveBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	prev, ok := a.alertAs(w, r, auth.AlertsRespond)
	if !ok || !a.audited(w, r, prev.OrgID, "alert.resolve", "alert", prev.ID, nil) {
		return
	}
	al, err := a.alerts.Resolve(r.Context(), prev.ID, principalOf(r).Actor(), b.Outcome, b.Note)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, alertFor(principalOf(r), al))
}

type cancelBody struct {
	Code string `json:"code"`
}

// cancel is the wearer's cancel (worker app): the answer is what the
// wearer may see, so a duress code also answers "cancelled".
func (a *API) cancel(w http.ResponseWriter, r *http.Request) {
	var b cancelBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	prev, ok := a.alertAs(w, r, auth.AlertsCancel)
	if !ok || !a.audited(w, r, prev.OrgID, "alert.cancel", "alert", prev.ID, nil) {
		return
	}
	al, err := a.alerts.Cancel(r.Context(), prev.ID, principalOf(r).Actor(), b.Code)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, alertFor(principalOf(r), al))
}

// --- sessions ---------------------------------------------------------------

type startBody struct {
	PersonID        string   `json:"person_id"`
	DeviceID        string   `json:"device_id"`
	Preset          string   `json:"preset"`
	Duration        duration `json:"duration"`
	CheckinInterval duration `json:"checkin_interval"`
	Grace           duration `json:"grace"`
	Note            string   `json:"note"`
}

func (a *API) startSession(w http.ResponseWriter, r *http.Request) {
	var b startBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	p := principalOf(r)
	org := r.URL.Query().Get("org")
	if org == "" {
		if orgs := p.Orgs(); len(orgs) == 1 {
			org = orgs[0]
		}
	}
	if b.PersonID == "" && p.Role(org) == store.RoleWorker {
		b.PersonID = p.PersonID
	}
	if org != "" && !a.allowFor(w, r, org, b.PersonID, auth.SessionsWrite, "person", b.PersonID) {
		return
	}
	if org != "" && !a.audited(w, r, org, "session.start", "person", b.PersonID, nil) {
		return
	}
	res, err := a.eng.StartSession(r.Context(), safety.StartRequest{OrgID: org, PersonID: b.PersonID,
		DeviceID: b.DeviceID, Preset: b.Preset, Duration: time.Duration(b.Duration), CheckinInterval: time.Duration(b.CheckinInterval),
		Grace: time.Duration(b.Grace), Note: b.Note, By: p.Actor()})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	v := a.sessionOut(res.Session)
	v.Warnings = res.Warnings
	writeJSON(w, http.StatusCreated, v)
}

func (a *API) sessionOut(s store.Session) SessionJSON {
	return SessionView(s, safety.SessionDeadlines(s, 0).CheckinDue)
}

func (a *API) listSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, ok := limitParam(r)
	if !ok {
		a.bad(w, "limit", "want 1 to 1000")
		return
	}
	org, ok := a.orgParam(w, r, auth.SessionsRead)
	if !ok {
		return
	}
	f := store.SessionFilter{OrgID: org, PersonID: q.Get("person"), ActiveOnly: q.Get("active") == "true", Limit: n}
	var list []store.Session
	var err error
	if p := principalOf(r); p.Scoped(org) {
		for _, person := range p.People(org) {
			if f.PersonID != "" && f.PersonID != person {
				continue
			}
			g := f
			g.PersonID = person
			l, lerr := a.st.ListSessions(r.Context(), g)
			if lerr != nil {
				err = lerr
				break
			}
			list = append(list, l...)
		}
	} else {
		list, err = a.st.ListSessions(r.Context(), f)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.audited(w, r, org, "session.list", "sessions", "", map[string]string{"count": strconv.Itoa(len(list))}) {
		return
	}
	out := make([]SessionJSON, len(list))
	for i, s := range list {
		out[i] = a.sessionOut(s)
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

// sessionAs loads a session and checks perm on it, auditing the access.
func (a *API) sessionAs(w http.ResponseWriter, r *http.Request, perm auth.Permission, action string) (store.Session, bool) {
	s, err := a.st.GetSession(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return store.Session{}, false
	}
	if !a.allowFor(w, r, s.OrgID, s.PersonID, perm, "session", s.ID) || !a.audited(w, r, s.OrgID, action, "session", s.ID, nil) {
		return store.Session{}, false
	}
	return s, true
}

func (a *API) getSession(w http.ResponseWriter, r *http.Request) {
	s, ok := a.sessionAs(w, r, auth.SessionsRead, "session.read")
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, a.sessionOut(s))
}

func (a *API) checkIn(w http.ResponseWriter, r *http.Request) {
	var b struct{}
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	prev, ok := a.sessionAs(w, r, auth.SessionsWrite, "session.checkin")
	if !ok {
		return
	}
	s, err := a.eng.CheckIn(r.Context(), prev.ID, principalOf(r).Actor())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.sessionOut(s))
}

type extendBody struct {
	ExpectedEnd *time.Time `json:"expected_end"`
	By          duration   `json:"by"`
}

func (a *API) extend(w http.ResponseWriter, r *http.Request) {
	var b extendBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	prev, ok := a.sessionAs(w, r, auth.SessionsWrite, "session.extend")
	if !ok {
		return
	}
	var end time.Time
	switch {
	case b.ExpectedEnd != nil && b.By != 0:
		a.bad(w, "by", "give expected_end or by, not both")
		return
	case b.ExpectedEnd != nil:
		end = *b.ExpectedEnd
	case b.By > 0:
		end = prev.ExpectedEnd.Add(time.Duration(b.By))
	default:
		a.bad(w, "expected_end", "required (or a positive by)")
		return
	}
	s, err := a.eng.Extend(r.Context(), prev.ID, end, principalOf(r).Actor())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.sessionOut(s))
}

func (a *API) endSession(w http.ResponseWriter, r *http.Request) {
	var b struct{}
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	prev, ok := a.sessionAs(w, r, auth.SessionsWrite, "session.end")
	if !ok {
		return
	}
	s, err := a.eng.End(r.Context(), prev.ID, principalOf(r).Actor())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.sessionOut(s))
}

type presetJSON struct {
	Name             string  `json:"name"`
	DurationS        float64 `json:"duration_s"`
	CheckinIntervalS float64 `json:"checkin_interval_s"`
	GraceS           float64 `json:"grace_s"`
}

func (a *API) presets(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	if _, err := a.st.GetOrg(r.Context(), org); err != nil {
		a.fail(w, r, err)
		return
	}
	ps, err := a.eng.Presets(r.Context(), org)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]presetJSON, len(ps))
	for i, p := range ps {
		out[i] = presetJSON{Name: p.Name, DurationS: p.Duration.Seconds(), CheckinIntervalS: p.CheckinInterval.Seconds(), GraceS: p.Grace.Seconds()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"presets": out})
}

type presetBody struct {
	Duration        duration `json:"duration"`
	CheckinInterval duration `json:"checkin_interval"`
	Grace           duration `json:"grace"`
}

// putPreset creates or replaces one of an organisation's session presets
// (once an organisation has any, the built-in ones no longer apply).
func (a *API) putPreset(w http.ResponseWriter, r *http.Request) {
	org, name := r.PathValue("org"), r.PathValue("name")
	if _, err := a.st.GetOrg(r.Context(), org); err != nil {
		a.fail(w, r, err)
		return
	}
	var b presetBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	p := safety.Preset{Name: name, Duration: time.Duration(b.Duration), CheckinInterval: time.Duration(b.CheckinInterval), Grace: time.Duration(b.Grace)}
	if err := p.Validate(); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.st.PutSessionPreset(r.Context(), store.SessionPreset{OrgID: org, Name: p.Name, Duration: p.Duration,
		CheckinInterval: p.CheckinInterval, Grace: p.Grace}); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, presetJSON{Name: p.Name, DurationS: p.Duration.Seconds(), CheckinIntervalS: p.CheckinInterval.Seconds(), GraceS: p.Grace.Seconds()})
}

// --- zones ------------------------------------------------------------------

// importZones stores every fence of a GeoJSON document (all validated
// before any is written); a feature with an id replaces that zone.
func (a *API) importZones(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	if _, err := a.st.GetOrg(r.Context(), org); err != nil {
		a.fail(w, r, err)
		return
	}
	n, err := ImportZones(r.Context(), a.st, org, http.MaxBytesReader(w, r.Body, maxZoneBody), a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.eng.ReloadFences(r.Context(), org); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"imported": n})
}

func (a *API) listZones(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	if _, err := a.st.GetOrg(r.Context(), org); err != nil {
		a.fail(w, r, err)
		return
	}
	recs, err := a.st.ListGeofences(r.Context(), org)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeZones(w, r, recs)
}

func (a *API) getZone(w http.ResponseWriter, r *http.Request) {
	g, err := a.st.GetGeofence(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.allow(w, r, g.OrgID, auth.ZonesRead, "zone", g.ID) {
		return
	}
	a.writeZones(w, r, []store.GeofenceRecord{g})
}

func (a *API) writeZones(w http.ResponseWriter, r *http.Request, recs []store.GeofenceRecord) {
	fences, err := safety.FencesOf(recs)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	b, err := geofence.MarshalGeoJSON(fences)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/geo+json")
	_, _ = w.Write(b)
}

func (a *API) deleteZone(w http.ResponseWriter, r *http.Request) {
	g, err := a.st.GetGeofence(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.allow(w, r, g.OrgID, auth.ZonesWrite, "zone", g.ID) {
		return
	}
	if err := a.st.DeleteGeofence(r.Context(), g.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.eng.ReloadFences(r.Context(), g.OrgID); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
