// Package clock gives time as an input. Every package that keeps deadlines,
// timers or "now" takes a Clock so tests can run in virtual time: either
// the real clock inside a testing/synctest bubble, or a Manual clock that a
// test moves forward while real sockets, goroutines and databases run in
// real time (a whole-pipeline test over MQTT, where synctest cannot wait
// for network I/O).
//
// It is a leaf: it imports only the standard library.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// Timer fires once at an instant of its clock. Its channel holds at most
// one firing; arming or stopping it again discards one not yet received.
type Timer interface {
	// C delivers the clock's time when the timer fires.
	C() <-chan time.Time
	// ResetAt arms the timer to fire at at, at once if at is not after
	// the clock's now, replacing any earlier arming. An instant rather
	// than a duration, so that a Manual clock moved between reading Now
	// and arming cannot shift the firing.
	ResetAt(at time.Time)
	// Stop disarms the timer.
	Stop()
}

// Timers is a Clock that also makes timers on its own time.
type Timers interface {
	Clock
	// NewTimer returns a disarmed timer.
	NewTimer() Timer
}

// TimersOf returns c's timers if it makes them, else the real clock: a
// clock that only tells the time (Func) cannot wake anyone.
func TimersOf(c Clock) Timers {
	if t, ok := c.(Timers); ok {
		return t
	}
	return Real{}
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer returns a disarmed time.Timer. Under testing/synctest it runs
// on the bubble's fake time like any other.
func (Real) NewTimer() Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return realTimer{t}
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }

// ResetAt arms the timer for time.Until(at): the wall-clock gap at the
// moment of arming, then timed on the monotonic clock.
func (r realTimer) ResetAt(at time.Time) { r.t.Reset(time.Until(at)) }

func (r realTimer) Stop() { r.t.Stop() }

// Func adapts a function to a Clock.
type Func func() time.Time

// Now calls f.
func (f Func) Now() time.Time { return f() }

// Manual is a clock that moves only when told to, for tests that drive a
// whole running system through hours of virtual time in moments. Its zero
// value is not usable; make one with NewManual. It is safe for concurrent
// use.
type Manual struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*manualTimer]struct{} // the armed ones
}

// NewManual returns a Manual clock reading start.
func NewManual(start time.Time) *Manual {
	return &Manual{now: start, timers: make(map[*manualTimer]struct{})}
}

// Now returns the clock's time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// Advance moves the clock forward by d (a negative d is ignored: the clock
// never goes back). Timers due on the way fire in the order of their
// instants, the clock reading each one's instant as it fires, then the
// clock reads the end.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	end := m.now.Add(max(d, 0))
	for {
		var first *manualTimer
		for t := range m.timers {
			if !t.at.After(end) && (first == nil || t.at.Before(first.at)) {
				first = t
			}
		}
		if first == nil {
			break
		}
		if first.at.After(m.now) {
			m.now = first.at
		}
		m.fire(first)
	}
	m.now = end
}

// Armed returns how many of the clock's timers are armed: a test can wait
// for the system under test to go to sleep before moving time on.
func (m *Manual) Armed() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.timers)
}

// NewTimer returns a disarmed timer on m's time.
func (m *Manual) NewTimer() Timer {
	return &manualTimer{m: m, c: make(chan time.Time, 1)}
}

// fire disarms t and delivers now, dropping it if the last one is still
// unread (as a time.Timer's channel of capacity one would). m.mu is held.
func (m *Manual) fire(t *manualTimer) {
	delete(m.timers, t)
	select {
	case t.c <- m.now:
	default:
	}
}

type manualTimer struct {
	m  *Manual
	c  chan time.Time
	at time.Time
}

func (t *manualTimer) C() <-chan time.Time { return t.c }

func (t *manualTimer) ResetAt(at time.Time) {
	m := t.m
	m.mu.Lock()
	defer m.mu.Unlock()
	t.drain()
	t.at = at
	if !at.After(m.now) {
		m.fire(t)
		return
	}
	m.timers[t] = struct{}{}
}

func (t *manualTimer) Stop() {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	delete(t.m.timers, t)
	t.drain()
}

// drain discards a firing not yet received.
func (t *manualTimer) drain() {
	select {
	case <-t.c:
	default:
	}
}
