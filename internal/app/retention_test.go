package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"vigil/internal/app"
	"vigil/internal/clock"
	"vigil/internal/event"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
)

// retentionMetric reads vigil_retention_purged_total{class}.
func retentionMetric(t *testing.T, a *app.App, class string) float64 {
	t.Helper()
	mfs, err := a.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "vigil_retention_purged_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "class", class) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// TestRetentionSchedule: the server purges on its clock, 5 minutes after
// start and hourly after: positions past the organisation's period go,
// recent ones stay, and the metric counts them.
func TestRetentionSchedule(t *testing.T) {
	start := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	clk := clock.NewManual(start)
	a, _ := vigiltest.StartAppWith(t, vigiltest.Config(t), app.Deps{Clock: clk})
	dev := register(t, a)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Store().SetRetention(ctx, store.RetentionPolicy{OrgID: "acme", Positions: 30 * 24 * time.Hour}))
	var evs []event.Event
	for i, age := range []time.Duration{40 * 24 * time.Hour, 31 * 24 * time.Hour, 29 * 24 * time.Hour, time.Hour} {
		tm := start.Add(-age)
		evs = append(evs, event.Event{V: event.SchemaVersion, OrgID: "acme", DeviceID: dev.DeviceID, MsgID: fmt.Sprintf("p%d", i),
			Type: event.TypePosition, DeviceTime: tm, ReceivedAt: tm, Source: event.SourceMQTT,
			Position: &event.Position{Lat: 53.8, Lon: -1.55, AccuracyM: 8}})
	}
	_, err := a.Store().ApplyEvents(ctx, evs)
	must(err)
	positions := func() int {
		ps, err := a.Store().Positions(ctx, dev.DeviceID, time.Time{}, time.Time{})
		must(err)
		return len(ps)
	}

	// Before the first run nothing is purged.
	clk.Advance(4 * time.Minute)
	if n := positions(); n != 4 {
		t.Fatalf("%d positions before the first run, want 4", n)
	}
	clk.Advance(time.Minute)
	eventually(t, "the first purge", func() bool { return positions() == 2 })
	eventually(t, "the purge metric", func() bool { return retentionMetric(t, a, "positions") == 2 })

	// An hour later the position that was 29 days old is not yet 30: a day
	// later it is.
	clk.Advance(time.Hour)
	eventually(t, "the hourly run", func() bool { return retentionMetric(t, a, "alerts") == 0 && runs(t, a) >= 2 })
	if n := positions(); n != 2 {
		t.Fatalf("%d positions after the hourly run, want 2", n)
	}
	for range 24 {
		clk.Advance(time.Hour)
	}
	eventually(t, "the 29-day-old position's purge", func() bool { return positions() == 1 })
}

// runs reads vigil_retention_runs_total{result="ok"}.
func runs(t *testing.T, a *app.App) float64 {
	t.Helper()
	mfs, err := a.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "vigil_retention_runs_total" {
			for _, m := range mf.GetMetric() {
				if labelIs(m, "result", "ok") {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestRetentionAPI: GET shows the defaults, PUT validates each field by
// name, stores, is audited, and GET shows the new policy.
func TestRetentionAPI(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	c := newAPIClient(t, a)
	var got map[string]any
	if st := c.do("GET", "/api/v1/orgs/acme/retention", "", &got); st != 200 {
		t.Fatalf("GET: %d %v", st, got)
	}
	if got["positions_days"] != 90.0 || got["events_days"] != 90.0 || got["alerts_days"] != 2920.0 || got["audit_days"] != 2190.0 ||
		len(got["defaults"].([]any)) != 4 {
		t.Errorf("GET of an unset policy: %v, want the defaults", got)
	}

	for _, tc := range []struct{ body, field string }{
		{`{"positions_days":-1}`, "positions_days"},
		{`{"events_days":4000}`, "events_days"},
		{`{"alerts_days":30}`, "alerts_days"},
		{`{"audit_days":100}`, "audit_days"},
		{`{"audit_days":"6y"}`, "audit_days"},
		{`{"position_days":30}`, "position_days"},
	} {
		var e struct{ Error struct{ Field string } }
		if st := c.do("PUT", "/api/v1/orgs/acme/retention", tc.body, &e); st != 400 || e.Error.Field != tc.field {
			t.Errorf("PUT %s: %d %v, want 400 naming %s", tc.body, st, e, tc.field)
		}
	}

	if st := c.do("PUT", "/api/v1/orgs/acme/retention", `{"positions_days":30,"alerts_days":3650}`, &got); st != 200 {
		t.Fatalf("PUT: %d %v", st, got)
	}
	got = nil
	if st := c.do("GET", "/api/v1/orgs/acme/retention", "", &got); st != 200 {
		t.Fatalf("GET: %d %v", st, got)
	}
	if got["positions_days"] != 30.0 || got["alerts_days"] != 3650.0 || got["events_days"] != 90.0 ||
		fmt.Sprint(got["defaults"]) != "[events audit]" || got["updated_by"] == "" {
		t.Errorf("GET after PUT: %v", got)
	}
	p, err := a.Store().GetRetention(context.Background(), "acme")
	if err != nil || p.Positions != 30*24*time.Hour || p.Events != 0 {
		t.Errorf("stored policy %+v, %v", p, err)
	}
	recs, err := a.Store().ListAudit(context.Background(), store.AuditFilter{OrgID: "acme", Action: "org.retention"})
	if err != nil || len(recs) != 1 || recs[0].Severity != "high" {
		t.Fatalf("audit records of the change: %+v, %v; want one, high", recs, err)
	}
	if st := c.do("GET", "/api/v1/orgs/nope/retention", "", nil); st != 404 {
		t.Errorf("GET of an unknown org: %d, want 404", st)
	}
}
