package clock_test

import (
	"testing"
	"testing/synctest"
	"time"

	"vigil/internal/clock"
)

var t0 = time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)

func fired(tm clock.Timer) (time.Time, bool) {
	select {
	case at := <-tm.C():
		return at, true
	default:
		return time.Time{}, false
	}
}

func TestManualFiresInOrderAtEachInstant(t *testing.T) {
	m := clock.NewManual(t0)
	a, b, c := m.NewTimer(), m.NewTimer(), m.NewTimer()
	a.ResetAt(t0.Add(30 * time.Minute))
	b.ResetAt(t0.Add(10 * time.Minute))
	c.ResetAt(t0.Add(2 * time.Hour))
	if m.Armed() != 3 {
		t.Fatalf("armed %d, want 3", m.Armed())
	}
	m.Advance(9 * time.Minute)
	if _, ok := fired(b); ok {
		t.Fatal("b fired a minute early")
	}
	m.Advance(time.Hour)
	if at, ok := fired(b); !ok || !at.Equal(t0.Add(10*time.Minute)) {
		t.Errorf("b: %v %v, want its own instant", at, ok)
	}
	if at, ok := fired(a); !ok || !at.Equal(t0.Add(30*time.Minute)) {
		t.Errorf("a: %v %v, want its own instant", at, ok)
	}
	if _, ok := fired(c); ok {
		t.Error("c fired an hour early")
	}
	if got := m.Now(); !got.Equal(t0.Add(69 * time.Minute)) {
		t.Errorf("now %v", got)
	}
	if m.Armed() != 1 {
		t.Errorf("armed %d, want 1", m.Armed())
	}
}

func TestManualResetStopAndPast(t *testing.T) {
	m := clock.NewManual(t0)
	tm := m.NewTimer()
	tm.ResetAt(t0.Add(-time.Minute)) // already past: fires at once
	if at, ok := fired(tm); !ok || !at.Equal(t0) {
		t.Errorf("past deadline: %v %v", at, ok)
	}
	tm.ResetAt(t0.Add(time.Minute))
	tm.Stop()
	m.Advance(time.Hour)
	if _, ok := fired(tm); ok {
		t.Error("a stopped timer fired")
	}
	// A firing not received is discarded by the next arming.
	tm.ResetAt(m.Now())
	tm.ResetAt(m.Now().Add(time.Minute))
	if _, ok := fired(tm); ok {
		t.Error("a stale firing survived ResetAt")
	}
	m.Advance(-time.Hour)
	if !m.Now().Equal(t0.Add(time.Hour)) {
		t.Errorf("the clock went back to %v", m.Now())
	}
}

func TestRealTimerInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := clock.Real{}.NewTimer()
		start := time.Now()
		tm.ResetAt(start.Add(90 * time.Second))
		at := <-tm.C()
		if d := at.Sub(start); d != 90*time.Second {
			t.Errorf("fired after %v", d)
		}
	})
}

func TestTimersOf(t *testing.T) {
	if _, ok := clock.TimersOf(clock.Func(time.Now)).(clock.Real); !ok {
		t.Error("a Func clock should fall back to real timers")
	}
	m := clock.NewManual(t0)
	if clock.TimersOf(m) != clock.Timers(m) {
		t.Error("a Manual clock makes its own timers")
	}
}
