package web

import (
	"context"
	"net/http"
	"strings"
	"time"

	"vigil/internal/audit"
	"vigil/internal/device"
	"vigil/internal/store"
)

// pairingRoutes are API routes of this family (see Routes).
//
// POST /api/v1/me/device pairs the caller's phone: a worker signed in to
// the worker app (/app) gets a new device of their organisation, assigned
// to their own person, and its credentials once. Signed: the handler
// decides (the caller must be a worker of the organisation named in the
// body, linked to a person there).
var pairingRoutes = []Route{
	{"POST /api/v1/me/device", Signed, "", func(a *API) http.HandlerFunc { return a.pairDevice }},
}

// Pairer registers a device for a person: a new device of org assigned to
// personID, its secret kept only as a hash. The secret is returned once.
type Pairer interface {
	PairDevice(ctx context.Context, orgID, personID, name string) (deviceID, secret string, err error)
}

// pairingStore is what pairing needs of the directory: device.Registry's
// store (the real store has it) and the assignment of a device.
type pairingStore interface {
	device.Store
	AssignDevice(ctx context.Context, deviceID, personID string) error
}

// pairingClock adapts the API's now to a clock.
type pairingClock func() time.Time

func (f pairingClock) Now() time.Time { return f() }

// registryPairer pairs through device.Registry, exactly as `vigil device
// add` and `vigil device assign` register and assign a device.
type registryPairer struct {
	st  pairingStore
	reg *device.Registry
}

func (p registryPairer) PairDevice(ctx context.Context, orgID, personID, name string) (string, string, error) {
	creds, err := p.reg.Register(ctx, orgID, name)
	if err != nil {
		return "", "", err
	}
	if err := p.st.AssignDevice(ctx, creds.DeviceID, personID); err != nil {
		return "", "", err
	}
	return creds.DeviceID, creds.Secret, nil
}

// pairer is the API's Pairer: the device registry over its directory
// (nil when the directory cannot create devices).
func (a *API) pairer() Pairer {
	ps, ok := a.dir.(pairingStore)
	if !ok || ps == nil {
		return nil
	}
	now := a.now
	if now == nil {
		now = time.Now
	}
	return registryPairer{st: ps, reg: device.NewRegistry(ps, pairingClock(now))}
}

type pairBody struct {
	Org  string `json:"org"`
	Name string `json:"name"`
}

// pairDevice makes the caller's phone a device of their own person.
func (a *API) pairDevice(w http.ResponseWriter, r *http.Request) {
	var b pairBody
	if f, m, ok := decode(w, r, 8<<10, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if b.Org == "" {
		a.bad(w, "org", "required")
		return
	}
	b.Name = strings.TrimSpace(b.Name)
	if b.Name == "" {
		b.Name = "Worker app"
	}
	if len([]rune(b.Name)) > 100 || strings.ContainsFunc(b.Name, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		a.bad(w, "name", "want 1-100 printable characters")
		return
	}
	p := principalOf(r)
	if !p.Member(b.Org) {
		a.denied(r, p, b.Org, "org", b.Org, "device.pair")
		writeError(w, http.StatusNotFound, "not_found", "", "no such object")
		return
	}
	if p.TokenID != "" || p.Role(b.Org) != store.RoleWorker || p.PersonID == "" {
		a.denied(r, p, b.Org, "org", b.Org, "device.pair")
		writeError(w, http.StatusForbidden, "forbidden", "", "only a worker linked to a person pairs a phone")
		return
	}
	if a.dir == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "pairing is not running")
		return
	}
	per, err := a.dir.GetPerson(r.Context(), p.PersonID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if per.OrgID != b.Org {
		a.denied(r, p, b.Org, "person", p.PersonID, "device.pair")
		writeError(w, http.StatusForbidden, "forbidden", "", "your person is not in this organisation")
		return
	}
	pairer := a.pairer()
	if pairer == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "pairing is not running")
		return
	}
	id, secret, err := pairer.PairDevice(r.Context(), b.Org, per.ID, b.Name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.audit != nil {
		// The device exists but its secret is not yet shown: without the
		// audit entry the secret is never revealed (fail closed).
		if err := a.audit.Record(r.Context(), audit.Entry{OrgID: b.Org, Actor: p.Actor(), SourceIP: clientIP(r),
			Action: "device.pair", ObjectType: "device", ObjectID: id, Outcome: "ok", Severity: "high",
			Details: map[string]string{"person_id": per.ID}}); err != nil {
			a.log.Error("audit log unavailable; pairing refused", "device_id", id, "err", err)
			writeError(w, http.StatusServiceUnavailable, "audit_unavailable", "", "the audit log is unavailable; try again shortly")
			return
		}
	}
	writeJSON(w, http.StatusCreated, map[string]string{"device_id": id, "secret": secret, "org": b.Org, "person_id": per.ID})
}
