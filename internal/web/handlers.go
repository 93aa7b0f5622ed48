package web

import (
	"net/http"
	"time"

	"vigil/internal/geofence"
	"vigil/internal/safety"
	"vigil/internal/store"
)

// --- alerts -----------------------------------------------------------------

func (a *API) listAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.AlertFilter{OrgID: q.Get("org"), PersonID: q.Get("person"), Kind: q.Get("kind")}
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
	list, err := a.st.ListAlerts(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]AlertJSON, len(list))
	for i, al := range list {
		out[i] = AlertView(al)
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": out})
}

func (a *API) getAlert(w http.ResponseWriter, r *http.Request) {
	al, err := a.st.GetAlert(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, AlertView(al))
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
	al, err := a.alerts.Acknowledge(r.Context(), r.PathValue("id"), actor, b.Note)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, AlertView(al))
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
	al, err := a.alerts.Resolve(r.Context(), r.PathValue("id"), actor, b.Outcome, b.Note)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, AlertView(al))
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
	al, err := a.alerts.Cancel(r.Context(), r.PathValue("id"), actor, b.Code)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, AlertView(al))
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
	res, err := a.eng.StartSession(r.Context(), safety.StartRequest{OrgID: r.URL.Query().Get("org"), PersonID: b.PersonID,
		DeviceID: b.DeviceID, Preset: b.Preset, Duration: time.Duration(b.Duration), CheckinInterval: time.Duration(b.CheckinInterval),
		Grace: time.Duration(b.Grace), Note: b.Note, By: actor})
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
	list, err := a.st.ListSessions(r.Context(), store.SessionFilter{OrgID: q.Get("org"), PersonID: q.Get("person"),
		ActiveOnly: q.Get("active") == "true", Limit: n})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]SessionJSON, len(list))
	for i, s := range list {
		out[i] = a.sessionOut(s)
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func (a *API) getSession(w http.ResponseWriter, r *http.Request) {
	s, err := a.st.GetSession(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
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
	s, err := a.eng.CheckIn(r.Context(), r.PathValue("id"), actor)
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
	var end time.Time
	switch {
	case b.ExpectedEnd != nil && b.By != 0:
		a.bad(w, "by", "give expected_end or by, not both")
		return
	case b.ExpectedEnd != nil:
		end = *b.ExpectedEnd
	case b.By > 0:
		s, err := a.st.GetSession(r.Context(), r.PathValue("id"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		end = s.ExpectedEnd.Add(time.Duration(b.By))
	default:
		a.bad(w, "expected_end", "required (or a positive by)")
		return
	}
	s, err := a.eng.Extend(r.Context(), r.PathValue("id"), end, actor)
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
	s, err := a.eng.End(r.Context(), r.PathValue("id"), actor)
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
