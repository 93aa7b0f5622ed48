package retention_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/clock"
	"vigil/internal/event"
	"vigil/internal/retention"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     store.RetentionPolicy
		field retention.Class // "" for valid
	}{
		{"all defaults", store.RetentionPolicy{}, ""},
		{"all set", store.RetentionPolicy{Positions: 30 * retention.Day, Events: retention.Day, Alerts: 3000 * retention.Day, Audit: 365 * retention.Day}, ""},
		{"positions below a day", store.RetentionPolicy{Positions: time.Hour}, retention.Positions},
		{"events not whole days", store.RetentionPolicy{Events: 36 * time.Hour}, retention.Events},
		{"events above ten years", store.RetentionPolicy{Events: 3651 * retention.Day}, retention.Events},
		{"alerts below a year", store.RetentionPolicy{Alerts: 364 * retention.Day}, retention.Alerts},
		{"audit below a year", store.RetentionPolicy{Audit: 30 * retention.Day}, retention.Audit},
		{"audit above thirty years", store.RetentionPolicy{Audit: 40 * 365 * retention.Day}, retention.Audit},
		{"negative", store.RetentionPolicy{Positions: -retention.Day}, retention.Positions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := retention.Validate(tc.p)
			var fe *retention.FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case tc.field != "" && !errors.As(err, &fe):
				t.Fatalf("Validate: %v, want a FieldError for %s", err, tc.field)
			case tc.field != "" && fe.Class != tc.field:
				t.Fatalf("Validate: error for %s (%v), want %s", fe.Class, err, tc.field)
			}
		})
	}
}

func TestEffective(t *testing.T) {
	got := retention.Effective(store.RetentionPolicy{OrgID: "acme", Positions: 7 * retention.Day})
	want := store.RetentionPolicy{OrgID: "acme", Positions: 7 * retention.Day, Events: 90 * retention.Day,
		Alerts: 8 * 365 * retention.Day, Audit: 6 * 365 * retention.Day}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Effective (-want +got):\n%s", diff)
	}
	for _, c := range retention.Classes {
		if err := retention.Validate(retention.Effective(store.RetentionPolicy{})); err != nil {
			t.Errorf("defaults out of bounds: %v", err)
		}
		if b := retention.BoundOf(c); retention.Default(c) < b.Min || retention.Default(c) > b.Max {
			t.Errorf("default of %s %v outside %v", c, retention.Default(c), b)
		}
	}
}

// countingStore records the limit of every purge call and checks no batch
// deletes more than it.
type countingStore struct {
	*sqlite.Store
	t       *testing.T
	calls   map[retention.Class][]int // rows deleted per call
	failOrg string
}

func (c *countingStore) rec(cl retention.Class, limit int, n int, err error) (int, error) {
	if n > limit {
		c.t.Errorf("%s: a batch of limit %d deleted %d", cl, limit, n)
	}
	c.calls[cl] = append(c.calls[cl], n)
	return n, err
}

func (c *countingStore) PurgePositions(ctx context.Context, org string, before time.Time, limit int) (int, error) {
	if org == c.failOrg {
		return 0, errors.New("disk on fire")
	}
	n, err := c.Store.PurgePositions(ctx, org, before, limit)
	return c.rec(retention.Positions, limit, n, err)
}

func (c *countingStore) PurgeEvents(ctx context.Context, org string, before time.Time, limit int) (int, error) {
	n, err := c.Store.PurgeEvents(ctx, org, before, limit)
	return c.rec(retention.Events, limit, n, err)
}

func (c *countingStore) PurgeAlerts(ctx context.Context, org string, before time.Time, limit int) (int, error) {
	n, err := c.Store.PurgeAlerts(ctx, org, before, limit)
	return c.rec(retention.Alerts, limit, n, err)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fixture: orgs acme (positions and events 2 days, alerts 1 year) and
// beta (defaults). acme's d2 has 12 positions and 7 events 3 days old
// and 2 of each an hour old; d1, whose person has an open alert, has old
// ones too; 3 alerts closed 400 days ago, 1 closed a day ago, 1 open
// since 500 days ago. beta's d9 has positions 3 days old (inside its 90
// days).
func fixture(t *testing.T) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"), sqlite.Options{AutoMigrate: true})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	for _, o := range []string{"acme", "beta"} {
		must(t, s.CreateOrg(ctx, store.Org{ID: o, Name: o, CreatedAt: now.Add(-1000 * retention.Day)}))
	}
	must(t, s.CreatePerson(ctx, store.Person{ID: "p1", OrgID: "acme", Kind: store.PersonWorker, Name: "Ann"}))
	for _, d := range []store.Device{{ID: "d1", OrgID: "acme", PersonID: "p1"}, {ID: "d2", OrgID: "acme"}, {ID: "d9", OrgID: "beta"}} {
		d.Name = d.ID
		must(t, s.CreateDevice(ctx, d))
		if d.PersonID != "" {
			must(t, s.AssignDevice(ctx, d.ID, d.PersonID))
		}
	}
	must(t, s.SetRetention(ctx, store.RetentionPolicy{OrgID: "acme", Positions: 2 * retention.Day, Events: 2 * retention.Day, Alerts: 365 * retention.Day}))

	var evs []event.Event
	add := func(org, dev string, typ event.Type, n int, age time.Duration) {
		for i := range n {
			tm := now.Add(-age).Add(time.Duration(i) * time.Second)
			e := event.Event{V: event.SchemaVersion, OrgID: org, DeviceID: dev, MsgID: fmt.Sprintf("%s-%s-%v-%d", dev, typ, age, i),
				Type: typ, DeviceTime: tm, ReceivedAt: tm, Source: event.SourceMQTT}
			if typ == event.TypePosition {
				e.Position = &event.Position{Lat: 51.5, Lon: -0.1, AccuracyM: 5}
			}
			evs = append(evs, e)
		}
	}
	add("acme", "d2", event.TypePosition, 12, 3*retention.Day)
	add("acme", "d2", event.TypePosition, 2, time.Hour)
	add("acme", "d2", event.TypeHeartbeat, 7, 3*retention.Day)
	add("acme", "d2", event.TypeHeartbeat, 2, time.Hour)
	add("acme", "d1", event.TypePosition, 4, 3*retention.Day)
	add("acme", "d1", event.TypeHeartbeat, 4, 3*retention.Day)
	add("beta", "d9", event.TypePosition, 3, 3*retention.Day)
	_, err = s.ApplyEvents(ctx, evs)
	must(t, err)

	alert := func(id, person string, raised time.Time, closed time.Time) {
		a := store.Alert{ID: id, OrgID: "acme", PersonID: person, Kind: "sos", Severity: "critical", State: store.AlertRaised,
			DedupKey: "sos:" + id, RaisedAt: raised, CauseTime: raised}
		_, _, err := s.RaiseAlert(ctx, a, store.AlertEntry{At: raised, Actor: "engine", Action: "raised", Cause: "c:" + id})
		must(t, err)
		if closed.IsZero() {
			return
		}
		a, err = s.GetAlert(ctx, id)
		must(t, err)
		a.State, a.ClosedAt, a.ClosedBy = store.AlertResolved, closed, "user:u1"
		_, err = s.UpdateAlert(ctx, a, store.AlertEntry{At: closed, Actor: "user:u1", Action: "resolved"})
		must(t, err)
	}
	for i := range 3 {
		alert(fmt.Sprintf("old%d", i), "", now.Add(-401*retention.Day), now.Add(-400*retention.Day))
	}
	alert("recent", "", now.Add(-2*retention.Day), now.Add(-retention.Day))
	alert("open", "p1", now.Add(-500*retention.Day), time.Time{})
	return s
}

func counts(t *testing.T, s *sqlite.Store, dev string) (positions, events int) {
	t.Helper()
	ps, err := s.Positions(context.Background(), dev, time.Time{}, time.Time{})
	must(t, err)
	es, err := s.ListEvents(context.Background(), store.EventFilter{DeviceID: dev, Limit: 1000})
	must(t, err)
	return len(ps), len(es)
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	s := fixture(t)
	cs := &countingStore{Store: s, t: t, calls: map[retention.Class][]int{}}
	p := retention.New(cs, clock.NewManual(now), nil, retention.Config{BatchRows: 5, BatchAlerts: 2})
	r, err := p.Run(ctx)
	must(t, err)
	if diff := cmp.Diff(map[retention.Class]int{retention.Positions: 12, retention.Events: 7, retention.Alerts: 3}, r.Rows); diff != "" {
		t.Errorf("rows purged (-want +got):\n%s", diff)
	}
	if _, ok := r.PerOrg["beta"]; ok {
		t.Errorf("beta purged %v, want nothing (its data is inside the defaults)", r.PerOrg["beta"])
	}
	// Batches: 5, 5, 2 for acme; beta's one short batch each.
	want := map[retention.Class][]int{
		retention.Positions: {5, 5, 2, 0},
		retention.Events:    {5, 2, 0},
		retention.Alerts:    {2, 1, 0},
	}
	if diff := cmp.Diff(want, cs.calls); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
	for dev, w := range map[string][2]int{"d2": {2, 2}, "d1": {4, 4}, "d9": {3, 0}} {
		if p, e := counts(t, s, dev); p != w[0] || e != w[1] {
			t.Errorf("%s keeps %d positions and %d events, want %d and %d", dev, p, e, w[0], w[1])
		}
	}
	for id, kept := range map[string]bool{"old0": false, "old1": false, "old2": false, "recent": true, "open": true} {
		_, err := s.GetAlert(ctx, id)
		if kept && err != nil || !kept && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("alert %s: GetAlert error %v, kept want %v", id, err, kept)
		}
	}

	// A second run finds nothing more.
	r, err = p.Run(ctx)
	must(t, err)
	if len(r.Rows) != 0 {
		t.Errorf("second run purged %v", r.Rows)
	}
}

func TestRunOrgFailureDoesNotStopOthers(t *testing.T) {
	s := fixture(t)
	cs := &countingStore{Store: s, t: t, calls: map[retention.Class][]int{}, failOrg: "acme"}
	// beta sorts after acme: it must still be purged (of nothing here),
	// and the error must name acme.
	must(t, s.SetRetention(context.Background(), store.RetentionPolicy{OrgID: "beta", Positions: retention.Day}))
	r, err := retention.New(cs, clock.NewManual(now), nil, retention.Config{}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "purge positions of acme") {
		t.Fatalf("Run: %v, want an error naming acme's positions", err)
	}
	if r.PerOrg["beta"][retention.Positions] != 3 {
		t.Errorf("beta purged %v, want its 3 positions", r.PerOrg["beta"])
	}
}

// TestPause: with Config.Pause the purger waits on its clock between
// batches, and only between batches.
func TestPause(t *testing.T) {
	s := fixture(t)
	clk := clock.NewManual(now)
	p := retention.New(s, clk, nil, retention.Config{BatchRows: 5, BatchAlerts: 2, Pause: time.Minute})
	done := make(chan retention.Report)
	go func() {
		r, err := p.RunOrg(context.Background(), "acme")
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	// Positions 5, 5, 2; events 5, 2; alerts 2, 1: four full batches,
	// four pauses.
	for i := range 4 {
		waitArmed(t, clk)
		select {
		case <-done:
			t.Fatalf("run ended after %d pauses, want 4", i)
		default:
		}
		clk.Advance(time.Minute)
	}
	r := <-done
	if r.Took != 4*time.Minute || r.Rows[retention.Positions] != 12 || r.Rows[retention.Alerts] != 3 {
		t.Errorf("report %+v, want 12 positions and 3 alerts in 4 minutes", r)
	}
}

func waitArmed(t *testing.T, clk *clock.Manual) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); runtime.Gosched() {
		if clk.Armed() == 1 {
			return
		}
	}
	t.Fatal("the purger never paused on the manual clock")
}
