package web

import (
	"context"
	"net/http"
	"time"

	"vigil/internal/audit"
	"vigil/internal/auth"
	"vigil/internal/enrol"
)

// Enroller issues device enrolment tokens (internal/enrol).
type Enroller interface {
	NewToken(ctx context.Context, deviceID string, ttl time.Duration) (enrol.Token, error)
}

// SetEnroller lets admins issue enrolment tokens through the API.
func (a *API) SetEnroller(e Enroller) { a.enroller = e }

type enrolTokenBody struct {
	TTL duration `json:"ttl"`
}

// enrolToken issues a single-use enrolment token for a device of the
// caller's organisation (shown once; the device exchanges it with a CSR
// for its client certificate at POST /api/v1/enrol).
func (a *API) enrolToken(w http.ResponseWriter, r *http.Request) {
	d, err := a.dir.GetDevice(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.allow(w, r, d.OrgID, auth.DevicesWrite, "device", d.ID) {
		return
	}
	var b enrolTokenBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if b.TTL < 0 || time.Duration(b.TTL) > enrol.MaxTokenTTL {
		a.bad(w, "ttl", "want a duration up to "+enrol.MaxTokenTTL.String())
		return
	}
	if !d.DisabledAt.IsZero() {
		writeError(w, http.StatusConflict, "device_disabled", "", "the device is disabled")
		return
	}
	if a.enroller == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "enrolment is not running")
		return
	}
	if a.audit != nil {
		if err := a.audit.Record(r.Context(), audit.Entry{OrgID: d.OrgID, Actor: principalOf(r).Actor(), SourceIP: clientIP(r),
			Action: "device.enrol_token", ObjectType: "device", ObjectID: d.ID, Outcome: "ok", Severity: "high"}); err != nil {
			writeError(w, http.StatusServiceUnavailable, "audit_unavailable", "", "the audit log is unavailable; try again shortly")
			return
		}
	}
	t, err := a.enroller.NewToken(r.Context(), d.ID, time.Duration(b.TTL))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}
