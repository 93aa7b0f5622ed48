package safety_test

import (
	"context"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"vigil/internal/event"
	"vigil/internal/safety"
)

func window(moving bool, seed int) *event.Motion {
	m := &event.Motion{RateHz: 50}
	for i := range 100 {
		noise := 0.004 * math.Sin(float64(i*7+seed))
		a := []float64{noise, -noise, 1 + noise}
		if moving {
			a[2] += 0.3 * math.Sin(2*math.Pi*float64(i)/25) // ~2 Hz gait
		}
		m.Accel = append(m.Accel, a)
	}
	return m
}

func TestMoving(t *testing.T) {
	if safety.Moving(window(false, 1)) {
		t.Error("a still window counts as moving")
	}
	if !safety.Moving(window(true, 1)) {
		t.Error("a walking window counts as still")
	}
	if safety.Moving(nil) || safety.Moving(&event.Motion{}) {
		t.Error("an empty window counts as moving")
	}
}

// TestManDownAlarm: a device's own man-down alarm is a 30 s pre-alert,
// raised when nobody cancels it; a cancel inside the window cancels it.
func TestManDownAlarm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		t0 := time.Now()
		alarm := func(kind event.AlarmKind) func(*event.Event) {
			return func(e *event.Event) { e.Alarm = &event.Alarm{Kind: kind} }
		}
		w.send(w.ev("d1", event.TypeAlarm, alarm(event.AlarmManDown)))
		w.wantKinds("man-down", "man_down/pending")
		at(t0, 30*time.Second)
		w.wantKinds("after 30 s", "man_down/raised")
		w.send(w.ev("d2", event.TypeAlarm, alarm(event.AlarmNoMotion)))
		at(t0, 40*time.Second)
		w.send(w.ev("d2", event.TypeButton, button(event.ButtonCancel, "")))
		w.wantKinds("no-motion cancelled", "no_motion/cancelled", "man_down/raised")
	})
}

// TestNoMotionInSession: motion windows without movement for 2 minutes
// during a session raise a no_motion pre-alert, then the alert; one per
// still spell; outside a session nothing is watched.
func TestNoMotionInSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		ctx := context.Background()
		t0 := time.Now()
		send := func(moving bool) {
			t.Helper()
			if err := w.eng.HandleMotion(ctx, []safety.Motion{{DeviceID: "d1", End: time.Now(), Moving: safety.Moving(window(moving, 3))}}); err != nil {
				t.Fatal(err)
			}
		}
		// Off duty: still for 5 minutes, nothing.
		for i := range 150 {
			at(t0, time.Duration(i)*2*time.Second)
			send(false)
		}
		w.wantKinds("off duty")
		w.startSession(safety.StartRequest{PersonID: "p1", Duration: 4 * time.Hour})
		t1 := time.Now()
		for i := range 30 { // walking for a minute
			at(t1, time.Duration(i)*2*time.Second)
			send(true)
		}
		moved := time.Now() // last moving window at t1+58s
		for i := 1; i <= 59; i++ {
			at(moved, time.Duration(i)*2*time.Second)
			send(false)
		}
		w.wantKinds("still for 1m58s")
		at(moved, 2*time.Minute)
		w.wantKinds("still for 2m", "no_motion/pending")
		for i := 61; i <= 120; i++ {
			at(moved, time.Duration(i)*2*time.Second)
			send(false)
		}
		w.wantKinds("still for 4m: raised once", "no_motion/raised")
	})
}
