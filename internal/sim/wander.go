package sim

import (
	"math"
	"math/rand/v2"
	"time"

	"vigil/internal/event"
)

// This file holds the model's part of a lone worker's day beyond the
// usual streets: walking out of the zone and back, starting near its
// edge, a nearly flat battery, and the check-in and cancel buttons. Like
// model.go it is deterministic and does no I/O.

// wander sends the walker straight out to `to` metres from the centre (a
// visit is cut short). Beyond it, at the next corner, the walker stops for
// a few minutes, then roams as usual again, which turns it back towards
// the centre.
func (w *walker) wander(to float64) {
	w.leaveTo = to
	w.paused, w.visiting = 0, false
	w.dir = w.outward()
}

// outward is the grid direction that leads furthest from the centre.
func (w *walker) outward() int {
	best, bestDot := w.dir, math.Inf(-1)
	for d := range 4 {
		dx, dy := w.unit(d)
		if dot := dx*w.x + dy*w.y; dot > bestDot {
			best, bestDot = d, dot
		}
	}
	return best
}

// leaving takes a corner while wandering; false when not wandering.
func (w *walker) leaving(rng *rand.Rand) bool {
	if w.leaveTo <= 0 {
		return false
	}
	if math.Hypot(w.x, w.y) < w.leaveTo {
		w.dir = w.outward()
		return true
	}
	w.leaveTo = 0
	w.visiting = true
	w.paused = time.Duration((3 + rng.Float64()*5) * float64(time.Minute))
	return true
}

// placeAt puts the walker r metres from the centre in a random direction.
func (m *model) placeAt(r float64) {
	a := m.rng.Float64() * 2 * math.Pi
	m.walk.x, m.walk.y = r*math.Cos(a), r*math.Sin(a)
}

// Flat battery: it crosses the server's default low-battery warning
// (20 %) about five minutes after the start, when the second battery
// report goes out, and starts charging at 15 %.
const (
	flatBatteryPercent = 22
	flatBatteryDrainPH = 36
)

// flatBattery makes the battery nearly flat and draining fast.
func (m *model) flatBattery() {
	m.batt.percent, m.batt.charging, m.batt.drainPH = flatBatteryPercent, false, flatBatteryDrainPH
}

// button is a press of a button: a check-in carries the position it was
// pressed at, a cancel none.
func (m *model) button(kind event.ButtonKind, now time.Time) event.Message {
	m.advance(now)
	msg := m.envelope(event.TypeButton, now)
	msg.Button = &event.Button{Kind: kind}
	if kind != event.ButtonCancel {
		msg.Position = m.fix()
	}
	return msg
}
