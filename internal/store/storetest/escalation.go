package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/store"
)

func testEscalationPolicies(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	if _, err := s.GetEscalationPolicy(ctx, "acme", "sos"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("absent policy: %v, want ErrNotFound", err)
	}
	must(t, s.PutEscalationPolicy(ctx, "acme", "sos", `{"steps":[1]}`, at(0)), "put")
	must(t, s.PutEscalationPolicy(ctx, "acme", "*", `{"steps":[2]}`, at(0)), "put default")
	must(t, s.PutEscalationPolicy(ctx, "acme", "sos", `{"steps":[3]}`, at(time.Minute)), "replace")
	got, err := s.GetEscalationPolicy(ctx, "acme", "sos")
	must(t, err, "get")
	if got != `{"steps":[3]}` {
		t.Errorf("policy %s, want the replacement", got)
	}
	all, err := s.ListEscalationPolicies(ctx, "acme")
	must(t, err, "list")
	if diff := cmp.Diff(map[string]string{"sos": `{"steps":[3]}`, "*": `{"steps":[2]}`}, all); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
	if err := s.PutEscalationPolicy(ctx, "nope", "sos", `{}`, at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("policy of an unknown org: %v, want ErrNotFound", err)
	}
}

func testEscalationLadder(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	_, _, err := s.RaiseAlert(ctx, sosAlert("a1", at(time.Minute)), store.AlertEntry{At: at(time.Minute), Actor: "device:d1", Action: "raised", Cause: "ev:1"})
	must(t, err, "raise")

	e := store.Escalation{AlertID: "a1", OrgID: "acme", Policy: `{"p":1}`, StartedAt: at(time.Minute), NextAt: at(time.Minute)}
	got, created, err := s.StartEscalation(ctx, e)
	must(t, err, "start")
	want := e
	want.State, want.Version = store.EscalationActive, 1
	if diff := cmp.Diff(want, got, opts); diff != "" || !created {
		t.Errorf("started (created %v) (-want +got):\n%s", created, diff)
	}
	// A second start (another instance, a replay) keeps the first.
	again := e
	again.Policy, again.Step = `{"p":2}`, 3
	got, created, err = s.StartEscalation(ctx, again)
	must(t, err, "start again")
	if created || got.Policy != `{"p":1}` || got.Step != 0 {
		t.Errorf("second start: created %v, %+v; want the first ladder", created, got)
	}

	next := got
	next.Step, next.Attempt, next.NextAt = 1, 2, at(3*time.Minute)
	upd, err := s.UpdateEscalation(ctx, next)
	must(t, err, "update")
	if upd.Version != 2 {
		t.Errorf("version %d after one update, want 2", upd.Version)
	}
	if _, err := s.UpdateEscalation(ctx, next); !errors.Is(err, store.ErrConflict) {
		t.Errorf("stale update: %v, want ErrConflict", err)
	}
	if _, err := s.UpdateEscalation(ctx, store.Escalation{AlertID: "nope", Version: 1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update of an absent ladder: %v, want ErrNotFound", err)
	}
	fetched, err := s.GetEscalation(ctx, "a1")
	must(t, err, "get")
	if diff := cmp.Diff(upd, fetched, opts); diff != "" {
		t.Errorf("stored ladder (-want +got):\n%s", diff)
	}
	var active []string
	must(t, s.EachActiveEscalation(ctx, func(e store.Escalation) error { active = append(active, e.AlertID); return nil }), "each")
	if len(active) != 1 {
		t.Errorf("active ladders %v, want [a1]", active)
	}
	upd.State, upd.StopReason = store.EscalationStopped, "acknowledged"
	_, err = s.UpdateEscalation(ctx, upd)
	must(t, err, "stop")
	active = nil
	must(t, s.EachActiveEscalation(ctx, func(e store.Escalation) error { active = append(active, e.AlertID); return nil }), "each")
	if len(active) != 0 {
		t.Errorf("active ladders after a stop %v, want none", active)
	}
}

func testDeliveries(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	_, _, err := s.RaiseAlert(ctx, sosAlert("a1", at(time.Minute)), store.AlertEntry{At: at(time.Minute), Actor: "device:d1", Action: "raised", Cause: "ev:1"})
	must(t, err, "raise")
	d := store.Delivery{Key: "a1/raised/0/0/email/ann@example.org", AlertID: "a1", OrgID: "acme", Event: "raised",
		Channel: "email", Target: "ann@example.org", CreatedAt: at(time.Minute)}
	got, created, err := s.BeginDelivery(ctx, d)
	must(t, err, "begin")
	if !created || got.Status != store.DeliveryPending || got.CreatedAt.Sub(at(time.Minute)).Abs() >= time.Microsecond {
		t.Errorf("begun: created %v, %+v", created, got)
	}
	d2 := d
	d2.Key, d2.Channel, d2.Target, d2.CreatedAt = "a1/raised/0/0/sms/+447700900123", "sms", "+447700900123", at(2*time.Minute)
	_, _, err = s.BeginDelivery(ctx, d2)
	must(t, err, "begin second")

	done := d
	done.Status, done.ProviderID, done.Latency, done.DoneAt = store.DeliverySent, "msg-1", 40*time.Millisecond, at(time.Minute+time.Second)
	must(t, s.FinishDelivery(ctx, done), "finish")
	// Beginning it again (a resumed ladder) finds it sent.
	got, created, err = s.BeginDelivery(ctx, d)
	must(t, err, "begin again")
	if created || got.Status != store.DeliverySent || got.ProviderID != "msg-1" || got.Latency != 40*time.Millisecond {
		t.Errorf("begun again: created %v, %+v; want the sent record", created, got)
	}
	list, err := s.ListDeliveries(ctx, "a1")
	must(t, err, "list")
	if len(list) != 2 || list[0].Channel != "email" || list[1].Channel != "sms" || list[1].Status != store.DeliveryPending {
		t.Errorf("deliveries %+v", list)
	}
	if err := s.FinishDelivery(ctx, store.Delivery{Key: "nope", Status: store.DeliveryFailed}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("finish of an unknown delivery: %v, want ErrNotFound", err)
	}
}
