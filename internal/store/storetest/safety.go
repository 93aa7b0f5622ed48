package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"vigil/internal/event"
	"vigil/internal/store"
)

func sosAlert(id string, raised time.Time) store.Alert {
	return store.Alert{
		ID: id, OrgID: "acme", DeviceID: "d1", PersonID: "p1", SessionID: "s1",
		Kind: "sos", Severity: "critical", State: store.AlertRaised, DedupKey: "sos:d1",
		RaisedAt: raised, CauseTime: raised.Add(-time.Second), CancelUntil: raised.Add(30 * time.Second),
		Note: "visit at flat 3", Detail: "button",
		Position:     &event.Position{Lat: 51.5, Lon: -0.12, AccuracyM: 8, FixTime: raised.Add(-5 * time.Second)},
		PositionTime: raised.Add(-5 * time.Second),
	}
}

var alertOpts = cmp.Options{opts, cmpopts.IgnoreFields(store.Alert{}, "UpdatedAt")}

func testAlertRaise(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	a := sosAlert("a1", at(time.Minute))
	first := store.AlertEntry{At: at(time.Minute), Actor: "device:d1", Action: "raised", Detail: "sos button", Cause: "ev:d1/m1"}
	got, res, err := s.RaiseAlert(ctx, a, first)
	must(t, err, "raise")
	if res != store.RaiseNew {
		t.Fatalf("first raise: result %v, want RaiseNew", res)
	}
	want := a
	want.Version = 1
	want.Timeline = []store.AlertEntry{{Seq: 1, At: at(time.Minute), Actor: "device:d1", Action: "raised", Detail: "sos button", Cause: "ev:d1/m1"}}
	if diff := cmp.Diff(want, got, alertOpts); diff != "" {
		t.Errorf("raised alert (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, mustGetAlert(t, s, "a1"), alertOpts); diff != "" {
		t.Errorf("GetAlert (-want +got):\n%s", diff)
	}

	// The same cause again (a redelivered event): nothing changes.
	b := sosAlert("a2", at(2*time.Minute))
	got, res, err = s.RaiseAlert(ctx, b, first)
	must(t, err, "raise again")
	if res != store.RaiseDuplicate || got.ID != "a1" || len(got.Timeline) != 1 {
		t.Fatalf("same cause: result %v, alert %s with %d entries; want RaiseDuplicate of a1 with 1", res, got.ID, len(got.Timeline))
	}
	// A new cause with the same dedup key joins the open alert.
	second := store.AlertEntry{At: at(2 * time.Minute), Actor: "device:d1", Action: "repeated", Cause: "ev:d1/m2"}
	got, res, err = s.RaiseAlert(ctx, b, second)
	must(t, err, "raise repeat")
	if res != store.RaiseJoined || got.ID != "a1" || len(got.Timeline) != 2 || got.Timeline[1].Seq != 2 || got.Version != 2 {
		t.Fatalf("repeat: result %v, alert %s v%d timeline %+v; want RaiseJoined of a1 v2 with entry 2", res, got.ID, got.Version, got.Timeline)
	}
	if ok, err := s.HasCause(ctx, "ev:d1/m2"); err != nil || !ok {
		t.Errorf("HasCause(m2) = %v, %v; want true", ok, err)
	}
	if ok, err := s.HasCause(ctx, "ev:d1/m3"); err != nil || ok {
		t.Errorf("HasCause(m3) = %v, %v; want false", ok, err)
	}

	// Once resolved, the key is free: a new cause raises a new alert, and
	// an old cause still raises nothing.
	cur := mustGetAlert(t, s, "a1")
	cur.State, cur.ClosedAt, cur.ClosedBy, cur.Outcome = store.AlertResolved, at(3*time.Minute), "user:u1", "false_alarm"
	_, err = s.UpdateAlert(ctx, cur, store.AlertEntry{At: at(3 * time.Minute), Actor: "user:u1", Action: "resolved"})
	must(t, err, "resolve")
	got, res, err = s.RaiseAlert(ctx, b, second)
	must(t, err, "raise old cause after resolve")
	if res != store.RaiseDuplicate || got.ID != "a1" {
		t.Fatalf("old cause after resolve: result %v alert %s; want RaiseDuplicate of a1", res, got.ID)
	}
	got, res, err = s.RaiseAlert(ctx, b, store.AlertEntry{At: at(4 * time.Minute), Actor: "device:d1", Action: "raised", Cause: "ev:d1/m4"})
	must(t, err, "raise after resolve")
	if res != store.RaiseNew || got.ID != "a2" {
		t.Fatalf("after resolve: result %v alert %s; want RaiseNew a2", res, got.ID)
	}

	// AddAlertEntry: idempotent by cause, unknown alert is ErrNotFound.
	ok, err := s.AddAlertEntry(ctx, "a2", store.AlertEntry{At: at(5 * time.Minute), Actor: "engine", Action: "note", Cause: "x1"})
	must(t, err, "add entry")
	if !ok {
		t.Error("AddAlertEntry: first add reported false")
	}
	ok, err = s.AddAlertEntry(ctx, "a2", store.AlertEntry{At: at(5 * time.Minute), Actor: "engine", Action: "note", Cause: "x1"})
	must(t, err, "add entry again")
	if ok {
		t.Error("AddAlertEntry: repeated cause reported true")
	}
	_, err = s.AddAlertEntry(ctx, "nope", store.AlertEntry{At: at(5 * time.Minute), Actor: "engine", Action: "note"})
	mustErr(t, err, store.ErrNotFound, "add entry to unknown alert")
	_, err = s.GetAlert(ctx, "nope")
	mustErr(t, err, store.ErrNotFound, "get unknown alert")

	// Bad input.
	bad := sosAlert("a3", at(time.Minute))
	bad.DedupKey = ""
	if _, _, err := s.RaiseAlert(ctx, bad, first); err == nil {
		t.Error("raise without dedup key: no error")
	}
	bad = sosAlert("a3", at(time.Minute))
	bad.State = store.AlertResolved
	if _, _, err := s.RaiseAlert(ctx, bad, store.AlertEntry{Cause: "zz"}); err == nil {
		t.Error("raise in a closed state: no error")
	}
}

func mustGetAlert(t *testing.T, s store.Store, id string) store.Alert {
	t.Helper()
	a, err := s.GetAlert(context.Background(), id)
	must(t, err, "get alert "+id)
	return a
}

func testAlertUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	a := sosAlert("a1", at(time.Minute))
	a.State, a.PendingUntil = store.AlertPending, at(90*time.Second)
	_, _, err := s.RaiseAlert(ctx, a, store.AlertEntry{At: at(time.Minute), Actor: "engine", Action: "pre-alert", Cause: "c1"})
	must(t, err, "raise")
	cur := mustGetAlert(t, s, "a1")
	stale := cur

	cur.State, cur.AcknowledgedAt, cur.AcknowledgedBy, cur.Duress = store.AlertAcknowledged, at(2*time.Minute), "user:u1", true
	cur.Severity = "high"
	got, err := s.UpdateAlert(ctx, cur, store.AlertEntry{At: at(2 * time.Minute), Actor: "user:u1", Action: "acknowledged", Detail: "on my way"})
	must(t, err, "acknowledge")
	want := cur
	want.Version = 2
	want.Timeline = append(want.Timeline, store.AlertEntry{Seq: 2, At: at(2 * time.Minute), Actor: "user:u1", Action: "acknowledged", Detail: "on my way"})
	if diff := cmp.Diff(want, got, alertOpts); diff != "" {
		t.Errorf("updated (-want +got):\n%s", diff)
	}
	// A writer holding the old version loses.
	stale.State = store.AlertCancelled
	_, err = s.UpdateAlert(ctx, stale, store.AlertEntry{At: at(2 * time.Minute), Actor: "device:d1", Action: "cancelled"})
	mustErr(t, err, store.ErrConflict, "update with a stale version")
	if g := mustGetAlert(t, s, "a1"); g.State != store.AlertAcknowledged || len(g.Timeline) != 2 {
		t.Errorf("after a lost update: state %s with %d entries, want acknowledged with 2", g.State, len(g.Timeline))
	}
	// A repeated cause rolls the whole update back.
	got.State, got.ClosedAt, got.Outcome, got.OutcomeNote = store.AlertResolved, at(3*time.Minute), "assisted", "helped up"
	_, err = s.UpdateAlert(ctx, got, store.AlertEntry{At: at(3 * time.Minute), Actor: "engine", Action: "x", Cause: "c1"})
	mustErr(t, err, store.ErrConflict, "update with a recorded cause")
	if g := mustGetAlert(t, s, "a1"); g.State != store.AlertAcknowledged {
		t.Errorf("update with a recorded cause changed the state to %s", g.State)
	}
	got, err = s.UpdateAlert(ctx, got, store.AlertEntry{At: at(3 * time.Minute), Actor: "user:u1", Action: "resolved"})
	must(t, err, "resolve")
	if got.State != store.AlertResolved || got.Outcome != "assisted" || got.OutcomeNote != "helped up" || !got.ClosedAt.Truncate(time.Microsecond).Equal(at(3*time.Minute).Truncate(time.Microsecond)) {
		t.Errorf("resolved alert: %+v", got)
	}
	missing := sosAlert("zz", at(0))
	_, err = s.UpdateAlert(ctx, missing, store.AlertEntry{Action: "x"})
	mustErr(t, err, store.ErrNotFound, "update unknown alert")
}

func testAlertList(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	mk := func(id, org, person, kind string, state store.AlertState, min int) {
		a := sosAlert(id, at(time.Duration(min)*time.Minute))
		a.OrgID, a.PersonID, a.Kind, a.DedupKey = org, person, kind, "k:"+id
		a.DeviceID = map[string]string{"acme": "d1", "beta": "d9"}[org]
		_, _, err := s.RaiseAlert(ctx, a, store.AlertEntry{At: a.RaisedAt, Actor: "engine", Action: "raised", Cause: "c:" + id})
		must(t, err, "raise "+id)
		if state != store.AlertRaised {
			cur := mustGetAlert(t, s, id)
			cur.State = state
			_, err := s.UpdateAlert(ctx, cur, store.AlertEntry{At: a.RaisedAt, Actor: "engine", Action: string(state)})
			must(t, err, "update "+id)
		}
	}
	mk("a1", "acme", "p1", "sos", store.AlertRaised, 1)
	mk("a2", "acme", "p1", "missed_checkin", store.AlertResolved, 2)
	mk("a3", "acme", "", "low_battery", store.AlertAcknowledged, 3)
	mk("a4", "beta", "p9", "fall", store.AlertRaised, 4)
	for _, tc := range []struct {
		f    store.AlertFilter
		want []string
	}{
		{store.AlertFilter{}, []string{"a4", "a3", "a2", "a1"}},
		{store.AlertFilter{OrgID: "acme"}, []string{"a3", "a2", "a1"}},
		{store.AlertFilter{OrgID: "acme", States: []store.AlertState{store.AlertRaised, store.AlertAcknowledged}}, []string{"a3", "a1"}},
		{store.AlertFilter{PersonID: "p1"}, []string{"a2", "a1"}},
		{store.AlertFilter{Kind: "fall"}, []string{"a4"}},
		{store.AlertFilter{DeviceID: "d9"}, []string{"a4"}},
		{store.AlertFilter{RaisedBefore: at(3 * time.Minute)}, []string{"a2", "a1"}},
		{store.AlertFilter{Limit: 2}, []string{"a4", "a3"}},
		{store.AlertFilter{OrgID: "nope"}, nil},
	} {
		list, err := s.ListAlerts(ctx, tc.f)
		must(t, err, "list alerts")
		var ids []string
		for _, a := range list {
			ids = append(ids, a.ID)
			if a.Timeline != nil {
				t.Errorf("ListAlerts filled a timeline")
			}
		}
		if diff := cmp.Diff(tc.want, ids, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ListAlerts(%+v) (-want +got):\n%s", tc.f, diff)
		}
	}
}

// testAlertConcurrentRaise: many processors deciding about the same cause
// or the same open alert at once never make two alerts or two entries for
// one cause.
func testAlertConcurrentRaise(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _, err := s.RaiseAlert(ctx, sosAlert(fmt.Sprintf("x%d", i), at(time.Minute)),
				store.AlertEntry{At: at(time.Minute), Actor: "engine", Action: "raised", Cause: "same-cause"})
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, _, err := s.RaiseAlert(ctx, sosAlert(fmt.Sprintf("y%d", i), at(time.Minute)),
				store.AlertEntry{At: at(time.Minute), Actor: "engine", Action: "repeated", Cause: fmt.Sprintf("cause-%d", i)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err, "concurrent raise")
	}
	list, err := s.ListAlerts(ctx, store.AlertFilter{})
	must(t, err, "list")
	if len(list) != 1 {
		t.Fatalf("concurrent raises made %d alerts, want 1", len(list))
	}
	if got := mustGetAlert(t, s, list[0].ID); len(got.Timeline) != n+1 {
		t.Errorf("timeline has %d entries, want %d (one per cause)", len(got.Timeline), n+1)
	}
}

func testSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	x := store.Session{ID: "s1", OrgID: "acme", PersonID: "p1", DeviceID: "d1", Preset: "high", Note: "flat 3, dog",
		StartedAt: at(0), ExpectedEnd: at(time.Hour), CheckinInterval: 30 * time.Minute, Grace: 5 * time.Minute}
	must(t, s.CreateSession(ctx, x), "create session")
	want := x
	want.LastCheckin, want.State, want.Version = at(0), store.SessionActive, 1
	got, err := s.GetSession(ctx, "s1")
	must(t, err, "get session")
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("GetSession (-want +got):\n%s", diff)
	}
	second := x
	second.ID = "s2"
	mustErr(t, s.CreateSession(ctx, second), store.ErrConflict, "second active session of a person")
	other := x
	other.ID, other.PersonID = "s3", "p9"
	mustErr(t, s.CreateSession(ctx, other), store.ErrNotFound, "session of a person of another org")
	_, err = s.GetSession(ctx, "nope")
	mustErr(t, err, store.ErrNotFound, "get unknown session")

	got.LastCheckin = at(20 * time.Minute)
	got.ExpectedEnd = at(2 * time.Hour)
	upd, err := s.UpdateSession(ctx, got)
	must(t, err, "check in")
	if upd.Version != 2 {
		t.Errorf("version after update %d, want 2", upd.Version)
	}
	_, err = s.UpdateSession(ctx, got) // stale version
	mustErr(t, err, store.ErrConflict, "stale session update")
	upd.State, upd.EndedAt, upd.EndedBy = store.SessionEnded, at(90*time.Minute), "device:d1"
	_, err = s.UpdateSession(ctx, upd)
	must(t, err, "end")
	got, err = s.GetSession(ctx, "s1")
	must(t, err, "get ended")
	want.LastCheckin, want.ExpectedEnd, want.State, want.EndedAt, want.EndedBy, want.Version = at(20*time.Minute), at(2*time.Hour), store.SessionEnded, at(90*time.Minute), "device:d1", 3
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("ended session (-want +got):\n%s", diff)
	}
	// Once ended, the person may start another.
	must(t, s.CreateSession(ctx, second), "new session after end")
	must(t, s.CreatePerson(ctx, store.Person{ID: "p2", OrgID: "acme", Kind: store.PersonWorker, Name: "Di"}), "person")
	third := x
	third.ID, third.PersonID, third.StartedAt = "s4", "p2", at(time.Minute)
	must(t, s.CreateSession(ctx, third), "session of p2")

	var streamed []string
	must(t, s.EachSessionTimer(ctx, func(x store.SessionTimer) error {
		streamed = append(streamed, x.ID)
		return nil
	}), "each session timer")
	if diff := cmp.Diff([]string{"s2", "s4"}, streamed, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("EachSessionTimer, active sessions only (-want +got):\n%s", diff)
	}
	var devs []string
	must(t, s.EachDeviceWatch(ctx, func(d store.DeviceWatch) error { devs = append(devs, d.ID); return nil }), "each device watch")
	if diff := cmp.Diff([]string{"d1", "d2", "d9"}, devs, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("EachDeviceWatch (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		f    store.SessionFilter
		want []string
	}{
		{store.SessionFilter{ActiveOnly: true}, []string{"s4", "s2"}},
		{store.SessionFilter{OrgID: "acme"}, []string{"s4", "s2", "s1"}},
		{store.SessionFilter{PersonID: "p1"}, []string{"s2", "s1"}},
		{store.SessionFilter{PersonID: "p1", ActiveOnly: true}, []string{"s2"}},
		{store.SessionFilter{OrgID: "beta"}, nil},
	} {
		list, err := s.ListSessions(ctx, tc.f)
		must(t, err, "list sessions")
		var ids []string
		for _, x := range list {
			ids = append(ids, x.ID)
		}
		if diff := cmp.Diff(tc.want, ids, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ListSessions(%+v) (-want +got):\n%s", tc.f, diff)
		}
	}
}

func testSessionPresets(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	for _, p := range []store.SessionPreset{
		{OrgID: "acme", Name: "low", Duration: 4 * time.Hour, CheckinInterval: time.Hour, Grace: 10 * time.Minute},
		{OrgID: "acme", Name: "high", Duration: 30 * time.Minute, CheckinInterval: 15 * time.Minute, Grace: 5 * time.Minute},
		{OrgID: "acme", Name: "low", Duration: 3 * time.Hour, Grace: 15 * time.Minute},
	} {
		must(t, s.PutSessionPreset(ctx, p), "put preset")
	}
	mustErr(t, s.PutSessionPreset(ctx, store.SessionPreset{OrgID: "nope", Name: "x", Duration: time.Hour}), store.ErrNotFound, "preset of unknown org")
	got, err := s.ListSessionPresets(ctx, "acme")
	must(t, err, "list presets")
	want := []store.SessionPreset{
		{OrgID: "acme", Name: "high", Duration: 30 * time.Minute, CheckinInterval: 15 * time.Minute, Grace: 5 * time.Minute},
		{OrgID: "acme", Name: "low", Duration: 3 * time.Hour, Grace: 15 * time.Minute},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("presets (-want +got):\n%s", diff)
	}
}

func testGeofences(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	g := store.GeofenceRecord{ID: "g1", OrgID: "acme", Name: "office", Feature: []byte(`{"type":"Feature"}`), CreatedAt: at(0), UpdatedAt: at(0)}
	must(t, s.PutGeofence(ctx, g), "put geofence")
	g.Name, g.Feature, g.UpdatedAt = "office 2", []byte(`{"type":"Feature","properties":{}}`), at(time.Hour)
	must(t, s.PutGeofence(ctx, g), "replace geofence")
	got, err := s.GetGeofence(ctx, "g1")
	must(t, err, "get geofence")
	if diff := cmp.Diff(g, got, opts); diff != "" {
		t.Errorf("GetGeofence (-want +got):\n%s", diff)
	}
	steal := g
	steal.OrgID = "beta"
	mustErr(t, s.PutGeofence(ctx, steal), store.ErrConflict, "replace another org's geofence")
	must(t, s.PutGeofence(ctx, store.GeofenceRecord{ID: "g2", OrgID: "beta", Name: "x", Feature: []byte(`{}`)}), "put g2")
	mustErr(t, s.PutGeofence(ctx, store.GeofenceRecord{ID: "g3", OrgID: "nope", Name: "x", Feature: []byte(`{}`)}), store.ErrNotFound, "unknown org")
	for org, want := range map[string][]string{"": {"g1", "g2"}, "acme": {"g1"}, "beta": {"g2"}} {
		list, err := s.ListGeofences(ctx, org)
		must(t, err, "list geofences")
		var ids []string
		for _, g := range list {
			ids = append(ids, g.ID)
		}
		if diff := cmp.Diff(want, ids); diff != "" {
			t.Errorf("ListGeofences(%q) (-want +got):\n%s", org, diff)
		}
	}
	must(t, s.DeleteGeofence(ctx, "g1"), "delete")
	mustErr(t, s.DeleteGeofence(ctx, "g1"), store.ErrNotFound, "delete again")
	_, err = s.GetGeofence(ctx, "g1")
	mustErr(t, err, store.ErrNotFound, "get deleted")
}

func testPolicyAndDuress(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreateOrg(ctx, store.Org{ID: "gamma", Name: "G", LocationPolicy: store.LocationAlways}), "create org with policy")
	for id, want := range map[string]store.LocationPolicy{"acme": store.LocationOnDuty, "gamma": store.LocationAlways} {
		o, err := s.GetOrg(ctx, id)
		must(t, err, "get org")
		if o.LocationPolicy != want {
			t.Errorf("org %s policy %q, want %q", id, o.LocationPolicy, want)
		}
	}
	must(t, s.SetLocationPolicy(ctx, "acme", store.LocationAlways), "set policy")
	if o, _ := s.GetOrg(ctx, "acme"); o.LocationPolicy != store.LocationAlways {
		t.Errorf("policy after set %q", o.LocationPolicy)
	}
	if err := s.SetLocationPolicy(ctx, "acme", "sometimes"); err == nil {
		t.Error("bad policy accepted")
	}
	mustErr(t, s.SetLocationPolicy(ctx, "nope", store.LocationAlways), store.ErrNotFound, "policy of unknown org")

	h := store.DuressHash("p1", "9111")
	must(t, s.SetDuressCode(ctx, "p1", h), "set duress")
	p, err := s.GetPerson(ctx, "p1")
	must(t, err, "get person")
	if !cmp.Equal(p.DuressCodeHash, h) {
		t.Errorf("duress hash not stored")
	}
	must(t, s.SetDuressCode(ctx, "p1", nil), "clear duress")
	if p, _ := s.GetPerson(ctx, "p1"); len(p.DuressCodeHash) != 0 {
		t.Errorf("duress hash not cleared")
	}
	mustErr(t, s.SetDuressCode(ctx, "nope", h), store.ErrNotFound, "duress of unknown person")
}

// testOffDuty: a worker's device is off duty unless they have an active
// session or an open alert; residents, unassigned devices and
// organisations with the "always" policy never are.
func testOffDuty(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s) // p1 worker (acme), p9 resident (beta); d1, d2 acme; d9 beta
	must(t, s.AssignDevice(ctx, "d1", "p1"), "assign d1")
	must(t, s.AssignDevice(ctx, "d9", "p9"), "assign d9")
	check := func(when string, want ...string) {
		t.Helper()
		got, err := s.OffDutyDevices(ctx, []string{"d1", "d2", "d9", "nope"})
		must(t, err, "off duty")
		var ids []string
		for _, id := range []string{"d1", "d2", "d9", "nope"} {
			if got[id] {
				ids = append(ids, id)
			}
		}
		if diff := cmp.Diff(want, ids, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: off-duty devices (-want +got):\n%s", when, diff)
		}
	}
	check("worker with nothing open", "d1")
	x := store.Session{ID: "s1", OrgID: "acme", PersonID: "p1", StartedAt: at(0), ExpectedEnd: at(time.Hour)}
	must(t, s.CreateSession(ctx, x), "session")
	check("during a session")
	got, err := s.GetSession(ctx, "s1")
	must(t, err, "get")
	got.State, got.EndedAt = store.SessionEnded, at(time.Minute)
	_, err = s.UpdateSession(ctx, got)
	must(t, err, "end")
	check("after the session", "d1")
	a := sosAlert("a1", at(2*time.Minute))
	a.SessionID = ""
	_, _, err = s.RaiseAlert(ctx, a, store.AlertEntry{At: at(2 * time.Minute), Actor: "engine", Action: "raised", Cause: "c"})
	must(t, err, "raise")
	check("with an open alert")
	cur := mustGetAlert(t, s, "a1")
	cur.State = store.AlertResolved
	_, err = s.UpdateAlert(ctx, cur, store.AlertEntry{At: at(3 * time.Minute), Actor: "u", Action: "resolved"})
	must(t, err, "resolve")
	check("after the alert is resolved", "d1")
	must(t, s.SetLocationPolicy(ctx, "acme", store.LocationAlways), "policy")
	check("policy always")
	res, err := s.ResidentIDs(ctx)
	must(t, err, "resident ids")
	if diff := cmp.Diff([]string{"p9"}, res); diff != "" {
		t.Errorf("ResidentIDs (-want +got):\n%s", diff)
	}
	got2, err := s.OffDutyDevices(ctx, nil)
	must(t, err, "no devices")
	if len(got2) != 0 {
		t.Errorf("no devices: %v", got2)
	}
}

// testWatchesAndTimers: the narrow streams the safety engine starts from
// agree with GetDevice and GetSession, row for row.
func testWatchesAndTimers(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.CreatePerson(ctx, store.Person{ID: "p2", OrgID: "acme", Kind: store.PersonWorker, Name: "Di"}), "person")
	must(t, s.AssignDevice(ctx, "d1", "p1"), "assign d1")
	must(t, s.AssignDevice(ctx, "d9", "p9"), "assign d9")
	must(t, s.DisableDevice(ctx, "d2", at(time.Hour)), "disable d2")
	sos := ev("d1", "sos", at(2*time.Minute), at(2*time.Minute+time.Second))
	sos.Type, sos.Button = event.TypeButton, &event.Button{Kind: event.ButtonSOS}
	sos.Position = &event.Position{Lat: 51.5, Lon: -0.12, AccuracyM: 5, SpeedMPS: ptr(1.5), FixTime: at(2*time.Minute - time.Second)}
	apply(t, s, 4, sos, batEv("d1", "b1", at(time.Minute), at(time.Minute), 15, true),
		posEv("d9", "p1", at(time.Minute), at(time.Minute+time.Second), 52, 1), ev("d2", "h1", at(time.Minute), at(3*time.Minute)))

	var watches []store.DeviceWatch
	must(t, s.EachDeviceWatch(ctx, func(w store.DeviceWatch) error { watches = append(watches, w); return nil }), "each device watch")
	var want []store.DeviceWatch
	for _, id := range []string{"d1", "d2", "d9"} {
		d := device(t, s, id)
		w := store.DeviceWatch{ID: d.ID, OrgID: d.OrgID, PersonID: d.PersonID, Disabled: !d.DisabledAt.IsZero(),
			LastSeen: d.State.LastSeen, Battery: -1, Charging: d.State.Charging}
		if d.State.Battery != nil {
			w.Battery = *d.State.Battery
		}
		want = append(want, w)
	}
	byID := cmpopts.SortSlices(func(a, b store.DeviceWatch) bool { return a.ID < b.ID })
	if diff := cmp.Diff(want, watches, opts, byID); diff != "" {
		t.Errorf("EachDeviceWatch (-want +got):\n%s", diff)
	}
	if watches[0].Battery < 0 && watches[1].Battery < 0 && watches[2].Battery < 0 {
		t.Errorf("no watch has a battery reading: the test does not test it")
	}

	x := store.Session{ID: "s1", OrgID: "acme", PersonID: "p1", DeviceID: "d1", Preset: "high", Note: "flat 3, dog",
		StartedAt: at(0), ExpectedEnd: at(time.Hour), CheckinInterval: 30 * time.Minute, Grace: 5 * time.Minute}
	must(t, s.CreateSession(ctx, x), "create s1")
	y := store.Session{ID: "s2", OrgID: "acme", PersonID: "p2", StartedAt: at(time.Minute), ExpectedEnd: at(3 * time.Hour),
		Grace: time.Minute, LastCheckin: at(2 * time.Minute)}
	must(t, s.CreateSession(ctx, y), "create s2")
	got, err := s.GetSession(ctx, "s1")
	must(t, err, "get s1")
	got.LastCheckin = at(20 * time.Minute)
	_, err = s.UpdateSession(ctx, got)
	must(t, err, "check in s1")
	z := store.Session{ID: "s3", OrgID: "beta", PersonID: "p9", StartedAt: at(0), ExpectedEnd: at(time.Hour)}
	must(t, s.CreateSession(ctx, z), "create s3")
	ended, err := s.GetSession(ctx, "s3")
	must(t, err, "get s3")
	ended.State, ended.EndedAt, ended.EndedBy = store.SessionEnded, at(time.Hour), "api"
	_, err = s.UpdateSession(ctx, ended)
	must(t, err, "end s3")

	var timers []store.SessionTimer
	must(t, s.EachSessionTimer(ctx, func(x store.SessionTimer) error { timers = append(timers, x); return nil }), "each session timer")
	var wantTimers []store.SessionTimer
	for _, id := range []string{"s1", "s2"} {
		x, err := s.GetSession(ctx, id)
		must(t, err, "get session")
		wantTimers = append(wantTimers, store.SessionTimer{ID: x.ID, OrgID: x.OrgID, PersonID: x.PersonID, DeviceID: x.DeviceID,
			StartedAt: x.StartedAt, ExpectedEnd: x.ExpectedEnd, CheckinInterval: x.CheckinInterval, Grace: x.Grace, LastCheckin: x.LastCheckin})
	}
	if diff := cmp.Diff(wantTimers, timers, opts, cmpopts.SortSlices(func(a, b store.SessionTimer) bool { return a.ID < b.ID })); diff != "" {
		t.Errorf("EachSessionTimer (-want +got):\n%s", diff)
	}

	stop := errors.New("stop")
	n := 0
	if err := s.EachDeviceWatch(ctx, func(store.DeviceWatch) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("EachDeviceWatch with fn failing: %v after %d calls, want stop after 1", err, n)
	}
	n = 0
	if err := s.EachSessionTimer(ctx, func(store.SessionTimer) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("EachSessionTimer with fn failing: %v after %d calls, want stop after 1", err, n)
	}
}
