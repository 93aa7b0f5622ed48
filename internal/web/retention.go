package web

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"vigil/internal/audit"
	"vigil/internal/auth"
	"vigil/internal/retention"
	"vigil/internal/store"
)

// retentionRoutes are the retention API routes (see Routes): an
// organisation's retention period per class of personal data. Reading
// needs audit.read (every role holding org.settings holds it too);
// changing needs org.settings and is audited with high severity.
var retentionRoutes = []Route{
	{"GET /api/v1/orgs/{org}/retention", OrgPerm, auth.AuditRead, func(a *API) http.HandlerFunc { return a.getRetention }},
	{"PUT /api/v1/orgs/{org}/retention", OrgPerm, auth.OrgSettings, func(a *API) http.HandlerFunc { return a.putRetention }},
}

// retentionStore is what the retention routes need of the directory; the
// app's store offers it.
type retentionStore interface {
	GetRetention(ctx context.Context, orgID string) (store.RetentionPolicy, error)
	SetRetention(ctx context.Context, p store.RetentionPolicy) error
}

// Compile-time check: the app's store is a retentionStore.
var _ = func(s store.Store) retentionStore { return s }

// retentionBody sets every period in whole days; 0 or absent is the
// default. A PUT replaces the whole policy.
type retentionBody struct {
	PositionsDays int `json:"positions_days"`
	EventsDays    int `json:"events_days"`
	AlertsDays    int `json:"alerts_days"`
	AuditDays     int `json:"audit_days"`
}

// retentionJSON is the effective policy: the periods in force, which of
// them are the defaults, and the bounds a PUT must respect.
type retentionJSON struct {
	OrgID         string                    `json:"org_id"`
	PositionsDays int                       `json:"positions_days"`
	EventsDays    int                       `json:"events_days"`
	AlertsDays    int                       `json:"alerts_days"`
	AuditDays     int                       `json:"audit_days"`
	Defaults      []string                  `json:"defaults"` // classes at their default period
	Bounds        map[string]retentionBound `json:"bounds"`
	UpdatedAt     *time.Time                `json:"updated_at,omitempty"`
	UpdatedBy     string                    `json:"updated_by,omitempty"`
}

type retentionBound struct {
	MinDays int `json:"min_days"`
	MaxDays int `json:"max_days"`
}

func days(d time.Duration) int { return int(d / retention.Day) }

func retentionOut(p store.RetentionPolicy) retentionJSON {
	eff := retention.Effective(p)
	out := retentionJSON{OrgID: p.OrgID, PositionsDays: days(eff.Positions), EventsDays: days(eff.Events),
		AlertsDays: days(eff.Alerts), AuditDays: days(eff.Audit), Defaults: []string{}, Bounds: map[string]retentionBound{},
		UpdatedBy: p.UpdatedBy}
	for _, c := range retention.Classes {
		if retention.Period(p, c) == 0 {
			out.Defaults = append(out.Defaults, string(c))
		}
		b := retention.BoundOf(c)
		out.Bounds[string(c)] = retentionBound{MinDays: days(b.Min), MaxDays: days(b.Max)}
	}
	if !p.UpdatedAt.IsZero() {
		t := p.UpdatedAt.UTC()
		out.UpdatedAt = &t
	}
	return out
}

func (a *API) retentionStore(w http.ResponseWriter) (retentionStore, bool) {
	rs, ok := a.dir.(retentionStore)
	if !ok || rs == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "retention settings are not available")
		return nil, false
	}
	return rs, true
}

func (a *API) getRetention(w http.ResponseWriter, r *http.Request) {
	rs, ok := a.retentionStore(w)
	if !ok {
		return
	}
	p, err := rs.GetRetention(r.Context(), r.PathValue("org"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, retentionOut(p))
}

func (a *API) putRetention(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	var b retentionBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	p := store.RetentionPolicy{OrgID: org, UpdatedBy: principalOf(r).Actor()}
	for _, f := range []struct {
		c retention.Class
		n int
		d *time.Duration
	}{
		{retention.Positions, b.PositionsDays, &p.Positions},
		{retention.Events, b.EventsDays, &p.Events},
		{retention.Alerts, b.AlertsDays, &p.Alerts},
		{retention.Audit, b.AuditDays, &p.Audit},
	} {
		bd := retention.BoundOf(f.c)
		if f.n < 0 || f.n > days(bd.Max) || f.n != 0 && f.n < days(bd.Min) {
			a.bad(w, string(f.c)+"_days", "must be 0 (the default) or between "+strconv.Itoa(days(bd.Min))+" and "+strconv.Itoa(days(bd.Max))+" days")
			return
		}
		*f.d = time.Duration(f.n) * retention.Day
	}
	// The bounds again, as the purger reads them: a safety net.
	var fe *retention.FieldError
	if err := retention.Validate(p); errors.As(err, &fe) {
		a.bad(w, string(fe.Class)+"_days", fe.Msg)
		return
	}
	rs, ok := a.retentionStore(w)
	if !ok {
		return
	}
	if a.now != nil {
		p.UpdatedAt = a.now().UTC()
	} else {
		p.UpdatedAt = time.Now().UTC()
	}
	// Recorded before the change: a policy that deletes data is never in
	// force unaudited.
	if a.audit != nil {
		err := a.audit.Record(r.Context(), audit.Entry{OrgID: org, Actor: principalOf(r).Actor(), SourceIP: clientIP(r),
			Action: "org.retention", ObjectType: "org", ObjectID: org, Outcome: "ok", Severity: "high",
			Details: map[string]string{
				"positions_days": strconv.Itoa(b.PositionsDays), "events_days": strconv.Itoa(b.EventsDays),
				"alerts_days": strconv.Itoa(b.AlertsDays), "audit_days": strconv.Itoa(b.AuditDays),
			}})
		if err != nil {
			a.log.Error("audit log unavailable; retention not changed", "org_id", org, "err", err)
			writeError(w, http.StatusServiceUnavailable, "audit_unavailable", "", "the audit log is unavailable; try again shortly")
			return
		}
	}
	if err := rs.SetRetention(r.Context(), p); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, retentionOut(p))
}
