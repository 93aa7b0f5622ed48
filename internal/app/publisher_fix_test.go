package app

import (
	"testing"
	"time"

	"vigil/internal/event"
)

// TestAlarmGetsLastFix: an alarm without a position goes out with its
// device's newest fix published before it — when that fix is at most
// alarmFixAge old — and never with another device's; an alarm with its own
// position keeps it; a later but older (store-and-forward) fix does not
// replace a newer one.
func TestAlarmGetsLastFix(t *testing.T) {
	p := &publisher{}
	for i := range p.fixes {
		p.fixes[i].m = map[string]event.Position{}
	}
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	pos := func(dev string, at time.Time, lat float64) event.Event {
		return event.Event{DeviceID: dev, Type: event.TypePosition, DeviceTime: at, Position: &event.Position{Lat: lat, Lon: -1.5, AccuracyM: 8}}
	}
	sos := func(dev string, at time.Time) event.Event {
		return event.Event{DeviceID: dev, Type: event.TypeButton, DeviceTime: at, Button: &event.Button{Kind: event.ButtonSOS}}
	}
	send := func(evs ...event.Event) []event.Event {
		p.withLastFix(partitionOf(evs[0].DeviceID), evs)
		return evs
	}
	send(pos("d1", t0, 53.80))
	send(pos("d1", t0.Add(-time.Minute), 53.70)) // late, older: not the newest
	send(pos("d2", t0, 51.50))
	got := send(sos("d1", t0.Add(2*time.Second)))[0]
	if got.Position == nil || got.Position.Lat != 53.80 || !got.Position.FixTime.Equal(t0) {
		t.Errorf("SOS position %+v, want d1's newest fix (53.80 at t0)", got.Position)
	}
	// One batch (store-and-forward over HTTPS): the fix just before it.
	b := send(pos("d3", t0, 52.0), sos("d3", t0.Add(time.Second)))
	if b[1].Position == nil || b[1].Position.Lat != 52.0 {
		t.Errorf("batched SOS position %+v", b[1].Position)
	}
	if got := send(sos("d1", t0.Add(alarmFixAge+time.Second)))[0]; got.Position != nil {
		t.Errorf("an SOS %v after the fix got it: %+v", alarmFixAge+time.Second, got.Position)
	}
	own := sos("d1", t0.Add(3*time.Second))
	own.Position = &event.Position{Lat: 10, Lon: 10, AccuracyM: 5}
	if got := send(own)[0]; got.Position.Lat != 10 {
		t.Errorf("an SOS with its own position got %+v", got.Position)
	}
	if got := send(sos("d9", t0))[0]; got.Position != nil {
		t.Errorf("a device never seen got %+v", got.Position)
	}
	hb := event.Event{DeviceID: "d1", Type: event.TypeHeartbeat, DeviceTime: t0.Add(time.Second), Heartbeat: &event.Heartbeat{}}
	if got := send(hb)[0]; got.Position != nil {
		t.Errorf("a heartbeat got a position: %+v", got.Position)
	}
}
