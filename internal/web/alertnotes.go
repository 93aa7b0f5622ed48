package web

import (
	"context"
	"net/http"

	"vigil/internal/auth"
	"vigil/internal/store"
)

// alertNoteRoutes are API routes of this family (see Routes).
var alertNoteRoutes = []Route{
	{"POST /api/v1/alerts/{id}/notes", ObjPerm, auth.AlertsRespond, func(a *API) http.HandlerFunc { return a.addAlertNote }},
}

// maxAlertNote bounds a responder's note on an alert, in characters.
const maxAlertNote = 2000

// ActionNote is the timeline action of a responder's note.
const ActionNote = "note"

// AlertNoteStore appends a note to an alert's timeline (the store's
// AddAlertEntry). The API finds it on its Store: the real store has it.
type AlertNoteStore interface {
	AddAlertEntry(ctx context.Context, alertID string, e store.AlertEntry) (bool, error)
}

// addAlertNote appends a responder's note to an alert's timeline, with
// the caller as actor, in any state (a note after the outcome is part of
// the record too). The permission is checked before the body's content,
// so a caller without it learns nothing from a validation error.
func (a *API) addAlertNote(w http.ResponseWriter, r *http.Request) {
	var b noteBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	prev, ok := a.alertAs(w, r, auth.AlertsRespond)
	if !ok {
		return
	}
	if m := checkText(b.Note, maxAlertNote, true, true); m != "" {
		a.bad(w, "note", m)
		return
	}
	ns, ok := a.st.(AlertNoteStore)
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "notes are not available")
		return
	}
	if !a.audited(w, r, prev.OrgID, "alert.note", "alert", prev.ID, nil) {
		return
	}
	p := principalOf(r)
	if _, err := ns.AddAlertEntry(r.Context(), prev.ID, store.AlertEntry{At: a.now().UTC(), Actor: p.Actor(), Action: ActionNote, Detail: b.Note}); err != nil {
		a.fail(w, r, err)
		return
	}
	al, err := a.st.GetAlert(r.Context(), prev.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, alertFor(p, al))
}
