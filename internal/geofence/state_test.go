package geofence_test

import (
	"testing"
	"time"

	"vigil/internal/geofence"
)

const (
	U = geofence.Unknown
	I = geofence.Inside
	O = geofence.Outside
)

// obs is one fix of a timeline: at seconds since t0, the relation, and
// what Step must return.
type obs struct {
	at      int
	rel     geofence.Side
	tr      geofence.Transition
	side    geofence.Side // State.Side after the fix
	pending geofence.Side // State.Pending after the fix
}

var t0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

func sec(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func TestStep(t *testing.T) {
	const dwell = 30 * time.Second
	insideAt0 := geofence.State{Side: I, LastFix: sec(0)}
	outsideAt0 := geofence.State{Side: O, LastFix: sec(0)}
	tests := []struct {
		name  string
		start geofence.State
		dwell time.Duration
		fixes []obs
	}{
		{"first fix inside, no dwell: confirmed at once", geofence.State{}, 0, []obs{
			{0, I, geofence.FirstInside, I, U},
		}},
		{"first fix outside, no dwell: confirmed at once", geofence.State{}, 0, []obs{
			{0, O, geofence.FirstOutside, O, U},
		}},
		{"first side waits for the dwell", geofence.State{}, dwell, []obs{
			{0, I, geofence.NoTransition, U, I},
			{29, I, geofence.NoTransition, U, I},
			{30, I, geofence.FirstInside, I, U},
			{40, I, geofence.NoTransition, I, U},
		}},
		{"first fixes disagree: the pending side restarts", geofence.State{}, dwell, []obs{
			{0, I, geofence.NoTransition, U, I},
			{20, O, geofence.NoTransition, U, O},
			{40, O, geofence.NoTransition, U, O},
			{50, O, geofence.FirstOutside, O, U},
		}},
		{"uncertain first fixes establish nothing", geofence.State{}, 0, []obs{
			{0, U, geofence.NoTransition, U, U},
			{10, U, geofence.NoTransition, U, U},
			{20, O, geofence.FirstOutside, O, U},
		}},
		{"exit after the dwell", insideAt0, dwell, []obs{
			{10, O, geofence.NoTransition, I, O},
			{39, O, geofence.NoTransition, I, O},
			{40, O, geofence.Exit, O, U},
			{50, O, geofence.NoTransition, O, U},
		}},
		{"enter after the dwell", outsideAt0, dwell, []obs{
			{10, I, geofence.NoTransition, O, I},
			{40, I, geofence.Enter, I, U},
		}},
		{"no dwell: exit on the first fix outside", insideAt0, 0, []obs{
			{10, O, geofence.Exit, O, U},
		}},
		{"negative dwell counts as none", insideAt0, -time.Minute, []obs{
			{10, O, geofence.Exit, O, U},
		}},
		{"a fix back inside cancels the pending exit", insideAt0, dwell, []obs{
			{10, O, geofence.NoTransition, I, O},
			{20, I, geofence.NoTransition, I, U},
			{41, O, geofence.NoTransition, I, O}, // restarts at 41, not 10
			{70, O, geofence.NoTransition, I, O},
			{71, O, geofence.Exit, O, U},
		}},
		{"uncertain fixes neither cancel nor confirm a pending exit", insideAt0, dwell, []obs{
			{10, O, geofence.NoTransition, I, O},
			{20, U, geofence.NoTransition, I, O},
			{45, U, geofence.NoTransition, I, O}, // past the dwell, but uncertain
			{50, O, geofence.Exit, O, U},
		}},
		{"uncertain fixes do not start a pending crossing", insideAt0, dwell, []obs{
			{10, U, geofence.NoTransition, I, U},
			{50, U, geofence.NoTransition, I, U},
			{60, O, geofence.NoTransition, I, O}, // pending from 60, not 10
			{89, O, geofence.NoTransition, I, O},
			{90, O, geofence.Exit, O, U},
		}},
		{"jitter at the edge never alerts", insideAt0, dwell, []obs{
			{10, U, geofence.NoTransition, I, U},
			{20, O, geofence.NoTransition, I, O},
			{30, U, geofence.NoTransition, I, O},
			{40, I, geofence.NoTransition, I, U},
			{50, O, geofence.NoTransition, I, O},
			{60, U, geofence.NoTransition, I, O},
			{70, I, geofence.NoTransition, I, U},
			{300, U, geofence.NoTransition, I, U},
		}},
		{"a fix older than the last is ignored", insideAt0, 0, []obs{
			{100, I, geofence.NoTransition, I, U},
			{50, O, geofence.NoTransition, I, U}, // would be an exit
			{99, O, geofence.NoTransition, I, U},
			{100, O, geofence.Exit, O, U}, // same time as the last: taken
		}},
		{"an old fix does not confirm a pending crossing", insideAt0, dwell, []obs{
			{10, O, geofence.NoTransition, I, O},
			{50, U, geofence.NoTransition, I, O},
			{45, O, geofence.NoTransition, I, O}, // ignored: older than 50
			{60, O, geofence.Exit, O, U},
		}},
		{"a confirmed side is not confirmed again", outsideAt0, 0, []obs{
			{10, O, geofence.NoTransition, O, U},
			{20, I, geofence.Enter, I, U},
			{30, I, geofence.NoTransition, I, U},
			{40, O, geofence.Exit, O, U},
		}},
		{"a long gap: two certain fixes on the new side a dwell apart confirm", insideAt0, dwell, []obs{
			{10, O, geofence.NoTransition, I, O},
			{3600, O, geofence.Exit, O, U},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.start
			for _, o := range tt.fixes {
				prev := s
				var tr geofence.Transition
				s, tr = geofence.Step(s, o.rel, sec(o.at), tt.dwell)
				if tr != o.tr || s.Side != o.side || s.Pending != o.pending {
					t.Fatalf("at %ds %v: got %v, side %v, pending %v; want %v, side %v, pending %v",
						o.at, o.rel, tr, s.Side, s.Pending, o.tr, o.side, o.pending)
				}
				if sec(o.at).Before(prev.LastFix) {
					if s != prev {
						t.Fatalf("at %ds: an old fix changed the state: %+v → %+v", o.at, prev, s)
					}
					continue
				}
				if !s.LastFix.Equal(sec(o.at)) {
					t.Fatalf("at %ds: LastFix = %v", o.at, s.LastFix)
				}
				if s.Pending == U && !s.PendingSince.IsZero() {
					t.Fatalf("at %ds: PendingSince %v without a pending side", o.at, s.PendingSince)
				}
			}
		})
	}
}

func TestTransitionString(t *testing.T) {
	for tr, want := range map[geofence.Transition]string{
		geofence.NoTransition: "none", geofence.Enter: "enter", geofence.Exit: "exit",
		geofence.FirstInside: "first_inside", geofence.FirstOutside: "first_outside",
	} {
		if got := tr.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", tr, got, want)
		}
	}
}
