package deadline_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"vigil/internal/clock"
	"vigil/internal/deadline"
)

// TestManualClock: with a clock.Manual, Run sleeps until the test moves the
// clock past the earliest deadline, and fires each item when its instant
// is passed, in order, however far the clock jumps.
func TestManualClock(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	m := clock.NewManual(t0)
	s := deadline.New[string](deadline.Config{Clock: m})
	got := make(chan deadline.Item[string], 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, func(due []deadline.Item[string]) {
			for _, it := range due {
				got <- it
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })

	s.Set("missed", t0.Add(35*time.Minute))
	s.Set("reminder", t0.Add(25*time.Minute))
	waitArmed(t, m, t0.Add(25*time.Minute), s)
	m.Advance(24 * time.Minute)
	select {
	case it := <-got:
		t.Fatalf("%s fired a minute early", it.Key)
	default:
	}
	m.Advance(time.Hour) // past both: each fires, earliest first
	for _, want := range []string{"reminder", "missed"} {
		select {
		case it := <-got:
			if it.Key != want {
				t.Errorf("fired %s, want %s", it.Key, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never fired", want)
		}
	}
}

// waitArmed waits until Run sleeps on the clock for next: the Scheduler's
// earliest deadline is next and a timer of the clock is armed.
func waitArmed(t *testing.T, m *clock.Manual, next time.Time, s *deadline.Scheduler[string]) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); runtime.Gosched() {
		if at, ok := s.Next(); ok && at.Equal(next) && m.Armed() == 1 {
			return
		}
	}
	t.Fatal("Run never went to sleep on the manual clock")
}
