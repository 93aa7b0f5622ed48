package web

import (
	"context"
	"net/http"
	"time"

	"vigil/internal/audit"
	"vigil/internal/auth"
)

// revokeRoutes: an admin revokes a device (security requirement 7).
var revokeRoutes = []Route{
	{"POST /api/v1/devices/{id}/revoke", ObjPerm, auth.DevicesWrite, func(a *API) http.HandlerFunc { return a.revokeDevice }},
	{"POST /api/v1/devices/{id}/release", ObjPerm, auth.DevicesWrite, func(a *API) http.HandlerFunc { return a.releaseDevice }},
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
	d, err := a.dir.GetDevice(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.allow(w, r, d.OrgID, auth.DevicesWrite, "device", d.ID) {
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
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "device revocation is not running")
		return
	}
	if a.audit != nil {
		if err := a.audit.Record(r.Context(), audit.Entry{OrgID: d.OrgID, Actor: principalOf(r).Actor(), SourceIP: clientIP(r),
			Action: "device.revoke", ObjectType: "device", ObjectID: d.ID, Outcome: "ok", Severity: "high",
			Details: map[string]string{"reason": b.Reason}}); err != nil {
			writeError(w, http.StatusServiceUnavailable, "audit_unavailable", "", "the audit log is unavailable; try again shortly")
			return
		}
	}
	at, closed, err := a.revoker.RevokeDevice(r.Context(), d.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device_id": d.ID, "revoked_at": at.UTC(), "connection_closed": closed})
}

// releaseDevice lifts a device's quarantine after an admin looked into
// why it was flagged (the reason is in the device list and the audit
// log). Audited with high severity, with the admin's note.
func (a *API) releaseDevice(w http.ResponseWriter, r *http.Request) {
	d, err := a.dir.GetDevice(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.allow(w, r, d.OrgID, auth.DevicesWrite, "device", d.ID) {
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
	if d.Quarantine.At.IsZero() {
		writeError(w, http.StatusConflict, "not_quarantined", "", "the device is not quarantined")
		return
	}
	if a.revoker == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "device quarantine is not running")
		return
	}
	if a.audit != nil {
		if err := a.audit.Record(r.Context(), audit.Entry{OrgID: d.OrgID, Actor: principalOf(r).Actor(), SourceIP: clientIP(r),
			Action: "device.release", ObjectType: "device", ObjectID: d.ID, Outcome: "ok", Severity: "high",
			Details: map[string]string{"reason": b.Reason, "quarantine_reason": d.Quarantine.Reason}}); err != nil {
			writeError(w, http.StatusServiceUnavailable, "audit_unavailable", "", "the audit log is unavailable; try again shortly")
			return
		}
	}
	if err := a.revoker.ReleaseDevice(r.Context(), d.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device_id": d.ID, "released": true})
}
