package web

import (
	"context"
	"net/http"
	"strings"
	"time"

	"vigil/internal/audit"
	"vigil/internal/auth"
	"vigil/internal/store"
)

// revokeRoutes: an admin revokes a device (security requirement 7).
var revokeRoutes = []Route{
	{"POST /api/v1/devices/{id}/revoke", ObjPerm, auth.DevicesWrite, func(a *API) http.HandlerFunc { return a.revokeDevice }},
	{"POST /api/v1/devices/{id}/release", ObjPerm, auth.DevicesWrite, func(a *API) http.HandlerFunc { return a.releaseDevice }},
	{"POST /api/v1/people/{id}/leave", ObjPerm, auth.DevicesWrite, func(a *API) http.HandlerFunc { return a.personLeaves }},
}

// DeviceRevoker disables a device and cuts its live connections
// (internal/app): its certificate is refused from the next handshake on.
// closed reports whether a live connection on this instance was closed.
type DeviceRevoker interface {
	RevokeDevice(ctx context.Context, deviceID string) (at time.Time, closed bool, err error)
	// ReleaseDevice lifts a device's quarantine (commands reach it again).
	ReleaseDevice(ctx context.Context, deviceID string) error
}

// SetDeviceRevoker lets admins revoke devices through the API.
func (a *API) SetDeviceRevoker(r DeviceRevoker) { a.revoker = r }

type revokeBody struct {
	Reason string `json:"reason"`
}

// revokeDevice disables a device of the caller's organisation for good:
// its secret and certificate stop working at once and a live MQTT
// connection is closed. Audited with high severity, with the reason.
// Revoking an already revoked device answers its first revocation time.
func (a *API) revokeDevice(w http.ResponseWriter, r *http.Request) {
	d, reason, ok := a.deviceAction(w, r)
	if !ok || !a.auditedHigh(w, r, d, "device.revoke", map[string]string{"reason": reason}) {
		return
	}
	at, closed, err := a.revoker.RevokeDevice(r.Context(), d.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device_id": d.ID, "revoked_at": at.UTC(), "connection_closed": closed})
}

// deviceAction is the common part of revoking and releasing: the device
// of the caller's organisation (devices.write), the admin's reason, and
// the revoker running. ok false: answered.
func (a *API) deviceAction(w http.ResponseWriter, r *http.Request) (store.Device, string, bool) {
	d, err := a.dir.GetDevice(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return store.Device{}, "", false
	}
	if !a.allow(w, r, d.OrgID, auth.DevicesWrite, "device", d.ID) {
		return store.Device{}, "", false
	}
	var b revokeBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return store.Device{}, "", false
	}
	if m := checkText(b.Reason, 500, true, true); m != "" {
		a.bad(w, "reason", m)
		return store.Device{}, "", false
	}
	if a.revoker == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "device trust is not running")
		return store.Device{}, "", false
	}
	return d, b.Reason, true
}

// auditedHigh records a device-trust action before it is taken (fail
// closed: no record, no action).
func (a *API) auditedHigh(w http.ResponseWriter, r *http.Request, d store.Device, action string, details map[string]string) bool {
	return a.auditedHighOn(w, r, d.OrgID, "device", d.ID, action, details)
}

// auditedHighOn is auditedHigh for any kind of object.
func (a *API) auditedHighOn(w http.ResponseWriter, r *http.Request, orgID, objectType, objectID, action string, details map[string]string) bool {
	if a.audit == nil {
		return true
	}
	if err := a.audit.Record(r.Context(), audit.Entry{OrgID: orgID, Actor: principalOf(r).Actor(), SourceIP: clientIP(r),
		Action: action, ObjectType: objectType, ObjectID: objectID, Outcome: "ok", Severity: "high", Details: details}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "audit_unavailable", "", "the audit log is unavailable; try again shortly")
		return false
	}
	return true
}

// releaseDevice lifts a device's quarantine after an admin looked into
// why it was flagged (the reason is in the device list and the audit
// log). Audited with high severity, with the admin's note.
func (a *API) releaseDevice(w http.ResponseWriter, r *http.Request) {
	d, reason, ok := a.deviceAction(w, r)
	if !ok {
		return
	}
	if d.Quarantine.At.IsZero() {
		writeError(w, http.StatusConflict, "not_quarantined", "", "the device is not quarantined")
		return
	}
	if !a.auditedHigh(w, r, d, "device.release", map[string]string{"reason": reason, "quarantine_reason": d.Quarantine.Reason}) {
		return
	}
	if err := a.revoker.ReleaseDevice(r.Context(), d.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device_id": d.ID, "released": true})
}

// personLeaves is a person leaving the service (a worker who leaves the
// provider, a resident who moves out): every device assigned to them is
// revoked at once, as revokeDevice does — its secret and certificate stop
// working and a live connection is closed — and unassigned. Audited with
// high severity, with the reason, before anything is done. The person's
// records stay (erasure is its own, separate step).
func (a *API) personLeaves(w http.ResponseWriter, r *http.Request) {
	p, ok := a.personAs(w, r, auth.DevicesWrite)
	if !ok {
		return
	}
	var b revokeBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if m := checkText(b.Reason, 500, true, true); m != "" {
		a.bad(w, "reason", m)
		return
	}
	if a.revoker == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "device trust is not running")
		return
	}
	devs, err := a.dir.ListDevices(r.Context(), p.OrgID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var ids []string
	for _, d := range devs {
		if d.PersonID == p.ID {
			ids = append(ids, d.ID)
		}
	}
	if !a.auditedHighOn(w, r, p.OrgID, "person", p.ID, "person.leave",
		map[string]string{"reason": b.Reason, "devices": strings.Join(ids, " ")}) {
		return
	}
	type revoked struct {
		DeviceID string    `json:"device_id"`
		At       time.Time `json:"revoked_at"`
		Closed   bool      `json:"connection_closed"`
	}
	out := []revoked{}
	for _, id := range ids {
		at, closed, err := a.revoker.RevokeDevice(r.Context(), id)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if err := a.dir.AssignDevice(r.Context(), id, ""); err != nil {
			a.fail(w, r, err)
			return
		}
		out = append(out, revoked{DeviceID: id, At: at.UTC(), Closed: closed})
	}
	writeJSON(w, http.StatusOK, map[string]any{"person_id": p.ID, "revoked": out})
}
