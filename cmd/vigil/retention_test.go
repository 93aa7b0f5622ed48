package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/internal/event"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
)

func TestCLIRetention(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := cli(t, nil, "org", "add", "--data-dir", dir, "--id", "acme", "--name", "Acme Care"); code != 0 {
		t.Fatalf("org add: %d %s", code, errs)
	}
	code, out, errs := cli(t, nil, "retention", "show", "--data-dir", dir, "--org", "acme")
	if code != 0 || !strings.Contains(out, "positions  90    (default)") || !strings.Contains(out, "alerts     2920  (default)") {
		t.Fatalf("show: %d\n%s%s", code, out, errs)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--org", "acme", "--alerts", "100"}, "--alerts 100"},
		{[]string{"--org", "acme", "--positions", "-2"}, "--positions -2"},
		{[]string{"--org", "acme"}, "at least one of"},
		{[]string{"--positions", "30"}, "--org is required"},
	} {
		code, _, errs := cli(t, nil, append([]string{"retention", "set", "--data-dir", dir}, tc.args...)...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("set %v: %d %q, want usage error naming %q", tc.args, code, errs, tc.want)
		}
	}
	if code, _, errs := cli(t, nil, "retention", "show", "--data-dir", dir, "--org", "nope"); code != 1 || !strings.Contains(errs, `organisation "nope" not found`) {
		t.Errorf("show of an unknown org: %d %q", code, errs)
	}
	code, out, errs = cli(t, nil, "retention", "set", "--data-dir", dir, "--org", "acme", "--positions", "30")
	if code != 0 || !strings.Contains(out, "positions  30") {
		t.Fatalf("set: %d\n%s%s", code, out, errs)
	}

	// Old and recent positions of a device of acme; purge-now keeps the
	// recent ones; the change was audited.
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateDevice(ctx, store.Device{ID: "d1", OrgID: "acme", Name: "pendant"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var evs []event.Event
	for i := range 50 {
		tm := now.Add(-40 * 24 * time.Hour)
		if i%5 == 0 {
			tm = now.Add(-time.Hour)
		}
		tm = tm.Add(time.Duration(i) * time.Second)
		evs = append(evs, event.Event{V: event.SchemaVersion, OrgID: "acme", DeviceID: "d1", MsgID: fmt.Sprint(i), Type: event.TypePosition,
			DeviceTime: tm, ReceivedAt: tm, Source: event.SourceMQTT, Position: &event.Position{Lat: 51.5, Lon: -0.1, AccuracyM: 5}})
	}
	if _, err := st.ApplyEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	recs, err := st.ListAudit(ctx, store.AuditFilter{OrgID: "acme", Action: "org.retention"})
	if err != nil || len(recs) != 1 || recs[0].Actor != "cli" || recs[0].Severity != "high" {
		t.Errorf("audit of the change: %+v, %v", recs, err)
	}
	st.Close()

	code, out, errs = cli(t, nil, "retention", "purge-now", "--data-dir", dir, "--org", "acme", "--batch", "7")
	if code != 0 || !strings.Contains(out, "purged 40 positions, 0 events, 0 alerts of acme in 8 batches") {
		t.Fatalf("purge-now: %d\n%s%s", code, out, errs)
	}
	st, err = sqlite.Open(ctx, filepath.Join(dir, "vigil.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if ps, err := st.Positions(ctx, "d1", time.Time{}, time.Time{}); err != nil || len(ps) != 10 {
		t.Errorf("after purge-now: %d positions (%v), want the 10 recent ones", len(ps), err)
	}
}
