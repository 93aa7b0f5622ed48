package web

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"vigil/internal/store"
)

// --- devices ----------------------------------------------------------------

// deviceJSON is a device as the console lists it: never its secret hash
// or certificate fingerprint, never its position.
type deviceJSON struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	PersonID string     `json:"person_id,omitempty"`
	Firmware string     `json:"firmware,omitempty"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
	Battery  *int       `json:"battery,omitempty"`
	Disabled bool       `json:"disabled"`
	// Quarantine says why the device was flagged for misbehaving
	// (commands to it are blocked; its alarms still get through).
	Quarantine *quarantineJSON `json:"quarantine,omitempty"`
}

type quarantineJSON struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	ds, err := a.dir.ListDevices(r.Context(), org)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p := principalOf(r)
	if p.Scoped(org) {
		ds = slices.DeleteFunc(ds, func(d store.Device) bool { return !p.SeesPerson(org, d.PersonID) })
	}
	if !a.audited(w, r, org, "device.list", "devices", "", map[string]string{"count": strconv.Itoa(len(ds))}) {
		return
	}
	out := make([]deviceJSON, 0, len(ds))
	for _, d := range ds {
		if d.OrgID != org {
			continue
		}
		v := deviceJSON{ID: d.ID, Name: d.Name, PersonID: d.PersonID, Firmware: d.Firmware, Battery: d.State.Battery,
			Disabled: !d.DisabledAt.IsZero()}
		if !d.State.LastSeen.IsZero() {
			v.LastSeen = tptr(d.State.LastSeen.UTC())
		}
		if !d.Quarantine.At.IsZero() {
			v.Quarantine = &quarantineJSON{Reason: d.Quarantine.Reason, Since: d.Quarantine.At.UTC()}
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
}

// --- teams ------------------------------------------------------------------

type teamJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Members   []string  `json:"members"` // user ids
}

func teamOut(t store.Team) teamJSON {
	return teamJSON{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt.UTC(), Members: nonNil(t.Members)}
}

func (a *API) listTeams(w http.ResponseWriter, r *http.Request) {
	ts, err := a.dir.ListTeams(r.Context(), r.PathValue("org"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]teamJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, teamOut(t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"teams": out})
}

type teamBody struct {
	Name string `json:"name"`
}

func (a *API) createTeam(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	var b teamBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if m := checkText(b.Name, 200, true, false); m != "" {
		a.bad(w, "name", m)
		return
	}
	t := store.Team{ID: newDirID("t_"), OrgID: org, Name: b.Name, CreatedAt: a.now().UTC()}
	if !a.audited(w, r, org, "team.create", "team", t.ID, nil) {
		return
	}
	if err := a.dir.CreateTeam(r.Context(), t); err != nil {
		if errors.Is(err, store.ErrConflict) {
			writeError(w, http.StatusConflict, "conflict", "name", "the organisation has a team of that name")
			return
		}
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, teamOut(t))
}

// teamOf loads the path's team, which must belong to the path's
// organisation (else 404).
func (a *API) teamOf(w http.ResponseWriter, r *http.Request) (store.Team, bool) {
	t, err := a.dir.GetTeam(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return store.Team{}, false
	}
	if t.OrgID != r.PathValue("org") {
		dirNotFound(w)
		return store.Team{}, false
	}
	return t, true
}

func (a *API) deleteTeam(w http.ResponseWriter, r *http.Request) {
	t, ok := a.teamOf(w, r)
	if !ok || !a.audited(w, r, t.OrgID, "team.delete", "team", t.ID, nil) {
		return
	}
	if err := a.dir.DeleteTeam(r.Context(), t.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// addTeamMember adds a member of the organisation to one of its teams
// (already a member: no change).
func (a *API) addTeamMember(w http.ResponseWriter, r *http.Request) {
	t, ok := a.teamOf(w, r)
	if !ok {
		return
	}
	user := r.PathValue("user")
	ms, err := a.dir.ListMemberships(r.Context(), user)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.fail(w, r, err)
		return
	}
	if !slices.ContainsFunc(ms, func(m store.Membership) bool { return m.OrgID == t.OrgID }) {
		dirNotFound(w)
		return
	}
	if !a.audited(w, r, t.OrgID, "team.member.add", "team", t.ID, map[string]string{"user_id": user}) {
		return
	}
	if err := a.dir.AddTeamMember(r.Context(), t.ID, user); err != nil {
		a.fail(w, r, err)
		return
	}
	if t, err = a.dir.GetTeam(r.Context(), t.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, teamOut(t))
}

// removeTeamMember takes a user off a team; someone not on it is 404. The
// user need not be a member of the organisation any more, so a team left
// with someone who has since left can be tidied.
func (a *API) removeTeamMember(w http.ResponseWriter, r *http.Request) {
	t, ok := a.teamOf(w, r)
	if !ok {
		return
	}
	user := r.PathValue("user")
	if !slices.Contains(t.Members, user) {
		dirNotFound(w)
		return
	}
	if !a.audited(w, r, t.OrgID, "team.member.remove", "team", t.ID, map[string]string{"user_id": user}) {
		return
	}
	if err := a.dir.RemoveTeamMember(r.Context(), t.ID, user); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- the audit log ----------------------------------------------------------

type auditJSON struct {
	Seq        int64           `json:"seq"`
	At         time.Time       `json:"at"`
	OrgID      string          `json:"org_id"`
	Actor      string          `json:"actor"`
	SourceIP   string          `json:"source_ip,omitempty"`
	Action     string          `json:"action"`
	ObjectType string          `json:"object_type,omitempty"`
	ObjectID   string          `json:"object_id,omitempty"`
	Outcome    string          `json:"outcome"`
	Severity   string          `json:"severity"`
	Details    json.RawMessage `json:"details"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
}

// auditDetails is a record's details as a JSON object: {} when there are
// none, the text as a JSON string should it not be JSON (it always is
// when internal/audit wrote it).
func auditDetails(s string) json.RawMessage {
	if s == "" {
		return json.RawMessage(`{}`)
	}
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}

const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// browseAudit pages through the organisation's audit entries, oldest
// first: ?after=SEQ continues after the last one seen (next_after). Only
// the path's organisation's entries, never another's nor those outside
// any organisation; the browse is itself audited.
func (a *API) browseAudit(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	if org == "" {
		dirNotFound(w) // an empty OrgID would list every organisation's entries
		return
	}
	q := r.URL.Query()
	f := store.AuditFilter{OrgID: org, Actor: q.Get("actor"), Action: q.Get("action"), Limit: defaultAuditLimit}
	if m := checkText(f.Actor, 200, false, false); m != "" {
		a.bad(w, "actor", m)
		return
	}
	if m := checkText(f.Action, 200, false, false); m != "" {
		a.bad(w, "action", m)
		return
	}
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			a.bad(w, "after", "want a sequence number, 0 or more")
			return
		}
		f.AfterSeq = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxAuditLimit {
			a.bad(w, "limit", "want 1 to "+strconv.Itoa(maxAuditLimit))
			return
		}
		f.Limit = n
	}
	recs, err := a.dir.ListAudit(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]auditJSON, 0, len(recs))
	next := f.AfterSeq
	for _, rec := range recs {
		next = max(next, rec.Seq)
		if rec.OrgID != org {
			continue // the filter already says so; never trust one line
		}
		out = append(out, auditJSON{Seq: rec.Seq, At: rec.At.UTC(), OrgID: rec.OrgID, Actor: rec.Actor, SourceIP: rec.SourceIP,
			Action: rec.Action, ObjectType: rec.ObjectType, ObjectID: rec.ObjectID, Outcome: rec.Outcome, Severity: rec.Severity,
			Details: auditDetails(rec.Details), PrevHash: hex.EncodeToString(rec.PrevHash), Hash: hex.EncodeToString(rec.Hash)})
	}
	details := map[string]string{"count": strconv.Itoa(len(out)), "after": strconv.FormatInt(f.AfterSeq, 10)}
	if f.Actor != "" {
		details["actor"] = f.Actor
	}
	if f.Action != "" {
		details["action"] = f.Action
	}
	if !a.audited(w, r, org, "audit.read", "audit", org, details) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out, "next_after": next})
}
