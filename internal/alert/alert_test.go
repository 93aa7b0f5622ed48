package alert_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"vigil/internal/alert"
	"vigil/internal/clock"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func base(state store.AlertState) store.Alert {
	return store.Alert{ID: "a1", OrgID: "acme", DeviceID: "d1", PersonID: "p1", Kind: alert.KindSOS, Severity: alert.SeverityCritical,
		State: state, DedupKey: "sos:d1", RaisedAt: t0, CauseTime: t0, CancelUntil: t0.Add(30 * time.Second), PendingUntil: t0.Add(30 * time.Second)}
}

// TestTransitions walks every transition from every state: which are
// legal, and what a legal one changes.
func TestTransitions(t *testing.T) {
	type op func(a store.Alert) (store.Alert, store.AlertEntry, error)
	ops := map[string]op{
		"acknowledge": func(a store.Alert) (store.Alert, store.AlertEntry, error) {
			return alert.Acknowledge(a, "user:u1", t0.Add(time.Minute), "")
		},
		"resolve": func(a store.Alert) (store.Alert, store.AlertEntry, error) {
			return alert.Resolve(a, "user:u1", t0.Add(time.Minute), alert.OutcomeAssisted, "")
		},
		"cancel in window": func(a store.Alert) (store.Alert, store.AlertEntry, error) {
			return alert.Cancel(a, "device:d1", t0.Add(10*time.Second))
		},
		"cancel late": func(a store.Alert) (store.Alert, store.AlertEntry, error) {
			return alert.Cancel(a, "device:d1", t0.Add(time.Minute))
		},
		"duress": func(a store.Alert) (store.Alert, store.AlertEntry, error) {
			return alert.Duress(a, "device:d1", t0.Add(10*time.Second))
		},
		"escalate due": func(a store.Alert) (store.Alert, store.AlertEntry, error) {
			return alert.Escalate(a, t0.Add(30*time.Second))
		},
		"escalate early": func(a store.Alert) (store.Alert, store.AlertEntry, error) {
			return alert.Escalate(a, t0.Add(29*time.Second))
		},
	}
	const ill = store.AlertState("illegal")
	want := map[store.AlertState]map[string]store.AlertState{
		store.AlertPending: {"acknowledge": ill, "resolve": ill, "cancel in window": store.AlertCancelled,
			"cancel late": store.AlertCancelled, "duress": store.AlertRaised, "escalate due": store.AlertRaised, "escalate early": ill},
		store.AlertRaised: {"acknowledge": store.AlertAcknowledged, "resolve": store.AlertResolved, "cancel in window": store.AlertCancelled,
			"cancel late": ill, "duress": store.AlertRaised, "escalate due": ill, "escalate early": ill},
		store.AlertAcknowledged: {"acknowledge": ill, "resolve": store.AlertResolved, "cancel in window": ill,
			"cancel late": ill, "duress": store.AlertAcknowledged, "escalate due": ill, "escalate early": ill},
		store.AlertResolved:  {},
		store.AlertCancelled: {},
	}
	for from, row := range want {
		for name, f := range ops {
			exp, ok := row[name]
			if !ok {
				exp = ill
			}
			a := base(from)
			got, e, err := f(a)
			if exp == ill {
				if !errors.Is(err, alert.ErrIllegal) {
					t.Errorf("%s from %s: err %v, want ErrIllegal", name, from, err)
				}
				if got.State != from {
					t.Errorf("%s from %s: refused transition changed state to %s", name, from, got.State)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s from %s: %v", name, from, err)
				continue
			}
			if got.State != exp {
				t.Errorf("%s from %s: state %s, want %s", name, from, got.State, exp)
			}
			if e.Action == "" || e.At.IsZero() || e.Actor == "" {
				t.Errorf("%s from %s: incomplete timeline entry %+v", name, from, e)
			}
		}
	}
}

func TestResolveOutcome(t *testing.T) {
	for _, tc := range []struct {
		outcome, note string
		ok            bool
	}{
		{alert.OutcomeFalseAlarm, "", true},
		{alert.OutcomeEmergencyServices, "ambulance", true},
		{alert.OutcomeOther, "", false},
		{alert.OutcomeOther, "neighbour helped", true},
		{"", "", false},
		{"fixed", "", false},
	} {
		got, _, err := alert.Resolve(base(store.AlertRaised), "user:u1", t0, tc.outcome, tc.note)
		if tc.ok != (err == nil) {
			t.Errorf("Resolve(%q, %q): err %v, want ok=%v", tc.outcome, tc.note, err, tc.ok)
		}
		if tc.ok && (got.Outcome != tc.outcome || got.OutcomeNote != tc.note || got.AcknowledgedBy != "user:u1" || got.ClosedAt != t0) {
			t.Errorf("Resolve(%q): %+v", tc.outcome, got)
		}
	}
}

func TestDuressLooksCancelled(t *testing.T) {
	a, e, err := alert.Duress(base(store.AlertRaised), "device:d1", t0.Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !a.Duress || a.State != store.AlertRaised || a.Severity != alert.SeverityCritical || !a.CancelUntil.IsZero() {
		t.Fatalf("duress alert: %+v", a)
	}
	a.Timeline = []store.AlertEntry{{Seq: 1, At: t0, Action: alert.ActionRaised}, e, {Seq: 3, At: t0.Add(time.Minute), Actor: "user:u1", Action: alert.ActionAcknowledged}}
	v := alert.WearerView(a)
	if v.State != store.AlertCancelled || v.Duress || len(v.Timeline) != 2 || v.Timeline[1].Action != alert.ActionCancelled || v.AcknowledgedBy != "" {
		t.Errorf("wearer view of a duress alert: %+v", v)
	}
	if _, _, err := alert.Cancel(a, "device:d1", t0.Add(6*time.Second)); !errors.Is(err, alert.ErrIllegal) {
		t.Errorf("cancel of a duress alert: %v, want ErrIllegal", err)
	}
	plain := base(store.AlertRaised)
	if v := alert.WearerView(plain); v.State != store.AlertRaised {
		t.Errorf("wearer view of a plain alert changed it: %+v", v)
	}
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "v.db"), sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, err := range []error{
		s.CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme"}),
		s.CreatePerson(ctx, store.Person{ID: "p1", OrgID: "acme", Kind: store.PersonWorker, Name: "Ann"}),
		s.SetDuressCode(ctx, "p1", store.DuressHash("p1", "9111")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func raise(t *testing.T, s *sqlite.Store, a store.Alert) {
	t.Helper()
	if _, _, err := s.RaiseAlert(context.Background(), a, store.AlertEntry{At: a.RaisedAt, Actor: "device:d1", Action: alert.ActionRaised, Cause: "c:" + a.ID}); err != nil {
		t.Fatal(err)
	}
}

// TestServiceCancelAndDuress: through the store, a cancel with the duress
// code answers "cancelled" while the stored alert stays open and duress;
// the normal code cancels; after the window the cancel is refused and
// recorded.
func TestServiceCancelAndDuress(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := t0.Add(10 * time.Second)
	svc := alert.NewService(s, clock.Func(func() time.Time { return now }))

	raise(t, s, base(store.AlertRaised))
	v, err := svc.Cancel(ctx, "a1", "device:d1", "9111")
	if err != nil {
		t.Fatal(err)
	}
	if v.State != store.AlertCancelled || v.Duress {
		t.Errorf("wearer sees %s duress=%v, want cancelled", v.State, v.Duress)
	}
	stored, _ := s.GetAlert(ctx, "a1")
	if stored.State != store.AlertRaised || !stored.Duress || stored.Timeline[len(stored.Timeline)-1].Action != alert.ActionDuress {
		t.Errorf("stored after duress: state %s duress %v timeline %+v", stored.State, stored.Duress, stored.Timeline)
	}
	// Again with the duress code: still looks cancelled, no second entry.
	if v, err := svc.Cancel(ctx, "a1", "device:d1", "9111"); err != nil || v.State != store.AlertCancelled {
		t.Errorf("second duress cancel: %s, %v", v.State, err)
	}
	if a, _ := s.GetAlert(ctx, "a1"); len(a.Timeline) != len(stored.Timeline) {
		t.Errorf("second duress cancel added %d entries", len(a.Timeline)-len(stored.Timeline))
	}

	b := base(store.AlertRaised)
	b.ID, b.DedupKey = "a2", "sos:d2"
	raise(t, s, b)
	if v, err := svc.Cancel(ctx, "a2", "device:d1", "1234"); err != nil || v.State != store.AlertCancelled {
		t.Fatalf("cancel with a wrong (non-duress) code: %s, %v", v.State, err)
	}
	if a, _ := s.GetAlert(ctx, "a2"); a.State != store.AlertCancelled || a.Duress {
		t.Errorf("stored after plain cancel: %s duress %v", a.State, a.Duress)
	}

	c := base(store.AlertRaised)
	c.ID, c.DedupKey = "a3", "sos:d3"
	raise(t, s, c)
	now = t0.Add(time.Minute)
	if _, err := svc.Cancel(ctx, "a3", "device:d1", ""); !errors.Is(err, alert.ErrCancelWindow) {
		t.Fatalf("late cancel: %v, want ErrCancelWindow", err)
	}
	a, _ := s.GetAlert(ctx, "a3")
	if a.State != store.AlertRaised || a.Timeline[len(a.Timeline)-1].Action != alert.ActionCancelRefused {
		t.Errorf("after a late cancel: state %s, timeline %+v", a.State, a.Timeline)
	}
	// Acknowledge twice: the second is a clear error naming the owner.
	if _, err := svc.Acknowledge(ctx, "a3", "user:u1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Acknowledge(ctx, "a3", "user:u2", ""); !errors.Is(err, alert.ErrIllegal) {
		t.Errorf("second acknowledge: %v, want ErrIllegal", err)
	}
	if a, err := svc.Resolve(ctx, "a3", "user:u1", alert.OutcomeAssisted, ""); err != nil || a.State != store.AlertResolved {
		t.Errorf("resolve: %s, %v", a.State, err)
	}
	if _, err := svc.Acknowledge(ctx, "nope", "user:u1", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("acknowledge unknown: %v, want ErrNotFound", err)
	}
}
