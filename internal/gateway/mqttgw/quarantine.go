package mqttgw

import (
	"math"
	"sync"
	"time"

	"vigil/internal/event"
)

// Quarantine reasons: why a device was flagged for misbehaving.
const (
	ReasonACLDenials       = "acl_denials"       // repeated publishes or subscriptions outside its own topics
	ReasonFlood            = "flood"             // more messages than a tracker ever sends
	ReasonImpossibleTravel = "impossible_travel" // two fixes further apart than anything can travel
)

// Quarantiner is told once when a device misbehaves (the app flags it in
// the store and the audit log: commands to it are blocked, supervisors see
// why). Its messages, alarms included, keep flowing.
type Quarantiner interface {
	QuarantineDevice(deviceID, orgID, reason string, at time.Time)
}

// Misbehaviour thresholds, per device over misbehaviourWindow.
const (
	misbehaviourWindow = time.Minute
	maxACLDenials      = 20
	// maxSpeedMPS is faster than an airliner; with 20 km of separation
	// beyond both fixes' accuracy circles, GPS noise cannot reach it.
	maxSpeedMPS    = 340.0
	minJumpMetres  = 20000.0
	defaultFloodPM = 6000
)

// behaviour counts one device's refusals and messages in the current
// window and keeps its newest fix.
type behaviour struct {
	start    time.Time
	denials  int
	messages int
	last     *event.Position
	lastAt   time.Time
	reported bool
}

// misbehaviourWatch flags devices that misbehave; each is reported once
// per process (the store keeps the flag until an admin releases it).
type misbehaviourWatch struct {
	mu      sync.Mutex
	flood   int // messages per window; <= 0: off
	devices map[string]*behaviour
}

func newMisbehaviourWatch(floodPerMinute int) *misbehaviourWatch {
	return &misbehaviourWatch{flood: floodPerMinute, devices: map[string]*behaviour{}}
}

// get is the device's counters, rolled to a new window when it ended.
func (w *misbehaviourWatch) get(id string, now time.Time) *behaviour {
	b := w.devices[id]
	if b == nil {
		b = &behaviour{start: now}
		w.devices[id] = b
	}
	if now.Sub(b.start) >= misbehaviourWindow {
		b.start, b.denials, b.messages = now, 0, 0
	}
	return b
}

// denied counts a refusal; it returns a reason once the device crosses
// the threshold (and not again).
func (w *misbehaviourWatch) denied(id string, now time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.get(id, now)
	b.denials++
	if b.denials >= maxACLDenials && !b.reported {
		b.reported = true
		return ReasonACLDenials
	}
	return ""
}

// accepted counts an accepted message and checks its fix against the
// last; it returns a reason once when the device crosses a line.
func (w *misbehaviourWatch) accepted(id string, ev *event.Event, now time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.get(id, now)
	b.messages++
	reason := ""
	if w.flood > 0 && b.messages > w.flood {
		reason = ReasonFlood
	}
	if p := ev.Position; p != nil {
		at := p.FixTime
		if at.IsZero() {
			at = ev.DeviceTime
		}
		if b.last != nil && impossible(*b.last, b.lastAt, *p, at) {
			reason = ReasonImpossibleTravel
		}
		if b.last == nil || at.After(b.lastAt) {
			q := *p
			b.last, b.lastAt = &q, at
		}
	}
	if reason == "" || b.reported {
		return ""
	}
	b.reported = true
	return reason
}

// forget drops devices whose window ended long ago and never misbehaved.
func (w *misbehaviourWatch) forget(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, b := range w.devices {
		if now.Sub(b.start) > 10*misbehaviourWindow && !b.reported {
			delete(w.devices, id)
		}
	}
}

// impossible reports whether two fixes are further apart, beyond both
// accuracy circles, than maxSpeedMPS allows in the time between them.
func impossible(a event.Position, at time.Time, b event.Position, bt time.Time) bool {
	d := metres(a.Lat, a.Lon, b.Lat, b.Lon) - a.AccuracyM - b.AccuracyM
	if d < minJumpMetres {
		return false
	}
	dt := math.Abs(bt.Sub(at).Seconds())
	return d > maxSpeedMPS*math.Max(dt, 1)
}

// metres is the great-circle distance (haversine, mean Earth radius).
func metres(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371008.8
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dp, dl := p2-p1, (lon2-lon1)*math.Pi/180
	h := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(h)))
}
