package storetest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/event"
	"vigil/internal/store"
)

// UpgradeTarget is one fresh, empty database of a dialect, as the upgrade
// suite drives it.
type UpgradeTarget struct {
	MigrationTarget
	// MigrateTo applies the embedded migrations 1 … v and no later one.
	MigrateTo func(ctx context.Context, v int) error
	// Time renders a time as a SQL literal of the dialect's schema 1
	// encoding of a time column.
	Time func(time.Time) string
	// Bool renders a boolean as a SQL literal of the dialect's schema 1.
	Bool func(bool) string
}

// RunUpgrade checks that a database written at schema 1 keeps its data
// through every later migration: events, positions and device counters
// written with plain SQL at version 1 read back the same through the
// current store, which then keeps projecting new events idempotently
// (old keys are not re-inserted, positions not duplicated) and keeps
// refusing unknown devices and devices of another organisation. fresh must
// return a new, empty database for each call.
func RunUpgrade(t *testing.T, fresh func(t *testing.T) UpgradeTarget) {
	ctx := context.Background()
	m := fresh(t)
	if m.Latest < 2 {
		t.Skip("no migration after version 1")
	}
	must(t, m.MigrateTo(ctx, 1), "migrate to version 1")

	// Schema 1 data: org "up", devices "u1" (positions, some at the same
	// device time, a battery event) and "u2" (a heartbeat), org "other"
	// with device "o1".
	old := []event.Event{
		posEv("u1", "a3", at(3*time.Minute), at(4*time.Minute), 51.3, -0.3),
		posEv("u1", "a1", at(1*time.Minute), at(4*time.Minute), 51.1, -0.1),
		posEv("u1", "b2", at(2*time.Minute), at(4*time.Minute), 51.22, -0.22),
		posEv("u1", "a2", at(2*time.Minute), at(4*time.Minute), 51.2, -0.2),
		batEv("u1", "bat1", at(2*time.Minute), at(4*time.Minute), 80, true),
		ev("u2", "h1", at(1*time.Minute), at(5*time.Minute)),
	}
	old[0].Late = true
	old[1].Position.SpeedMPS, old[1].Position.HeadingDeg, old[1].Position.AltitudeM = ptr(1.5), ptr(270.0), ptr(31.0)
	old[1].Position.FixTime = at(time.Minute - time.Second)
	for i := range old {
		old[i].OrgID = "up"
	}
	lit := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	null := func(p *float64) string {
		if p == nil {
			return "NULL"
		}
		return strconv.FormatFloat(*p, 'g', -1, 64)
	}
	tm := func(t time.Time) string {
		if t.IsZero() {
			return "NULL"
		}
		return m.Time(t)
	}
	num := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	stmts := []string{
		`INSERT INTO orgs (id, name, created_at) VALUES ('up', 'Upgrade', ` + tm(at(0)) + `), ('other', 'Other', ` + tm(at(0)) + `)`,
		`INSERT INTO devices (id, org_id, name, created_at, event_count, last_seen) VALUES
			('u1', 'up', 'pendant', ` + tm(at(0)) + `, 5, ` + tm(at(4*time.Minute)) + `),
			('u2', 'up', 'watch', ` + tm(at(0)) + `, 1, ` + tm(at(5*time.Minute)) + `),
			('o1', 'other', 'tracker', ` + tm(at(0)) + `, 0, NULL)`,
	}
	for _, e := range old {
		body, err := event.Marshal(&e)
		must(t, err, "marshal")
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO events (org_id, device_id, msg_id, type, device_time, received_at, source, late, body)
			VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)`,
			lit(e.OrgID), lit(e.DeviceID), lit(e.MsgID), lit(string(e.Type)), tm(e.DeviceTime), tm(e.ReceivedAt),
			lit(string(e.Source)), m.Bool(e.Late), lit(string(body))))
		if p := e.Position; p != nil {
			stmts = append(stmts, fmt.Sprintf(`INSERT INTO positions (device_id, msg_id, device_time, late, lat, lon, accuracy_m, speed, heading, altitude, fix_time)
				VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)`,
				lit(e.DeviceID), lit(e.MsgID), tm(e.DeviceTime), m.Bool(e.Late), num(p.Lat), num(p.Lon), num(p.AccuracyM),
				null(p.SpeedMPS), null(p.HeadingDeg), null(p.AltitudeM), tm(p.FixTime)))
		}
	}
	for _, q := range stmts {
		must(t, m.Exec(ctx, q), "insert schema 1 data")
	}

	got, err := m.Migrate(ctx)
	must(t, err, "migrate")
	var want []int
	for v := 2; v <= m.Latest; v++ {
		want = append(want, v)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("migrate applied %v, want %v", got, want)
	}
	s, err := m.Open(ctx, false)
	must(t, err, "open upgraded database")
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()

	// Events: all there, in insertion (seq) order, bodies intact.
	listed := func(dev string) []event.Event {
		t.Helper()
		ses, err := s.ListEvents(ctx, store.EventFilter{DeviceID: dev})
		must(t, err, "list events")
		var out []event.Event
		for i, se := range ses {
			if i > 0 && se.Seq >= ses[i-1].Seq {
				t.Errorf("ListEvents(%s): seq %d after %d, want descending", dev, se.Seq, ses[i-1].Seq)
			}
			out = append(out, se.Event)
		}
		slices.Reverse(out)
		return out
	}
	// Schema 3 keeps position reports in positions only.
	if diff := cmp.Diff(logOnly(old[:5]), listed("u1"), opts); diff != "" {
		t.Errorf("u1 events after upgrade (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(logOnly(old[5:]), listed("u2"), opts); diff != "" {
		t.Errorf("u2 events after upgrade (-want +got):\n%s", diff)
	}
	for _, e := range old {
		ok, err := s.HasEvent(ctx, e.DeviceID, e.MsgID)
		must(t, err, "has event")
		if !ok {
			t.Errorf("HasEvent(%s) = false after upgrade", e.Key())
		}
	}
	if n := count(t, s, "u1"); n != 5 {
		t.Errorf("CountEvents(u1) = %d, want 5", n)
	}

	// Positions: oldest first, ties by message id, ranges half-open.
	rec := func(e event.Event) store.PositionRecord {
		return store.PositionRecord{DeviceID: e.DeviceID, MsgID: e.MsgID, DeviceTime: e.DeviceTime,
			ReceivedAt: e.ReceivedAt, Source: e.Source, Late: e.Late, Position: *e.Position}
	}
	wantPos := []store.PositionRecord{rec(old[1]), rec(old[3]), rec(old[2]), rec(old[0])}
	checkPos := func(what string, from, to time.Time, want []store.PositionRecord) {
		t.Helper()
		ps, err := s.Positions(ctx, "u1", from, to)
		must(t, err, "positions")
		if diff := cmp.Diff(want, ps, opts); diff != "" {
			t.Errorf("Positions %s (-want +got):\n%s", what, diff)
		}
	}
	checkPos("after upgrade", time.Time{}, time.Time{}, wantPos)
	checkPos("[2m, 3m) after upgrade", at(2*time.Minute), at(3*time.Minute), wantPos[1:3])

	// New events after the upgrade: the old keys again are skipped (and
	// add no position), new ones land after the old ones.
	fresh1 := posEv("u1", "a0", at(2*time.Minute), at(6*time.Minute), 51.0, -0.05) // ties a2/b2's time
	fresh2 := posEv("u1", "c1", at(10*time.Minute), at(10*time.Minute), 52.0, -1.0)
	fresh1.OrgID, fresh2.OrgID = "up", "up"
	apply(t, s, 2, append(slices.Clone(old), fresh1, fresh2)...)
	apply(t, s, 0, old...)
	if diff := cmp.Diff(logOnly(append(slices.Clone(old[:5]), fresh1, fresh2)), listed("u1"), opts); diff != "" {
		t.Errorf("u1 events after new batch (-want +got):\n%s", diff)
	}
	if n := count(t, s, "u1"); n != 7 {
		t.Errorf("CountEvents(u1) = %d, want 7", n)
	}
	wantPos = []store.PositionRecord{rec(old[1]), rec(fresh1), rec(old[3]), rec(old[2]), rec(old[0]), rec(fresh2)}
	checkPos("after new batch", time.Time{}, time.Time{}, wantPos)
	checkPos("[2m, 10m) after new batch", at(2*time.Minute), at(10*time.Minute), wantPos[1:5])
	d := device(t, s, "u1")
	if p := d.State.LastPosition; p == nil || p.Lat != 52.0 || !d.State.PositionTime.Truncate(time.Microsecond).Equal(at(10*time.Minute).Truncate(time.Microsecond)) {
		t.Errorf("u1 state after new batch: position %+v at %v, want lat 52 at %v", p, d.State.PositionTime, at(10*time.Minute))
	}

	// The device checks still guard both tables.
	stray := posEv("u1", "x1", at(11*time.Minute), at(11*time.Minute), 1, 1)
	stray.OrgID = "other"
	_, err = s.ApplyEvents(ctx, []event.Event{stray})
	mustErr(t, err, store.ErrNotFound, "ApplyEvents with a device of another org")
	stray.DeviceID, stray.OrgID = "ghost", "up"
	_, err = s.ApplyEvents(ctx, []event.Event{stray})
	mustErr(t, err, store.ErrNotFound, "ApplyEvents with an unknown device")
	if n := count(t, s, ""); n != 8 {
		t.Errorf("CountEvents() = %d, want 8", n)
	}
	for _, dev := range []string{"u1", "ghost"} {
		ok, err := s.HasEvent(ctx, dev, "x1")
		must(t, err, "has event")
		if ok {
			t.Errorf("HasEvent(%s/x1) = true after a refused batch", dev)
		}
	}
	checkPos("after refused batches", time.Time{}, time.Time{}, wantPos)
	for _, dev := range []string{"ghost", "o1"} {
		ps, err := s.Positions(ctx, dev, time.Time{}, time.Time{})
		must(t, err, "positions")
		if len(ps) != 0 {
			t.Errorf("Positions(%s) = %v, want none", dev, ps)
		}
	}
}
