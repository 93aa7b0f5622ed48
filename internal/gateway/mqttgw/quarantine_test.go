package mqttgw

import (
	"testing"
	"time"

	"vigil/internal/event"
)

func TestMisbehaviourWatch(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	w := newMisbehaviourWatch(100)
	hb := &event.Event{Type: event.TypeHeartbeat, DeviceTime: t0}

	// Denials: 19 in a minute are tolerated, the 20th flags once.
	for i := range 19 {
		if r := w.denied("d1", t0.Add(time.Duration(i)*time.Second)); r != "" {
			t.Fatalf("denial %d flagged %q", i, r)
		}
	}
	// A new window starts the count again.
	for i := range 19 {
		if r := w.denied("d1", t0.Add(time.Minute+time.Duration(i)*time.Second)); r != "" {
			t.Fatalf("next window, denial %d flagged %q", i, r)
		}
	}
	if r := w.denied("d1", t0.Add(time.Minute+30*time.Second)); r != ReasonACLDenials {
		t.Fatalf("20th denial in a window: %q", r)
	}
	if r := w.denied("d1", t0.Add(time.Minute+31*time.Second)); r != "" {
		t.Fatalf("reported twice: %q", r)
	}

	// Flood: 100 a minute allowed, the 101st flags.
	for i := range 100 {
		if r := w.accepted("d2", hb, t0); r != "" {
			t.Fatalf("message %d flagged %q", i, r)
		}
	}
	if r := w.accepted("d2", hb, t0); r != ReasonFlood {
		t.Fatalf("101st message: %q", r)
	}
	if r := newMisbehaviourWatch(-1).accepted("d2", hb, t0); r != "" {
		t.Fatalf("flood check off: %q", r)
	}

	// Travel: a fast car, a poor fix and a plane are fine; a jump is not.
	pos := func(lat, lon, acc float64, at time.Time) *event.Event {
		return &event.Event{Type: event.TypePosition, DeviceTime: at, Position: &event.Position{Lat: lat, Lon: lon, AccuracyM: acc}}
	}
	steps := []struct {
		ev   *event.Event
		want string
	}{
		{pos(51.5, -0.12, 10, t0), ""},
		{pos(51.6, -0.12, 10, t0.Add(time.Minute)), ""},                              // 11 km in a minute: a train
		{pos(52.6, -0.12, 100000, t0.Add(2*time.Minute)), ""},                        // 110 km, but a 100 km accuracy circle
		{pos(55.9, -3.2, 10, t0.Add(2*time.Hour)), ""},                               // Edinburgh two hours later: a plane
		{pos(51.5, -0.12, 10, t0.Add(2*time.Hour+time.Minute)), "impossible_travel"}, // back in a minute
	}
	for i, s := range steps {
		if r := w.accepted("d3", s.ev, t0.Add(time.Duration(i)*time.Minute)); r != s.want {
			t.Errorf("step %d: %q, want %q", i, r, s.want)
		}
	}
	w.forget(t0.Add(time.Hour))
	if _, ok := w.devices["d3"]; !ok {
		t.Error("a reported device was forgotten")
	}
}
