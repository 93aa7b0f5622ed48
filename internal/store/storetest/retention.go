package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/store"
)

const day = 24 * time.Hour

func testRetention(t *testing.T, s store.Store) {
	t.Run("Audit", func(t *testing.T) { testRetentionAudit(t, s) })
	ctx := context.Background()
	seed(t, s)
	must(t, s.AssignDevice(ctx, "d1", "p1"), "assign")

	// The policy: zero periods until set, whole replacement, unknown org.
	got, err := s.GetRetention(ctx, "acme")
	must(t, err, "get unset")
	if diff := cmp.Diff(store.RetentionPolicy{OrgID: "acme"}, got, opts); diff != "" {
		t.Errorf("unset policy (-want +got):\n%s", diff)
	}
	_, err = s.GetRetention(ctx, "nope")
	mustErr(t, err, store.ErrNotFound, "get of unknown org")
	p := store.RetentionPolicy{OrgID: "acme", Positions: 90 * day, Events: 30 * day, Alerts: 8 * 365 * day, Audit: 6 * 365 * day,
		UpdatedAt: at(time.Hour), UpdatedBy: "u1"}
	must(t, s.SetRetention(ctx, p), "set")
	got, err = s.GetRetention(ctx, "acme")
	must(t, err, "get")
	if diff := cmp.Diff(p, got, opts); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
	p2 := store.RetentionPolicy{OrgID: "acme", Positions: 7 * day, UpdatedAt: at(2 * time.Hour), UpdatedBy: "u2"}
	must(t, s.SetRetention(ctx, p2), "set again")
	got, err = s.GetRetention(ctx, "acme")
	must(t, err, "get again")
	if diff := cmp.Diff(p2, got, opts); diff != "" {
		t.Errorf("replaced policy (-want +got):\n%s", diff)
	}
	if got, _ := s.GetRetention(ctx, "beta"); got.Positions != 0 || !got.UpdatedAt.IsZero() {
		t.Errorf("beta's policy changed with acme's: %+v", got)
	}
	mustErr(t, s.SetRetention(ctx, store.RetentionPolicy{OrgID: "nope", Positions: day}), store.ErrNotFound, "set of unknown org")
	if err := s.SetRetention(ctx, store.RetentionPolicy{OrgID: "acme", Events: -day}); err == nil {
		t.Error("negative period: no error")
	}

	// Data: old and recent positions and events of d2; old ones of d1,
	// whose person p1 has an open alert; old ones of beta's d9.
	for i := range 10 {
		ti := at(time.Duration(i) * time.Minute)
		apply(t, s, 1, posEv("d2", "p"+string(rune('a'+i)), ti, ti, 51.5, -0.1))
	}
	apply(t, s, 1, posEv("d2", "recent", at(time.Hour), at(time.Hour), 51.5, -0.1))
	for i := range 5 {
		ti := at(time.Duration(i) * time.Minute)
		apply(t, s, 1, ev("d2", "h"+string(rune('a'+i)), ti, ti))
	}
	apply(t, s, 1, ev("d2", "hrecent", at(time.Hour), at(time.Hour)))
	apply(t, s, 3, posEv("d1", "q1", at(0), at(0), 51.5, -0.1), posEv("d1", "q2", at(time.Minute), at(time.Minute), 51.5, -0.1),
		ev("d1", "q3", at(0), at(0)))
	apply(t, s, 2, posEv("d9", "r1", at(0), at(0), 51.5, -0.1), ev("d9", "r2", at(0), at(0)))

	open := sosAlert("a1", at(0))
	open.DeviceID, open.SessionID, open.DedupKey = "", "", "sos:p1" // the person's alert, not the device's
	_, _, err = s.RaiseAlert(ctx, open, store.AlertEntry{At: at(0), Actor: "device:d1", Action: "raised", Cause: "c1"})
	must(t, err, "raise a1")

	drain := func(name string, fn func(limit int) (int, error), limit int, want ...int) {
		t.Helper()
		var gotN []int
		for {
			n, err := fn(limit)
			must(t, err, name)
			if n > limit {
				t.Fatalf("%s: deleted %d rows in a batch of %d", name, n, limit)
			}
			gotN = append(gotN, n)
			if n < limit {
				break
			}
		}
		if diff := cmp.Diff(want, gotN); diff != "" {
			t.Errorf("%s batches (-want +got):\n%s", name, diff)
		}
	}
	cut := at(30 * time.Minute)
	drain("purge positions", func(l int) (int, error) { return s.PurgePositions(ctx, "acme", cut, l) }, 4, 4, 4, 2)
	drain("purge events", func(l int) (int, error) { return s.PurgeEvents(ctx, "acme", cut, l) }, 2, 2, 2, 1)
	positions := func(dev string) int {
		t.Helper()
		ps, err := s.Positions(ctx, dev, time.Time{}, time.Time{})
		must(t, err, "positions of "+dev)
		return len(ps)
	}
	events := func(dev string) int {
		t.Helper()
		es, err := s.ListEvents(ctx, store.EventFilter{DeviceID: dev, Limit: 1000})
		must(t, err, "events of "+dev)
		return len(es)
	}
	check := func(when string, want map[string][2]int) {
		t.Helper()
		for dev, w := range want {
			if p, e := positions(dev), events(dev); p != w[0] || e != w[1] {
				t.Errorf("%s: %s has %d positions and %d events, want %d and %d", when, dev, p, e, w[0], w[1])
			}
		}
	}
	check("after purge", map[string][2]int{"d2": {1, 1}, "d1": {2, 1}, "d9": {1, 1}})
	if ps, _ := s.Positions(ctx, "d2", time.Time{}, time.Time{}); len(ps) != 1 || ps[0].MsgID != "recent" {
		t.Errorf("kept positions of d2: %+v, want the recent one", ps)
	}

	// Closing the alert releases d1's history.
	close := func(id string, state store.AlertState, closed time.Time) {
		t.Helper()
		a := mustGetAlert(t, s, id)
		a.State, a.ClosedAt, a.ClosedBy, a.Outcome = state, closed, "user:u1", "false_alarm"
		_, err := s.UpdateAlert(ctx, a, store.AlertEntry{At: closed, Actor: "user:u1", Action: string(state)})
		must(t, err, "close "+id)
	}
	close("a1", store.AlertResolved, at(2*time.Hour))
	drain("purge positions after close", func(l int) (int, error) { return s.PurgePositions(ctx, "acme", cut, l) }, 100, 2)
	drain("purge events after close", func(l int) (int, error) { return s.PurgeEvents(ctx, "acme", cut, l) }, 100, 1)
	check("after close", map[string][2]int{"d2": {1, 1}, "d1": {0, 0}, "d9": {1, 1}})

	// Alerts: a1 resolved at 2h with an escalation and a delivery, a2
	// cancelled at 3h, a3 open (raised long ago), b1 of beta closed.
	_, _, err = s.StartEscalation(ctx, store.Escalation{AlertID: "a1", OrgID: "acme", Policy: `{}`, StartedAt: at(0), NextAt: at(0)})
	must(t, err, "start escalation")
	_, _, err = s.BeginDelivery(ctx, store.Delivery{Key: "a1/raised/0/0/email/x", AlertID: "a1", OrgID: "acme", Event: "raised",
		Channel: "email", Target: "ann@example.org", CreatedAt: at(0)})
	must(t, err, "begin delivery")
	a2 := sosAlert("a2", at(time.Hour))
	a2.DedupKey = "sos:a2"
	_, _, err = s.RaiseAlert(ctx, a2, store.AlertEntry{At: at(time.Hour), Actor: "device:d1", Action: "raised", Cause: "c2"})
	must(t, err, "raise a2")
	close("a2", store.AlertCancelled, at(3*time.Hour))
	a3 := sosAlert("a3", at(-400*day))
	a3.DeviceID, a3.DedupKey = "d2", "sos:a3"
	_, _, err = s.RaiseAlert(ctx, a3, store.AlertEntry{At: at(-400 * day), Actor: "device:d2", Action: "raised", Cause: "c3"})
	must(t, err, "raise a3")
	b1 := sosAlert("b1", at(0))
	b1.OrgID, b1.DeviceID, b1.PersonID, b1.SessionID, b1.DedupKey = "beta", "d9", "p9", "", "sos:b1"
	_, _, err = s.RaiseAlert(ctx, b1, store.AlertEntry{At: at(0), Actor: "device:d9", Action: "raised", Cause: "c4"})
	must(t, err, "raise b1")
	close("b1", store.AlertResolved, at(time.Hour))

	drain("purge alerts", func(l int) (int, error) { return s.PurgeAlerts(ctx, "acme", at(150*time.Minute), l) }, 5, 1)
	_, err = s.GetAlert(ctx, "a1")
	mustErr(t, err, store.ErrNotFound, "purged alert a1")
	if ds, err := s.ListDeliveries(ctx, "a1"); err != nil || len(ds) != 0 {
		t.Errorf("deliveries of purged a1: %v, %v; want none", ds, err)
	}
	_, err = s.GetEscalation(ctx, "a1")
	mustErr(t, err, store.ErrNotFound, "escalation of purged a1")
	mustGetAlert(t, s, "a2")
	drain("purge alerts later", func(l int) (int, error) { return s.PurgeAlerts(ctx, "acme", at(10*day), l) }, 1, 1, 0)
	_, err = s.GetAlert(ctx, "a2")
	mustErr(t, err, store.ErrNotFound, "purged alert a2")
	if a := mustGetAlert(t, s, "a3"); a.State != store.AlertRaised || len(a.Timeline) != 1 {
		t.Errorf("open alert a3 after purge: %s with %d entries", a.State, len(a.Timeline))
	}
	mustGetAlert(t, s, "b1")
	// a3 is open on d2: d2's history is kept whatever the cut-off.
	drain("purge positions of a device with an open alert", func(l int) (int, error) { return s.PurgePositions(ctx, "acme", at(10*day), l) }, 100, 0)
	check("open alert on d2", map[string][2]int{"d2": {1, 1}})

	for name, fn := range map[string]func(int) (int, error){
		"positions": func(l int) (int, error) { return s.PurgePositions(ctx, "acme", cut, l) },
		"events":    func(l int) (int, error) { return s.PurgeEvents(ctx, "acme", cut, l) },
		"alerts":    func(l int) (int, error) { return s.PurgeAlerts(ctx, "acme", cut, l) },
	} {
		if _, err := fn(0); err == nil {
			t.Errorf("purge %s with limit 0: no error", name)
		}
	}
}

// testRetentionAudit: the audit log is cut only at checkpoints, whole
// ranges at a time, keeping the checkpointed record.
func testRetentionAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	var recs []store.AuditRecord
	for range 30 {
		recs = append(recs, auditRec("acme", "u1", "a", 0))
	}
	must(t, s.AppendAudit(ctx, recs, testChain(nil)), "append")
	for _, seq := range []int64{5, 10, 15, 20, 25} {
		must(t, s.PutAuditCheckpoint(ctx, store.AuditCheckpoint{Seq: seq, At: at(0), Hash: recs[seq-1].Hash, Signature: bytes.Repeat([]byte{1}, 64)}), "checkpoint")
	}
	if _, err := s.PurgeAuditBefore(ctx, 12, 100); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("purge before a seq without a checkpoint: %v, want ErrNotFound", err)
	}
	if _, err := s.PurgeAuditBefore(ctx, 20, 0); err == nil {
		t.Error("purge with limit 0: no error")
	}
	first := func() int64 {
		t.Helper()
		rs := listAudit(t, s, store.AuditFilter{Limit: 1})
		if len(rs) == 0 {
			t.Fatal("audit log empty")
		}
		return rs[0].Seq
	}
	// Limit 7 from record 1: the furthest checkpoint within reach is 5,
	// then 10, 15; limit 2 still takes a whole range (to 20); then nothing
	// is left below 20.
	for _, step := range []struct {
		limit, deleted int
		first          int64
	}{{7, 4, 5}, {7, 5, 10}, {7, 5, 15}, {2, 5, 20}, {100, 0, 20}} {
		n, err := s.PurgeAuditBefore(ctx, 20, step.limit)
		must(t, err, "purge audit")
		if n != step.deleted || first() != step.first {
			t.Fatalf("purge (limit %d): deleted %d, log starts at %d; want %d and %d", step.limit, n, first(), step.deleted, step.first)
		}
	}
	cps, err := s.ListAuditCheckpoints(ctx)
	must(t, err, "list checkpoints")
	if len(cps) != 2 || cps[0].Seq != 20 || cps[1].Seq != 25 {
		t.Errorf("checkpoints after purge: %+v, want 20 and 25", cps)
	}
	if rs := listAudit(t, s, store.AuditFilter{}); len(rs) != 11 || !bytes.Equal(rs[0].Hash, recs[19].Hash) {
		t.Errorf("records after purge: %d, first %d; want 11 from 20", len(rs), rs[0].Seq)
	}
	// Appending goes on from the head.
	more := []store.AuditRecord{auditRec("acme", "u1", "b", 0)}
	must(t, s.AppendAudit(ctx, more, testChain(nil)), "append after purge")
	if more[0].Seq != 31 {
		t.Errorf("appended after purge at %d, want 31", more[0].Seq)
	}
}
