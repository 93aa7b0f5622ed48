package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"vigil/internal/alert"
	"vigil/internal/audit"
	"vigil/internal/auth"
	"vigil/internal/escalation"
)

// policyJSON is an organisation's policy for one kind, or the built-in
// one it falls back to.
type policyJSON struct {
	Kind   string            `json:"kind"`
	Source string            `json:"source"` // "org" or "default"
	Policy escalation.Policy `json:"policy"`
}

// escalationPolicies lists, for every alert kind, the policy that applies:
// the organisation's own for the kind, its "*" policy, or the built-in.
func (a *API) escalationPolicies(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	if _, err := a.st.GetOrg(r.Context(), org); err != nil {
		a.fail(w, r, err)
		return
	}
	own, err := a.st.ListEscalationPolicies(r.Context(), org)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var out []policyJSON
	for _, k := range append([]string{escalation.DefaultKind}, alert.Kinds()...) {
		v := policyJSON{Kind: k, Source: "default", Policy: escalation.DefaultPolicy(k)}
		for _, src := range []string{k, escalation.DefaultKind} {
			if s, ok := own[src]; ok {
				if p, err := escalation.ParsePolicy([]byte(s)); err == nil {
					v.Source, v.Policy = "org", p
					break
				}
			}
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"policies": out})
}

// putEscalationPolicy stores an organisation's policy for a kind ("*"
// for every kind without its own); it applies to alerts raised from then
// on (a running ladder keeps the policy it started with).
func (a *API) putEscalationPolicy(w http.ResponseWriter, r *http.Request) {
	org, kind := r.PathValue("org"), r.PathValue("kind")
	if _, err := a.st.GetOrg(r.Context(), org); err != nil {
		a.fail(w, r, err)
		return
	}
	if !escalation.ValidKind(kind) {
		a.bad(w, "kind", "want an alert kind or *")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		a.bad(w, "", "Content-Type must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		a.bad(w, "", "body too large or unreadable")
		return
	}
	p, err := escalation.ParsePolicy(body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	b, err := json.Marshal(p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.st.PutEscalationPolicy(r.Context(), org, kind, string(b), a.now()); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, policyJSON{Kind: kind, Source: "org", Policy: p})
}

type deliveryJSON struct {
	Event      string     `json:"event"`
	Step       int        `json:"step"`
	Attempt    int        `json:"attempt"`
	Channel    string     `json:"channel"`
	Target     string     `json:"target"`
	Status     string     `json:"status"`
	ProviderID string     `json:"provider_id,omitempty"`
	Error      string     `json:"error,omitempty"`
	LatencyMS  float64    `json:"latency_ms"`
	CreatedAt  time.Time  `json:"created_at"`
	DoneAt     *time.Time `json:"done_at,omitempty"`
}

// deliveries lists every notification sent about an alert.
func (a *API) deliveries(w http.ResponseWriter, r *http.Request) {
	al, ok := a.alertAs(w, r, auth.EscalationRead)
	if !ok || !a.audited(w, r, al.OrgID, "alert.deliveries", "alert", al.ID, nil) {
		return
	}
	ds, err := a.st.ListDeliveries(r.Context(), al.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]deliveryJSON, 0, len(ds))
	for _, d := range ds {
		out = append(out, deliveryJSON{Event: d.Event, Step: d.Step, Attempt: d.Attempt, Channel: d.Channel, Target: d.Target,
			Status: string(d.Status), ProviderID: d.ProviderID, Error: d.Error, LatencyMS: float64(d.Latency) / float64(time.Millisecond),
			CreatedAt: d.CreatedAt, DoneAt: tptr(d.DoneAt)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out})
}

// feed streams an organisation's live alert feed (server-sent events).
func (a *API) feed(w http.ResponseWriter, r *http.Request) {
	if a.feedHandler == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "the live feed is not running")
		return
	}
	org := r.PathValue("org")
	if _, err := a.st.GetOrg(r.Context(), org); err != nil {
		a.fail(w, r, err)
		return
	}
	// Subscribing is recorded, best effort: the console must keep seeing
	// alarms even when the audit log is down (security row 30).
	if a.audit != nil {
		if err := a.audit.Record(r.Context(), audit.Entry{OrgID: org, Actor: principalOf(r).Actor(), SourceIP: clientIP(r),
			Action: "feed.subscribe", ObjectType: "org", ObjectID: org, Outcome: "ok", Severity: "info"}); err != nil {
			a.log.Warn("feed subscription not audited", "org_id", org, "err", err)
		}
	}
	// The stream lives as long as the caller may see it: a signed-out,
	// disabled or demoted user (or a revoked token) loses it within one
	// check interval.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		t := time.NewTicker(feedRecheck)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p, err := a.authenticate(r)
				if err != nil || !p.MFA || !p.Can(org, auth.FeedRead) {
					cancel()
					return
				}
			}
		}
	}()
	a.feedHandler.ServeHTTP(w, r.WithContext(ctx))
}

// feedRecheck is how often a live feed checks its caller may still see it.
const feedRecheck = 2 * time.Second
