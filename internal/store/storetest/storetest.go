// Package storetest is the conformance suite every store.Store
// implementation passes: storetest.Run(t, open) from the implementation's
// own tests.
//
// It is test support: it imports testing, go-cmp, internal/store and
// internal/event, and must never be imported by production code.
//
// Times are compared truncated to microseconds, the precision of
// PostgreSQL's timestamptz.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"vigil/internal/event"
	"vigil/internal/store"
)

// Run runs the suite. open must return a fresh, empty, migrated store for
// each call; Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Orgs", testOrgs},
		{"People", testPeople},
		{"Devices", testDevices},
		{"AssignDevice", testAssign},
		{"DisableAndSecret", testDisableAndSecret},
		{"ApplyEventsEmpty", testApplyEmpty},
		{"ApplyEventsIdempotent", testIdempotent},
		{"ApplyEventsDuplicateInBatch", testDuplicateInBatch},
		{"ApplyEventsUnknownDevice", testUnknownDevice},
		{"ApplyEventsDeviceState", testDeviceState},
		{"ApplyEventsLateNeverOverrides", testLate},
		{"EventRoundTrip", testRoundTrip},
		{"ListEvents", testListEvents},
		{"Positions", testPositions},
		{"Meta", testMeta},
		{"Concurrent", testConcurrent},
		{"AlertRaise", testAlertRaise},
		{"AlertUpdate", testAlertUpdate},
		{"AlertList", testAlertList},
		{"AlertConcurrentRaise", testAlertConcurrentRaise},
		{"Sessions", testSessions},
		{"SessionPresets", testSessionPresets},
		{"Geofences", testGeofences},
		{"LocationPolicyAndDuress", testPolicyAndDuress},
		{"OffDutyDevices", testOffDuty},
		{"EachDeviceWatchAndSessionTimer", testWatchesAndTimers},
		{"EscalationPolicies", testEscalationPolicies},
		{"EscalationLadder", testEscalationLadder},
		{"Deliveries", testDeliveries},
		{"AuditAppend", testAuditAppend},
		{"AuditConcurrent", testAuditConcurrent},
		{"AuditFilter", testAuditFilter},
		{"AuditCheckpoints", testAuditCheckpoints},
		{"AccessUsers", testAccessUsers},
		{"AccessBreakGlass", testAccessBreakGlass},
		{"AccessTOTP", testAccessTOTP},
		{"AccessMemberships", testAccessMemberships},
		{"AccessCarers", testAccessCarers},
		{"AccessTeams", testAccessTeams},
		{"AccessContacts", testAccessContacts},
		{"AccessNotesAndOrgWebAuthn", testAccessNotesAndOrgWebAuthn},
		{"AccessWebSessions", testAccessWebSessions},
		{"AccessExpiredWebSessions", testAccessExpiredWebSessions},
		{"AccessRecoveryCodes", testAccessRecoveryCodes},
		{"AccessWebAuthn", testAccessWebAuthn},
		{"AccessAPITokens", testAccessAPITokens},
		{"AccessResetTokens", testAccessResetTokens},
		{"EnrolmentTokens", testEnrolmentTokens},
		{"Rotas", testRotas},
		{"Retention", testRetention},
		{"OrgSSO", testOrgSSO},
		{"PersonPhoto", testPersonPhoto},
		{"DeviceIMEI", testDeviceIMEI},
		{"DataKeys", testDataKeys},
		{"ErasePerson", testErasePerson},
		{"Firmware", testFirmware},
		{"Ping", func(t *testing.T, s store.Store) {
			if err := s.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// T0 is the suite's reference time: nanoseconds set on purpose, so
// truncation is exercised.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// Opts compares values as stored: times to the microsecond, nil and empty
// slices equal.
var opts = cmp.Options{
	cmp.Transformer("µs", func(t time.Time) time.Time { return t.Truncate(time.Microsecond) }),
	cmpopts.EquateEmpty(),
}

func at(d time.Duration) time.Time { return t0.Add(d) }

func ptr[T any](v T) *T { return &v }

func mustErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// seed creates org "acme" with person "p1" and devices "d1", "d2", and org
// "beta" with person "p9" and device "d9".
func seed(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	must(t, s.CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme Care", CreatedAt: at(0)}), "create org")
	must(t, s.CreateOrg(ctx, store.Org{ID: "beta", Name: "Beta Council", CreatedAt: at(0)}), "create org")
	must(t, s.CreatePerson(ctx, store.Person{ID: "p1", OrgID: "acme", Kind: store.PersonWorker, Name: "Ann", CreatedAt: at(0)}), "create person")
	must(t, s.CreatePerson(ctx, store.Person{ID: "p9", OrgID: "beta", Kind: store.PersonResident, Name: "Bob", CreatedAt: at(0)}), "create person")
	for _, d := range []store.Device{
		{ID: "d1", OrgID: "acme", Name: "pendant 1", CreatedAt: at(0)},
		{ID: "d2", OrgID: "acme", Name: "pendant 2", CreatedAt: at(0)},
		{ID: "d9", OrgID: "beta", Name: "tracker", CreatedAt: at(0)},
	} {
		must(t, s.CreateDevice(ctx, d), "create device")
	}
}

// ev builds a heartbeat of device dev (org from the seed) sent at device
// time dt and received at rt.
func ev(dev, msg string, dt, rt time.Time) event.Event {
	org := "acme"
	if dev == "d9" {
		org = "beta"
	}
	return event.Event{
		V: event.SchemaVersion, OrgID: org, DeviceID: dev, MsgID: msg, Type: event.TypeHeartbeat,
		DeviceTime: dt, ReceivedAt: rt, Source: event.SourceMQTT,
	}
}

func posEv(dev, msg string, dt, rt time.Time, lat, lon float64) event.Event {
	e := ev(dev, msg, dt, rt)
	e.Type = event.TypePosition
	e.Position = &event.Position{Lat: lat, Lon: lon, AccuracyM: 8}
	return e
}

func batEv(dev, msg string, dt, rt time.Time, pct int, charging bool) event.Event {
	e := ev(dev, msg, dt, rt)
	e.Type = event.TypeBattery
	e.Battery = &event.Battery{Percent: pct, Charging: charging}
	return e
}

// logOnly returns the events of evs that the event log keeps: all but
// position reports.
func logOnly(evs []event.Event) []event.Event {
	var out []event.Event
	for _, e := range evs {
		if e.Type != event.TypePosition {
			out = append(out, e)
		}
	}
	return out
}

// record is the position record of an event with a position.
func record(e event.Event) store.PositionRecord {
	return store.PositionRecord{DeviceID: e.DeviceID, MsgID: e.MsgID, DeviceTime: e.DeviceTime,
		ReceivedAt: e.ReceivedAt, Source: e.Source, Late: e.Late, Position: *e.Position}
}

func apply(t *testing.T, s store.Store, want int, evs ...event.Event) {
	t.Helper()
	n, err := s.ApplyEvents(context.Background(), evs)
	if err != nil {
		t.Fatalf("ApplyEvents: %v", err)
	}
	if n != want {
		t.Fatalf("ApplyEvents inserted %d, want %d", n, want)
	}
}

func count(t *testing.T, s store.Store, dev string) int64 {
	t.Helper()
	n, err := s.CountEvents(context.Background(), dev)
	if err != nil {
		t.Fatalf("CountEvents(%q): %v", dev, err)
	}
	return n
}

func device(t *testing.T, s store.Store, id string) store.Device {
	t.Helper()
	d, err := s.GetDevice(context.Background(), id)
	if err != nil {
		t.Fatalf("GetDevice(%s): %v", id, err)
	}
	return d
}

func testOrgs(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, id := range []string{"bravo", "alpha", "charlie"} {
		must(t, s.CreateOrg(ctx, store.Org{ID: id, Name: "Org " + id, CreatedAt: at(time.Hour)}), "create org")
	}
	mustErr(t, s.CreateOrg(ctx, store.Org{ID: "alpha", Name: "again", CreatedAt: at(0)}), store.ErrConflict, "create duplicate org")

	got, err := s.GetOrg(ctx, "alpha")
	must(t, err, "get org")
	if diff := cmp.Diff(store.Org{ID: "alpha", Name: "Org alpha", CreatedAt: at(time.Hour), LocationPolicy: store.LocationOnDuty}, got, opts); diff != "" {
		t.Errorf("GetOrg (-want +got):\n%s", diff)
	}
	_, err = s.GetOrg(ctx, "nope")
	mustErr(t, err, store.ErrNotFound, "get unknown org")

	list, err := s.ListOrgs(ctx)
	must(t, err, "list orgs")
	var ids []string
	for _, o := range list {
		ids = append(ids, o.ID)
	}
	if diff := cmp.Diff([]string{"alpha", "bravo", "charlie"}, ids); diff != "" {
		t.Errorf("ListOrgs order (-want +got):\n%s", diff)
	}
}

func testPeople(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	for _, p := range []store.Person{
		{ID: "p3", OrgID: "acme", Kind: store.PersonResident, Name: "Cy", CreatedAt: at(time.Minute), FallSensitivity: -1.25, FallCancelWindow: 20 * time.Second},
		{ID: "p2", OrgID: "acme", Kind: store.PersonWorker, Name: "Di", CreatedAt: at(time.Minute)},
	} {
		must(t, s.CreatePerson(ctx, p), "create person")
	}
	errCases := []struct {
		name string
		p    store.Person
		want error
	}{
		{"duplicate", store.Person{ID: "p1", OrgID: "acme", Kind: store.PersonWorker, Name: "x", CreatedAt: at(0)}, store.ErrConflict},
		{"unknown org", store.Person{ID: "px", OrgID: "nope", Kind: store.PersonWorker, Name: "x", CreatedAt: at(0)}, store.ErrNotFound},
		{"bad kind", store.Person{ID: "py", OrgID: "acme", Kind: "visitor", Name: "x", CreatedAt: at(0)}, nil},
		{"NaN sensitivity", store.Person{ID: "pz", OrgID: "acme", Kind: store.PersonResident, Name: "x", CreatedAt: at(0), FallSensitivity: math.NaN()}, nil},
	}
	for _, tc := range errCases {
		err := s.CreatePerson(ctx, tc.p)
		if err == nil {
			t.Errorf("CreatePerson %s: no error", tc.name)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("CreatePerson %s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	got, err := s.GetPerson(ctx, "p3")
	must(t, err, "get person")
	want := store.Person{ID: "p3", OrgID: "acme", Kind: store.PersonResident, Name: "Cy", CreatedAt: at(time.Minute), FallSensitivity: -1.25, FallCancelWindow: 20 * time.Second}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("GetPerson (-want +got):\n%s", diff)
	}
	// The fall sensitivity changes on its own; a person without one has 0.
	must(t, s.SetFallSensitivity(ctx, "p2", 2.5), "set fall sensitivity")
	mustErr(t, s.SetFallSensitivity(ctx, "nope", 1), store.ErrNotFound, "set fall sensitivity of unknown person")
	if err := s.SetFallSensitivity(ctx, "p2", math.Inf(1)); err == nil {
		t.Error("SetFallSensitivity(+Inf): no error")
	}
	for id, want := range map[string]float64{"p1": 0, "p2": 2.5, "p3": -1.25} {
		got, err := s.GetPerson(ctx, id)
		must(t, err, "get person")
		if got.FallSensitivity != want {
			t.Errorf("GetPerson(%s).FallSensitivity = %v, want %v", id, got.FallSensitivity, want)
		}
	}
	// So does the fall cancel window; 0 is the server's default.
	must(t, s.SetFallCancelWindow(ctx, "p2", 15*time.Second), "set fall cancel window")
	must(t, s.SetFallCancelWindow(ctx, "p3", 0), "clear fall cancel window")
	mustErr(t, s.SetFallCancelWindow(ctx, "nope", time.Second), store.ErrNotFound, "set fall cancel window of unknown person")
	if err := s.SetFallCancelWindow(ctx, "p2", -time.Second); err == nil {
		t.Error("SetFallCancelWindow(-1s): no error")
	}
	for id, want := range map[string]time.Duration{"p1": 0, "p2": 15 * time.Second, "p3": 0} {
		got, err := s.GetPerson(ctx, id)
		must(t, err, "get person")
		if got.FallCancelWindow != want {
			t.Errorf("GetPerson(%s).FallCancelWindow = %v, want %v", id, got.FallCancelWindow, want)
		}
	}
	_, err = s.GetPerson(ctx, "nope")
	mustErr(t, err, store.ErrNotFound, "get unknown person")

	list, err := s.ListPeople(ctx, "acme")
	must(t, err, "list people")
	var ids []string
	for _, p := range list {
		ids = append(ids, p.ID)
	}
	if diff := cmp.Diff([]string{"p1", "p2", "p3"}, ids); diff != "" {
		t.Errorf("ListPeople(acme) (-want +got):\n%s", diff)
	}
	list, err = s.ListPeople(ctx, "nope")
	must(t, err, "list people of unknown org")
	if len(list) != 0 {
		t.Errorf("ListPeople(nope) = %d people, want 0", len(list))
	}
}

func testDevices(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	d := store.Device{
		ID: "d0", OrgID: "acme", Name: "watch", PersonID: "p1",
		SecretHash: []byte{1, 2, 3, 0, 255}, CertFingerprint: "ab:cd", Firmware: "1.2.3",
		CreatedAt: at(time.Second),
	}
	must(t, s.CreateDevice(ctx, d), "create device")
	got, err := s.GetDevice(ctx, "d0")
	must(t, err, "get device")
	if diff := cmp.Diff(d, got, opts); diff != "" {
		t.Errorf("GetDevice (-want +got):\n%s", diff)
	}
	errCases := []struct {
		name string
		d    store.Device
		want error
	}{
		{"duplicate", store.Device{ID: "d1", OrgID: "acme", Name: "x", CreatedAt: at(0)}, store.ErrConflict},
		{"unknown org", store.Device{ID: "dx", OrgID: "nope", Name: "x", CreatedAt: at(0)}, store.ErrNotFound},
		{"unknown person", store.Device{ID: "dy", OrgID: "acme", PersonID: "nope", Name: "x", CreatedAt: at(0)}, store.ErrNotFound},
		{"person of another org", store.Device{ID: "dz", OrgID: "acme", PersonID: "p9", Name: "x", CreatedAt: at(0)}, store.ErrNotFound},
	}
	for _, tc := range errCases {
		if err := s.CreateDevice(ctx, tc.d); !errors.Is(err, tc.want) {
			t.Errorf("CreateDevice %s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	_, err = s.GetDevice(ctx, "nope")
	mustErr(t, err, store.ErrNotFound, "get unknown device")

	for _, tc := range []struct {
		org  string
		want []string
	}{
		{"acme", []string{"d0", "d1", "d2"}},
		{"beta", []string{"d9"}},
		{"", []string{"d0", "d1", "d2", "d9"}},
		{"nope", nil},
	} {
		list, err := s.ListDevices(ctx, tc.org)
		must(t, err, "list devices")
		var ids []string
		for _, d := range list {
			ids = append(ids, d.ID)
		}
		if diff := cmp.Diff(tc.want, ids, opts); diff != "" {
			t.Errorf("ListDevices(%q) (-want +got):\n%s", tc.org, diff)
		}
	}
}

func testAssign(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.AssignDevice(ctx, "d1", "p1"), "assign")
	if got := device(t, s, "d1").PersonID; got != "p1" {
		t.Errorf("after assign PersonID = %q, want p1", got)
	}
	must(t, s.AssignDevice(ctx, "d1", ""), "unassign")
	if got := device(t, s, "d1").PersonID; got != "" {
		t.Errorf("after unassign PersonID = %q, want empty", got)
	}
	mustErr(t, s.AssignDevice(ctx, "nope", "p1"), store.ErrNotFound, "assign unknown device")
	mustErr(t, s.AssignDevice(ctx, "d1", "nope"), store.ErrNotFound, "assign unknown person")
	mustErr(t, s.AssignDevice(ctx, "d1", "p9"), store.ErrNotFound, "assign person of another org")
	if got := device(t, s, "d1").PersonID; got != "" {
		t.Errorf("after failed assigns PersonID = %q, want empty", got)
	}
}

func testDisableAndSecret(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	must(t, s.SetDeviceSecret(ctx, "d1", []byte("new-hash")), "set secret")
	if got := device(t, s, "d1").SecretHash; string(got) != "new-hash" {
		t.Errorf("SecretHash = %q, want new-hash", got)
	}
	mustErr(t, s.SetDeviceSecret(ctx, "nope", []byte("x")), store.ErrNotFound, "set secret of unknown device")

	if got := device(t, s, "d1").DisabledAt; !got.IsZero() {
		t.Errorf("new device DisabledAt = %v, want zero", got)
	}
	must(t, s.DisableDevice(ctx, "d1", at(time.Hour)), "disable")
	must(t, s.DisableDevice(ctx, "d1", at(2*time.Hour)), "disable again")
	if diff := cmp.Diff(at(time.Hour), device(t, s, "d1").DisabledAt, opts); diff != "" {
		t.Errorf("DisabledAt keeps the first time (-want +got):\n%s", diff)
	}
	mustErr(t, s.DisableDevice(ctx, "nope", at(0)), store.ErrNotFound, "disable unknown device")
	if got := device(t, s, "d2").DisabledAt; !got.IsZero() {
		t.Errorf("other device DisabledAt = %v, want zero", got)
	}

	// The revocation denylist: disabled devices, oldest first, from a time.
	must(t, s.SetDeviceCertFingerprint(ctx, "d2", "ab12"), "set fingerprint")
	must(t, s.DisableDevice(ctx, "d2", at(3*time.Hour)), "disable d2")
	all, err := s.ListRevokedDevices(ctx, time.Time{})
	must(t, err, "list revoked")
	want := []store.RevokedDevice{
		{ID: "d1", OrgID: device(t, s, "d1").OrgID, DisabledAt: at(time.Hour)},
		{ID: "d2", OrgID: device(t, s, "d2").OrgID, CertFingerprint: "ab12", DisabledAt: at(3 * time.Hour)},
	}
	if diff := cmp.Diff(want, all, opts); diff != "" {
		t.Errorf("ListRevokedDevices(all) (-want +got):\n%s", diff)
	}
	later, err := s.ListRevokedDevices(ctx, at(2*time.Hour))
	must(t, err, "list revoked since")
	if diff := cmp.Diff(want[1:], later, opts); diff != "" {
		t.Errorf("ListRevokedDevices(since 2h) (-want +got):\n%s", diff)
	}
	// Quarantine: the first reason and time are kept until released.
	if q := device(t, s, "d2").Quarantine; q != (store.DeviceQuarantine{}) {
		t.Errorf("new device quarantine = %+v, want none", q)
	}
	fresh, err := s.QuarantineDevice(ctx, "d2", "acl_denials", at(5*time.Hour))
	must(t, err, "quarantine")
	again, err := s.QuarantineDevice(ctx, "d2", "flood", at(6*time.Hour))
	must(t, err, "quarantine again")
	if !fresh || again {
		t.Errorf("QuarantineDevice new = %v then %v, want true then false", fresh, again)
	}
	if diff := cmp.Diff(store.DeviceQuarantine{Reason: "acl_denials", At: at(5 * time.Hour)}, device(t, s, "d2").Quarantine, opts); diff != "" {
		t.Errorf("quarantine (-want +got):\n%s", diff)
	}
	_, err = s.QuarantineDevice(ctx, "nope", "flood", at(0))
	mustErr(t, err, store.ErrNotFound, "quarantine unknown device")
	must(t, s.ReleaseDevice(ctx, "d2"), "release")
	if q := device(t, s, "d2").Quarantine; q != (store.DeviceQuarantine{}) {
		t.Errorf("released device quarantine = %+v, want none", q)
	}
	mustErr(t, s.ReleaseDevice(ctx, "nope"), store.ErrNotFound, "release unknown device")

	none, err := s.ListRevokedDevices(ctx, at(4*time.Hour))
	must(t, err, "list revoked since")
	if len(none) != 0 {
		t.Errorf("ListRevokedDevices(since 4h) = %v, want none", none)
	}
}

func testApplyEmpty(t *testing.T, s store.Store) {
	seed(t, s)
	apply(t, s, 0)
	if n := count(t, s, ""); n != 0 {
		t.Errorf("CountEvents = %d, want 0", n)
	}
}

func testIdempotent(t *testing.T, s store.Store) {
	seed(t, s)
	b := []event.Event{
		ev("d1", "m1", at(0), at(time.Second)),
		posEv("d1", "m2", at(time.Second), at(2*time.Second), 51.5, -0.1),
		ev("d2", "m1", at(0), at(time.Second)),
	}
	apply(t, s, 3, b...)
	before := device(t, s, "d1")
	apply(t, s, 0, b...)
	if diff := cmp.Diff(before, device(t, s, "d1"), opts); diff != "" {
		t.Errorf("device changed on replay (-before +after):\n%s", diff)
	}
	// Half old, half new.
	apply(t, s, 1, b[0], ev("d1", "m3", at(2*time.Second), at(3*time.Second)))
	for dev, want := range map[string]int64{"d1": 3, "d2": 1, "d9": 0, "": 4} {
		if n := count(t, s, dev); n != want {
			t.Errorf("CountEvents(%q) = %d, want %d", dev, n, want)
		}
	}
	ps, err := s.Positions(context.Background(), "d1", time.Time{}, time.Time{})
	must(t, err, "positions")
	if len(ps) != 1 {
		t.Errorf("positions after replay = %d, want 1", len(ps))
	}
	// Position reports half old, half new, old ones resent with another
	// receive time (a device's resend): the new ones alone are inserted
	// and counted, and the stored rows keep their first receipt.
	resent := b[1]
	resent.ReceivedAt = at(time.Hour)
	m4 := posEv("d1", "m4", at(4*time.Second), at(5*time.Second), 51.6, -0.2)
	m5 := posEv("d2", "m5", at(4*time.Second), at(5*time.Second), 1, 2)
	apply(t, s, 2, resent, m4, m5, b[1])
	ps, err = s.Positions(context.Background(), "d1", time.Time{}, time.Time{})
	must(t, err, "positions")
	if diff := cmp.Diff([]store.PositionRecord{record(b[1]), record(m4)}, ps, opts); diff != "" {
		t.Errorf("positions after a half-old batch (-want +got):\n%s", diff)
	}
	if d := device(t, s, "d1"); d.State.LastPosition == nil || d.State.LastPosition.Lat != 51.6 {
		t.Errorf("d1 last position = %+v, want m4's", d.State.LastPosition)
	}
	for dev, want := range map[string]int64{"d1": 4, "d2": 2, "": 6} {
		if n := count(t, s, dev); n != want {
			t.Errorf("after positions: CountEvents(%q) = %d, want %d", dev, n, want)
		}
	}
	for _, k := range []struct {
		dev, msg string
		want     bool
	}{{"d1", "m1", true}, {"d1", "m2", true}, {"d1", "m3", true}, {"d2", "m1", true}, {"d2", "m5", true}, {"d2", "m2", false}, {"d9", "m1", false}} {
		got, err := s.HasEvent(context.Background(), k.dev, k.msg)
		must(t, err, "has event")
		if got != k.want {
			t.Errorf("HasEvent(%s, %s) = %v, want %v", k.dev, k.msg, got, k.want)
		}
	}
	_, err = s.CountEvents(context.Background(), "nope")
	mustErr(t, err, store.ErrNotFound, "count events of unknown device")
}

func testDuplicateInBatch(t *testing.T, s store.Store) {
	seed(t, s)
	first := posEv("d1", "m1", at(0), at(time.Second), 51.5, -0.1)
	dup := posEv("d1", "m1", at(time.Hour), at(time.Hour), 10, 10) // same key, different body
	apply(t, s, 2, first, dup, ev("d1", "m2", at(0), at(time.Second)), first)
	if n := count(t, s, "d1"); n != 2 {
		t.Errorf("CountEvents = %d, want 2", n)
	}
	evs, err := s.ListEvents(context.Background(), store.EventFilter{DeviceID: "d1"})
	must(t, err, "list events")
	if len(evs) != 1 || evs[0].MsgID != "m2" {
		t.Fatalf("ListEvents = %+v, want the heartbeat m2 alone", evs)
	}
	ps, err := s.Positions(context.Background(), "d1", time.Time{}, time.Time{})
	must(t, err, "positions")
	if diff := cmp.Diff([]store.PositionRecord{record(first)}, ps, opts); diff != "" {
		t.Errorf("Positions (-want +got):\n%s", diff)
	}
	// The first occurrence wins.
	d := device(t, s, "d1")
	if d.State.LastPosition == nil || d.State.LastPosition.Lat != 51.5 {
		t.Errorf("LastPosition = %+v, want the first occurrence's", d.State.LastPosition)
	}
}

func testUnknownDevice(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	for _, tc := range []struct {
		name string
		bad  event.Event
	}{
		{"unknown device", ev("nope", "m9", at(0), at(time.Second))},
		{"device of another org", func() event.Event { e := ev("d9", "m9", at(0), at(time.Second)); e.OrgID = "acme"; return e }()},
	} {
		b := []event.Event{
			posEv("d1", "m1", at(0), at(time.Second), 51.5, -0.1),
			tc.bad,
			batEv("d2", "m2", at(0), at(time.Second), 50, false),
		}
		n, err := s.ApplyEvents(ctx, b)
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: ApplyEvents error = %v, want ErrNotFound", tc.name, err)
		}
		if n != 0 {
			t.Errorf("%s: inserted = %d, want 0", tc.name, n)
		}
		if c := count(t, s, ""); c != 0 {
			t.Errorf("%s: CountEvents = %d, want 0: the batch must be all or nothing", tc.name, c)
		}
		if ok, _ := s.HasEvent(ctx, "d1", "m1"); ok {
			t.Errorf("%s: event of a known device was stored from a failed batch", tc.name)
		}
		d := device(t, s, "d1")
		if d.State.LastPosition != nil || !d.State.LastSeen.IsZero() {
			t.Errorf("%s: device state changed by a failed batch: %+v", tc.name, d.State)
		}
	}
}

func testDeviceState(t *testing.T, s store.Store) {
	seed(t, s)
	if diff := cmp.Diff(store.DeviceState{}, device(t, s, "d1").State, opts); diff != "" {
		t.Errorf("new device state (-want +got):\n%s", diff)
	}
	sos := ev("d1", "sos", at(2*time.Minute), at(2*time.Minute+time.Second))
	sos.Type = event.TypeButton
	sos.Button = &event.Button{Kind: event.ButtonSOS}
	sos.Position = &event.Position{Lat: 51.5, Lon: -0.12, AccuracyM: 5, SpeedMPS: ptr(1.5), HeadingDeg: ptr(90.0),
		AltitudeM: ptr(12.0), FixTime: at(2*time.Minute - time.Second)}
	apply(t, s, 3,
		posEv("d1", "p1", at(time.Minute), at(time.Minute+time.Second), 51.4, -0.1),
		sos,
		batEv("d1", "b1", at(time.Minute), at(time.Minute+time.Second), 80, true),
	)
	want := store.DeviceState{
		LastSeen:     at(2*time.Minute + time.Second),
		LastPosition: sos.Position,
		PositionTime: sos.DeviceTime,
		Battery:      ptr(80),
		Charging:     true,
		BatteryTime:  at(time.Minute),
		Events:       3,
	}
	if diff := cmp.Diff(want, device(t, s, "d1").State, opts); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	// A newer battery and a heartbeat received later advance state.
	apply(t, s, 2,
		batEv("d1", "b2", at(3*time.Minute), at(3*time.Minute), 79, false),
		ev("d1", "h1", at(3*time.Minute), at(5*time.Minute)),
	)
	want.Battery, want.Charging, want.BatteryTime = ptr(79), false, at(3*time.Minute)
	want.LastSeen = at(5 * time.Minute)
	want.Events = 5
	if diff := cmp.Diff(want, device(t, s, "d1").State, opts); diff != "" {
		t.Errorf("state after newer events (-want +got):\n%s", diff)
	}
	// The other device is untouched.
	if diff := cmp.Diff(store.DeviceState{}, device(t, s, "d2").State, opts); diff != "" {
		t.Errorf("untouched device state (-want +got):\n%s", diff)
	}
}

func testLate(t *testing.T, s store.Store) {
	seed(t, s)
	apply(t, s, 2,
		posEv("d1", "p-new", at(time.Hour), at(time.Hour), 51.5, -0.1),
		batEv("d1", "b-new", at(time.Hour), at(time.Hour), 40, false),
	)
	// Store-and-forward after lost signal: older readings arrive later.
	lateP := posEv("d1", "p-old", at(time.Minute), at(2*time.Hour), 40.0, 3.0)
	lateP.Late = true
	lateB := batEv("d1", "b-old", at(time.Minute), at(2*time.Hour), 90, true)
	lateB.Late = true
	apply(t, s, 2, lateP, lateB)
	// Equal device time does not replace either.
	apply(t, s, 1, posEv("d1", "p-same", at(time.Hour), at(2*time.Hour), 1.0, 1.0))

	st := device(t, s, "d1").State
	want := store.DeviceState{
		LastSeen:     at(2 * time.Hour), // received later: last_seen advances anyway
		LastPosition: &event.Position{Lat: 51.5, Lon: -0.1, AccuracyM: 8},
		PositionTime: at(time.Hour),
		Battery:      ptr(40),
		BatteryTime:  at(time.Hour),
		Events:       5,
	}
	if diff := cmp.Diff(want, st, opts); diff != "" {
		t.Errorf("state after late events (-want +got):\n%s", diff)
	}
	// An event received earlier than last_seen does not move it back.
	apply(t, s, 1, ev("d1", "h-early", at(time.Hour), at(time.Hour)))
	if diff := cmp.Diff(at(2*time.Hour), device(t, s, "d1").State.LastSeen, opts); diff != "" {
		t.Errorf("LastSeen moved back (-want +got):\n%s", diff)
	}
	// Late positions are still history.
	ps, err := s.Positions(context.Background(), "d1", time.Time{}, time.Time{})
	must(t, err, "positions")
	if len(ps) != 3 || ps[0].MsgID != "p-old" || !ps[0].Late {
		t.Errorf("positions = %+v, want 3 starting with the late p-old", ps)
	}
}

func allTypes() []event.Event {
	e := func(msg string, typ event.Type) event.Event {
		x := ev("d1", msg, at(time.Duration(len(msg))*time.Second), at(time.Minute))
		x.Type = typ
		x.Source = event.SourceHTTP
		return x
	}
	pos := e("pos", event.TypePosition)
	pos.Late = true
	pos.Position = &event.Position{Lat: -33.8688, Lon: 151.2093, AccuracyM: 3.5, SpeedMPS: ptr(0.0),
		HeadingDeg: ptr(359.9), AltitudeM: ptr(-12.25), FixTime: at(-time.Second)}
	hb := e("hb", event.TypeHeartbeat)
	hb.Heartbeat = &event.Heartbeat{SignalDBm: ptr(-97)}
	hb0 := e("hb0", event.TypeHeartbeat)
	bat := e("bat", event.TypeBattery)
	bat.Battery = &event.Battery{Percent: 0, Charging: true}
	btn := e("btn", event.TypeButton)
	btn.Button = &event.Button{Kind: event.ButtonCancel, Code: "1234"}
	sos := e("sos", event.TypeButton)
	sos.Button = &event.Button{Kind: event.ButtonSOS}
	sos.Position = &event.Position{Lat: 1e-7, Lon: 179.9999999, AccuracyM: 100000}
	mot := e("motion", event.TypeMotion)
	mot.Motion = &event.Motion{RateHz: 50, Accel: [][]float64{{0, 0, 1}, {0.1, -0.2, 0.98}}, Gyro: [][]float64{{1, 2, 3}, {-4, 5.5, 6}}}
	fall := e("fall", event.TypeFall)
	fall.Fall = &event.Fall{Confidence: 0.875}
	return []event.Event{pos, hb, hb0, bat, btn, sos, mot, fall}
}

func testRoundTrip(t *testing.T, s store.Store) {
	seed(t, s)
	in := allTypes()
	apply(t, s, len(in), in...)
	got, err := s.ListEvents(context.Background(), store.EventFilter{DeviceID: "d1"})
	must(t, err, "list events")
	// The position report is not in the log: it is a position record.
	log := logOnly(in)
	if len(got) != len(log) {
		t.Fatalf("ListEvents = %d events, want %d", len(got), len(log))
	}
	// ListEvents is newest first, and seqs follow the batch's order.
	for i, se := range got {
		want := log[len(log)-1-i]
		if diff := cmp.Diff(want, se.Event, opts); diff != "" {
			t.Errorf("event %d (%s) round trip (-want +got):\n%s", i, want.MsgID, diff)
		}
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq >= got[i-1].Seq {
			t.Errorf("seq not decreasing: %d then %d", got[i-1].Seq, got[i].Seq)
		}
	}
	// Position history carries the same fields.
	ps, err := s.Positions(context.Background(), "d1", time.Time{}, time.Time{})
	must(t, err, "positions")
	// Same device time: ordered by msg id. The report's record holds
	// everything its event did.
	wantPs := []store.PositionRecord{record(in[0]), record(in[5])}
	if in[0].Source != event.SourceHTTP || !in[0].Late {
		t.Fatal("allTypes' position report must be late and from HTTP to test those columns")
	}
	if diff := cmp.Diff(wantPs, ps, opts); diff != "" {
		t.Errorf("Positions (-want +got):\n%s", diff)
	}
}

func testListEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	var b []event.Event
	for i := range 150 {
		b = append(b, ev("d1", fmt.Sprintf("a%03d", i), at(time.Duration(i)*time.Second), at(time.Hour)))
	}
	apply(t, s, 150, b...)
	apply(t, s, 1, ev("d2", "x", at(0), at(time.Hour)))
	apply(t, s, 1, ev("d9", "y", at(0), at(time.Hour)))
	apply(t, s, 1, ev("d1", "last", at(0), at(time.Hour)))

	for _, tc := range []struct {
		f         store.EventFilter
		wantN     int
		wantFirst string
	}{
		{store.EventFilter{}, 100, "d1/last"},
		{store.EventFilter{Limit: 2}, 2, "d1/last"},
		{store.EventFilter{Limit: 5000}, 153, "d1/last"},
		{store.EventFilter{OrgID: "beta"}, 1, "d9/y"},
		{store.EventFilter{OrgID: "acme", Limit: 1000}, 152, "d1/last"},
		{store.EventFilter{DeviceID: "d2"}, 1, "d2/x"},
		{store.EventFilter{OrgID: "beta", DeviceID: "d1"}, 0, ""},
		{store.EventFilter{DeviceID: "nope"}, 0, ""},
	} {
		got, err := s.ListEvents(ctx, tc.f)
		must(t, err, "list events")
		if len(got) != tc.wantN {
			t.Errorf("ListEvents(%+v) = %d events, want %d", tc.f, len(got), tc.wantN)
			continue
		}
		if tc.wantN > 0 && got[0].Key() != tc.wantFirst {
			t.Errorf("ListEvents(%+v) first = %s, want %s", tc.f, got[0].Key(), tc.wantFirst)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq >= got[i-1].Seq {
				t.Fatalf("ListEvents(%+v) not newest first at %d", tc.f, i)
			}
		}
	}
	// Seqs follow the order of events in a batch.
	got, err := s.ListEvents(ctx, store.EventFilter{DeviceID: "d1", Limit: 3})
	must(t, err, "list events")
	if keys := []string{got[0].MsgID, got[1].MsgID, got[2].MsgID}; !cmp.Equal(keys, []string{"last", "a149", "a148"}) {
		t.Errorf("ListEvents(d1, 3) = %v, want [last a149 a148]", keys)
	}
}

func testPositions(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	var b []event.Event
	for i := range 10 {
		// Out of order on purpose.
		j := (i * 7) % 10
		b = append(b, posEv("d1", fmt.Sprintf("p%d", j), at(time.Duration(j)*time.Minute), at(time.Hour), 50+float64(j)/100, 1))
	}
	b = append(b, posEv("d2", "p0", at(0), at(time.Hour), 10, 10), ev("d1", "hb", at(30*time.Second), at(time.Hour)))
	apply(t, s, len(b), b...)
	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     []string
	}{
		{"all", time.Time{}, time.Time{}, []string{"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"}},
		{"half open", at(2 * time.Minute), at(5 * time.Minute), []string{"p2", "p3", "p4"}},
		{"from only", at(8 * time.Minute), time.Time{}, []string{"p8", "p9"}},
		{"to only", time.Time{}, at(time.Minute + time.Microsecond), []string{"p0", "p1"}},
		{"empty", at(time.Hour), at(2 * time.Hour), nil},
	} {
		ps, err := s.Positions(ctx, "d1", tc.from, tc.to)
		must(t, err, "positions")
		var ids []string
		for _, p := range ps {
			if p.DeviceID != "d1" {
				t.Errorf("%s: position of device %s", tc.name, p.DeviceID)
			}
			ids = append(ids, p.MsgID)
		}
		if diff := cmp.Diff(tc.want, ids, opts); diff != "" {
			t.Errorf("Positions %s (-want +got):\n%s", tc.name, diff)
		}
	}
	ps, err := s.Positions(ctx, "d1", at(3*time.Minute), at(4*time.Minute))
	must(t, err, "positions")
	want := []store.PositionRecord{{DeviceID: "d1", MsgID: "p3", DeviceTime: at(3 * time.Minute),
		ReceivedAt: at(time.Hour), Source: event.SourceMQTT, Position: event.Position{Lat: 50.03, Lon: 1, AccuracyM: 8}}}
	if diff := cmp.Diff(want, ps, opts); diff != "" {
		t.Errorf("Positions record (-want +got):\n%s", diff)
	}
	ps, err = s.Positions(ctx, "nope", time.Time{}, time.Time{})
	must(t, err, "positions of unknown device")
	if len(ps) != 0 {
		t.Errorf("positions of unknown device = %d, want 0", len(ps))
	}
}

func testMeta(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetMeta(ctx, "bootstrap")
	mustErr(t, err, store.ErrNotFound, "get unknown meta")
	must(t, s.PutMeta(ctx, "bootstrap", "h1"), "put meta")
	must(t, s.PutMeta(ctx, "other", ""), "put empty meta")
	must(t, s.PutMeta(ctx, "bootstrap", "h2"), "overwrite meta")
	for k, want := range map[string]string{"bootstrap": "h2", "other": ""} {
		got, err := s.GetMeta(ctx, k)
		must(t, err, "get meta")
		if got != want {
			t.Errorf("GetMeta(%s) = %q, want %q", k, got, want)
		}
	}
	must(t, s.DeleteMeta(ctx, "bootstrap"), "delete meta")
	_, err = s.GetMeta(ctx, "bootstrap")
	mustErr(t, err, store.ErrNotFound, "get deleted meta")
	mustErr(t, s.DeleteMeta(ctx, "bootstrap"), store.ErrNotFound, "delete deleted meta")
	if _, err := s.GetMeta(ctx, "other"); err != nil {
		t.Errorf("other key lost: %v", err)
	}

	// PutMetas: new and existing keys in one go; an empty map is a no-op.
	must(t, s.PutMetas(ctx, nil), "put no metas")
	kvs := map[string]string{"other": "o2", "a/1": strings.Repeat("x", 5000), "a/2": ""}
	must(t, s.PutMetas(ctx, kvs), "put metas")
	kvs["a/2"] = "second"
	must(t, s.PutMetas(ctx, kvs), "put metas again")
	for k, want := range kvs {
		got, err := s.GetMeta(ctx, k)
		must(t, err, "get meta")
		if got != want {
			t.Errorf("after PutMetas GetMeta(%s) = %.20q, want %.20q", k, got, want)
		}
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	seed(t, s)
	const workers, batches, size = 4, 8, 50
	devs := []string{"d1", "d2", "d9"}
	// Every worker sends the same keys in a different order, so batches
	// overlap heavily; each key must be stored exactly once.
	keys := batches * size
	var wg sync.WaitGroup
	inserted := make([]int, workers)
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bi := range batches {
				var b []event.Event
				for i := range size {
					k := (bi*size + i + w*37) % keys
					dev := devs[k%len(devs)]
					if w%2 == 1 {
						k = keys - 1 - k
						dev = devs[k%len(devs)]
					}
					b = append(b, posEv(dev, fmt.Sprintf("m%04d", k), at(time.Duration(k)*time.Second), at(time.Duration(k)*time.Second), 45, 5))
				}
				n, err := s.ApplyEvents(context.Background(), b)
				if err != nil {
					errs[w] = err
					return
				}
				inserted[w] += n
			}
		}()
	}
	wg.Wait()
	total := 0
	for w := range workers {
		if errs[w] != nil {
			t.Fatalf("worker %d: %v", w, errs[w])
		}
		total += inserted[w]
	}
	if total != keys {
		t.Errorf("inserted %d in total, want %d", total, keys)
	}
	if n := count(t, s, ""); n != int64(keys) {
		t.Errorf("CountEvents = %d, want %d", n, keys)
	}
	for i, dev := range devs {
		want := int64(0)
		for k := range keys {
			if k%len(devs) == i {
				want++
			}
		}
		if n := count(t, s, dev); n != want {
			t.Errorf("CountEvents(%s) = %d, want %d", dev, n, want)
		}
		ps, err := s.Positions(context.Background(), dev, time.Time{}, time.Time{})
		must(t, err, "positions")
		if int64(len(ps)) != want {
			t.Errorf("Positions(%s) = %d, want %d", dev, len(ps), want)
		}
		// The newest position wins whatever the interleaving.
		latest := keys - 1
		for latest%len(devs) != i {
			latest--
		}
		if diff := cmp.Diff(at(time.Duration(latest)*time.Second), device(t, s, dev).State.PositionTime, opts); diff != "" {
			t.Errorf("%s PositionTime (-want +got):\n%s", dev, diff)
		}
	}
}
