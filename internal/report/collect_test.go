package report_test

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"vigil/internal/report"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
)

// seeder raises alerts straight into a real SQLite store.
type seeder struct {
	t   *testing.T
	ctx context.Context
	st  *sqlite.Store
}

func newSeeder(t *testing.T, orgs ...string) *seeder {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "v.db"), sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, o := range orgs {
		if err := st.CreateOrg(ctx, store.Org{ID: o, Name: o}); err != nil {
			t.Fatal(err)
		}
	}
	return &seeder{t: t, ctx: ctx, st: st}
}

// raise stores a raised alert (or a pending one, with pendingFor) and
// returns it as stored.
func (s *seeder) raise(org, id, kind string, at time.Time, pendingFor time.Duration) store.Alert {
	s.t.Helper()
	a := store.Alert{ID: id, OrgID: org, Kind: kind, Severity: "critical", State: store.AlertRaised, DedupKey: id,
		RaisedAt: at, CauseTime: at.Add(-2 * time.Second)}
	if pendingFor > 0 {
		a.State, a.PendingUntil = store.AlertPending, at.Add(pendingFor)
	}
	got, _, err := s.st.RaiseAlert(s.ctx, a, store.AlertEntry{At: at, Actor: "engine", Action: "raised", Cause: "test:" + id})
	if err != nil {
		s.t.Fatal(err)
	}
	return got
}

func (s *seeder) update(a store.Alert, f func(*store.Alert)) store.Alert {
	s.t.Helper()
	f(&a)
	got, err := s.st.UpdateAlert(s.ctx, a, store.AlertEntry{At: a.RaisedAt, Actor: "test", Action: string(a.State)})
	if err != nil {
		s.t.Fatal(err)
	}
	return got
}

func (s *seeder) deliver(a store.Alert, channel string, status store.DeliveryStatus, done time.Time) {
	s.t.Helper()
	d := store.Delivery{Key: a.ID + "/" + channel, AlertID: a.ID, OrgID: a.OrgID, Event: "raised", Channel: channel,
		Target: "feed", CreatedAt: done.Add(-100 * time.Millisecond)}
	if _, _, err := s.st.BeginDelivery(s.ctx, d); err != nil {
		s.t.Fatal(err)
	}
	d.Status, d.DoneAt = status, done
	if err := s.st.FinishDelivery(s.ctx, d); err != nil {
		s.t.Fatal(err)
	}
}

// TestCollect reads November 2026 from a real store: more than one page
// of alerts, groups raised at the same instant split across the page
// boundary, alerts on both sides of the month, another organisation's.
func TestCollect(t *testing.T) {
	t.Parallel() // seeding 1200 alerts, one transaction each, is slow under -race
	s := newSeeder(t, "acme", "other")
	p, err := report.ParseMonth("2026-11", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	s.raise("acme", "oct", "sos", p.From.Add(-time.Nanosecond), 0)
	s.raise("acme", "dec", "sos", p.To, 0)
	s.raise("other", "other-nov", "sos", p.From.Add(time.Hour), 0)
	first := s.raise("acme", "first", "sos", p.From, 0)
	s.update(first, func(a *store.Alert) {
		a.State, a.AcknowledgedAt, a.ClosedAt, a.Outcome = store.AlertResolved, p.From.Add(4*time.Second), p.From.Add(time.Minute), "false_alarm"
	})

	// 401 groups of 3 alerts raised at the same instant, every 30 min from
	// 00:30 on the 1st: the first page (newest 1000) ends one alert into a
	// group.
	const groups = 401
	want := 1 + 3*groups
	for g := range groups {
		at := p.From.Add(time.Duration(g+1) * 30 * time.Minute)
		for i := range 3 {
			s.raise("acme", fmt.Sprintf("g%03d-%d", g, i), []string{"sos", "fall", "missed_checkin"}[i], at, 0)
		}
	}
	// A pre-alert in the last group's instant: raised to responders when it
	// ends, presented on the console first, acknowledged 5 s later.
	last := p.From.Add(groups * 30 * time.Minute)
	pre := s.raise("acme", "pre", "fall", last, 30*time.Second)
	pre = s.update(pre, func(a *store.Alert) { a.State = store.AlertRaised })
	s.deliver(pre, "email", store.DeliveryFailed, last.Add(30500*time.Millisecond))
	s.deliver(pre, "sms", store.DeliverySent, last.Add(33*time.Second))
	s.deliver(pre, "console", store.DeliverySent, last.Add(31*time.Second))
	s.update(pre, func(a *store.Alert) { a.State, a.AcknowledgedAt = store.AlertAcknowledged, last.Add(35*time.Second) })
	// A pre-alert the wearer cancelled.
	gone := s.raise("acme", "gone", "fall", last.Add(time.Minute), 30*time.Second)
	s.update(gone, func(a *store.Alert) { a.State, a.ClosedAt = store.AlertCancelled, last.Add(time.Minute+10*time.Second) })
	want += 2

	facts, err := report.Collect(s.ctx, s.st, "acme", p)
	if err != nil {
		t.Fatal(err)
	}
	if len(facts) != want {
		t.Fatalf("collected %d facts, want %d", len(facts), want)
	}
	seen := map[string]bool{}
	for i, f := range facts {
		if seen[f.AlertID] {
			t.Errorf("alert %s collected twice", f.AlertID)
		}
		seen[f.AlertID] = true
		if !p.Contains(f.Received) {
			t.Errorf("alert %s received %s, outside the month", f.AlertID, f.Received)
		}
		if i > 0 && f.Received.Before(facts[i-1].Received) {
			t.Errorf("facts out of order at %d: %s before %s", i, f.Received, facts[i-1].Received)
		}
	}
	for _, id := range []string{"oct", "dec", "other-nov"} {
		if seen[id] {
			t.Errorf("alert %s collected", id)
		}
	}
	byID := map[string]report.Fact{}
	for _, f := range facts {
		byID[f.AlertID] = f
	}
	wantFacts := []report.Fact{
		{AlertID: "first", Kind: "sos", Activation: p.From.Add(-2 * time.Second), Received: p.From, RaisedFor: p.From,
			Acknowledged: p.From.Add(4 * time.Second), Resolved: p.From.Add(time.Minute), Outcome: "false_alarm"},
		{AlertID: "pre", Kind: "fall", Activation: last.Add(-2 * time.Second), Received: last, RaisedFor: last.Add(30 * time.Second),
			Presented: last.Add(31 * time.Second), Acknowledged: last.Add(35 * time.Second)},
		{AlertID: "gone", Kind: "fall", Activation: last.Add(time.Minute - 2*time.Second), Received: last.Add(time.Minute),
			Cancelled: last.Add(time.Minute + 10*time.Second)},
	}
	for _, w := range wantFacts {
		if d := gocmp.Diff(w, byID[w.AlertID]); d != "" {
			t.Errorf("fact %s (-want +got)\n%s", w.AlertID, d)
		}
	}

	r := report.Compute("acme", p, facts)
	tot := r.Total
	if tot.Alerts != want || tot.Raised != want-1 || tot.Acknowledged != 2 || tot.Resolved != 1 || tot.CancelledPreAlert != 1 || tot.Open != want-2 {
		t.Errorf("total %+v", tot)
	}
	if got := tot.AcknowledgedWithin[0].Count; got != 2 {
		t.Errorf("acknowledged within 10 s: %d, want 2 (first after 4 s, the pre-alert 5 s after it ended)", got)
	}
	if len(r.Kinds) != 3 || r.Kinds[0].Kind != "fall" || r.Kinds[0].Alerts != groups+2 {
		t.Errorf("kinds %+v", r.Kinds)
	}
}

// TestCollectTies: a page full of alerts raised at one instant
// cannot be paged past with RaisedBefore; Collect says so instead of
// looping or dropping them. (An in-memory listing with the store's
// semantics: seeding 1001 alerts into SQLite takes long under -race, and
// TestCollect already pages a real store.)
func TestCollectTies(t *testing.T) {
	p, err := report.ParseMonth("2026-11", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	var src listing
	for i := range 1001 {
		src = append(src, store.Alert{ID: fmt.Sprintf("b%04d", i), Kind: "sos", State: store.AlertRaised, RaisedAt: p.From.Add(time.Hour)})
	}
	_, err = report.Collect(context.Background(), src, "", p)
	if err == nil || !strings.Contains(err.Error(), "1000 or more alerts raised at") {
		t.Fatalf("Collect = %v, want the too-many-at-one-instant error", err)
	}
	// 999 at one instant and two before it: the first page ends with one
	// of those two, the second starts again at that instant; all read once.
	src[999].RaisedAt, src[1000].RaisedAt = p.From, p.From
	facts, err := report.Collect(context.Background(), src, "", p)
	if err != nil || len(facts) != 1001 || facts[0].AlertID != "b0999" || facts[1].AlertID != "b1000" {
		t.Fatalf("Collect = %d facts, %v; want 1001 oldest first", len(facts), err)
	}
}

// listing is ListAlerts over a slice, as the stores do it: raised before
// the filter's time, newest first (then by id, descending), at most Limit.
type listing []store.Alert

func (l listing) ListAlerts(_ context.Context, f store.AlertFilter) ([]store.Alert, error) {
	var out []store.Alert
	for _, a := range l {
		if f.RaisedBefore.IsZero() || a.RaisedAt.Before(f.RaisedBefore) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b store.Alert) int {
		return cmp.Or(b.RaisedAt.Compare(a.RaisedAt), strings.Compare(b.ID, a.ID))
	})
	return out[:min(len(out), f.Limit)], nil
}

func (listing) ListDeliveries(context.Context, string) ([]store.Delivery, error) { return nil, nil }
