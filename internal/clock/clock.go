// Package clock gives time as an input. Every package that keeps deadlines,
// timers or "now" takes a Clock so tests can run in virtual time.
//
// It is a leaf: it imports only the standard library.
package clock

import "time"

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Func adapts a function to a Clock.
type Func func() time.Time

// Now calls f.
func (f Func) Now() time.Time { return f() }
