package geofence

import "time"

// State is what the caller keeps per (person, fence) between fixes. The
// zero State is a person never seen relative to the fence.
type State struct {
	// Side is the confirmed side; Unknown until the first confirmation.
	Side Side
	// Pending is the side a crossing (or the first confirmation) is
	// waiting on, observed since PendingSince; Unknown when none is.
	Pending      Side
	PendingSince time.Time
	// LastFix is the time of the newest fix taken into account; older
	// fixes are ignored.
	LastFix time.Time
}

// Transition is what a fix changed.
type Transition uint8

const (
	// NoTransition: the confirmed side is unchanged.
	NoTransition Transition = iota
	// Enter: confirmed crossing from Outside to Inside.
	Enter
	// Exit: confirmed crossing from Inside to Outside.
	Exit
	// FirstInside: the first confirmed side (from Unknown) is Inside.
	FirstInside
	// FirstOutside: the first confirmed side (from Unknown) is Outside.
	FirstOutside
)

func (t Transition) String() string {
	switch t {
	case Enter:
		return "enter"
	case Exit:
		return "exit"
	case FirstInside:
		return "first_inside"
	case FirstOutside:
		return "first_outside"
	}
	return "none"
}

// Step folds one relation (from Fence.Relate) observed at time at into the
// state, with the fence's dwell time, and returns the new state and what
// changed. It is a pure function:
//
//   - A fix older than prev.LastFix is ignored (state returned unchanged).
//   - Unknown (an uncertain fix) is no information: it never changes the
//     side and neither starts, cancels nor confirms a pending crossing
//     (it only moves LastFix). Jitter at the edge therefore cannot raise a
//     transition, and a person lingering on the edge with a poor fix
//     keeps the side last confirmed.
//   - A certain fix on the confirmed side cancels any pending crossing.
//   - A certain fix on the other side starts a pending crossing (or keeps
//     the running one); the crossing is confirmed on the first certain fix
//     on that side at least dwell after the pending one started, with no
//     certain fix on the old side in between. With dwell <= 0 the first
//     such fix confirms at once.
//   - From Unknown the first side is confirmed the same way (dwell
//     applies) and reported as FirstInside or FirstOutside, not as
//     Enter/Exit: the person was not seen crossing. Whether that is a
//     breach is the rule's business: Rule.Violated(state.Side) is true
//     for FirstOutside of a MustStayInside fence (a worker starting the
//     shift outside the site) and for FirstInside of a MustNotEnter one.
//
// The usual caller raises an alert when tr != NoTransition and
// fence.Rule.Violated(state.Side) and the fence is ActiveAt(at), and
// clears it on a transition to the safe side.
func Step(prev State, rel Side, at time.Time, dwell time.Duration) (State, Transition) {
	if at.Before(prev.LastFix) {
		return prev, NoTransition
	}
	s := prev
	s.LastFix = at
	if rel != Inside && rel != Outside {
		return s, NoTransition
	}
	if rel == s.Side {
		s.Pending, s.PendingSince = Unknown, time.Time{}
		return s, NoTransition
	}
	if s.Pending != rel {
		s.Pending, s.PendingSince = rel, at
	}
	if at.Sub(s.PendingSince) < dwell {
		return s, NoTransition
	}
	old := s.Side
	s.Side, s.Pending, s.PendingSince = rel, Unknown, time.Time{}
	switch {
	case old == Unknown && rel == Inside:
		return s, FirstInside
	case old == Unknown:
		return s, FirstOutside
	case rel == Inside:
		return s, Enter
	}
	return s, Exit
}
