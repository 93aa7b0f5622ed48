package web

import (
	"errors"
	"net/http"
	"time"

	"vigil/internal/audit"
	"vigil/internal/auth"
	"vigil/internal/device"
	"vigil/internal/store"
)

// deviceAdminRoutes are API routes of this family (see Routes): an admin
// registers a device and receives its credentials once.
var deviceAdminRoutes = []Route{
	{"POST /api/v1/orgs/{org}/devices", OrgPerm, auth.DevicesWrite, func(a *API) http.HandlerFunc { return a.registerDevice }},
}

// deviceStore is what registering a device needs of the directory: the
// store behind it offers it (device.Registry's own Store), so the API
// registers exactly as `vigil device add` does.
type deviceStore = device.Store

// clockFunc adapts the API's now to a clock.
type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

// registry is the device registry over the API's directory, nil when the
// directory cannot create devices.
func (a *API) registry() *device.Registry {
	ds, ok := a.dir.(deviceStore)
	if !ok || ds == nil {
		return nil
	}
	now := a.now
	if now == nil {
		now = time.Now
	}
	return device.NewRegistry(ds, clockFunc(now))
}

type registerDeviceBody struct {
	Name     string `json:"name"`
	PersonID string `json:"person_id"`
}

// registeredDeviceJSON is a new device with its credentials: the secret is
// in this one answer only (the store keeps its hash).
type registeredDeviceJSON struct {
	DeviceID     string `json:"device_id"`
	Secret       string `json:"secret"`
	OrgID        string `json:"org_id"`
	Name         string `json:"name"`
	PersonID     string `json:"person_id,omitempty"`
	MQTTUsername string `json:"mqtt_username"`
	MQTTClientID string `json:"mqtt_client_id"`
}

// registerDevice registers a device in the path's organisation with a
// random id and secret (stored only as a hash), optionally assigned to a
// person of the organisation, and answers the credentials once. The
// registration is audited with high severity, as an enrolment token is.
func (a *API) registerDevice(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	var b registerDeviceBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if m := checkText(b.Name, 100, true, false); m != "" {
		a.bad(w, "name", m)
		return
	}
	ctx := r.Context()
	if b.PersonID != "" {
		if m := checkText(b.PersonID, 128, false, false); m != "" {
			a.bad(w, "person_id", m)
			return
		}
		p, err := a.dir.GetPerson(ctx, b.PersonID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && p.OrgID != org) {
			a.bad(w, "person_id", "no such person in this organisation")
			return
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if !a.allowFor(w, r, org, p.ID, auth.DevicesWrite, "person", p.ID) {
			return
		}
	}
	reg := a.registry()
	if reg == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "device registration is not running")
		return
	}
	creds, err := reg.Register(ctx, org, b.Name)
	switch {
	case errors.Is(err, device.ErrInvalidName):
		a.bad(w, "name", "want 1 to 100 printable characters")
		return
	case errors.Is(err, device.ErrInvalidOrg), errors.Is(err, device.ErrUnknownOrg):
		dirNotFound(w)
		return
	case err != nil:
		a.fail(w, r, err)
		return
	}
	// Recorded once the id exists. Should the log be down, the device
	// stays without anyone knowing its secret: it cannot connect, and the
	// caller is told to try again.
	if a.audit != nil {
		details := map[string]string{"via": "api"}
		if b.PersonID != "" {
			details["person_id"] = b.PersonID
		}
		if err := a.audit.Record(ctx, audit.Entry{OrgID: org, Actor: principalOf(r).Actor(), SourceIP: clientIP(r),
			Action: "device.register", ObjectType: "device", ObjectID: creds.DeviceID, Outcome: "ok", Severity: "high",
			Details: details}); err != nil {
			writeError(w, http.StatusServiceUnavailable, "audit_unavailable", "", "the audit log is unavailable; try again shortly")
			return
		}
	}
	if b.PersonID != "" {
		if err := a.dir.AssignDevice(ctx, creds.DeviceID, b.PersonID); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, registeredDeviceJSON{DeviceID: creds.DeviceID, Secret: creds.Secret, OrgID: org,
		Name: b.Name, PersonID: b.PersonID, MQTTUsername: creds.DeviceID, MQTTClientID: creds.DeviceID})
}

// Compile-time check: the registry's store is what the app's store is.
var _ = func(s store.Store) deviceStore { return s }
