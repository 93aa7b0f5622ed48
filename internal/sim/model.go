package sim

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"vigil/internal/event"
)

// This file is the deterministic half of the simulator: given a seed, a
// boot id and a sequence of times, a model produces the same messages
// every run. It does no I/O and starts no goroutines.

const (
	metresPerDegLat = 111_320.0
	walkSpeed       = 1.4    // m/s, an average walking pace
	roamRadius      = 1500.0 // m from the centre before a walker turns back
	maxStep         = 5 * time.Second
	fallWindowOdds  = 0.02 // share of motion windows holding a fall-like spike
	motionRateHz    = 50
)

// walker walks a street grid around a centre: straight along a block,
// then straight on, left or right at the corner, and now and then a stop
// of a few minutes at a "visit".
type walker struct {
	x, y     float64 // metres east and north of the centre
	gridRad  float64 // rotation of this walker's street grid
	dir      int     // 0..3: which of the grid's four directions
	segLeft  float64 // metres to the next corner
	speed    float64 // m/s while walking
	paused   time.Duration
	visiting bool
	leaveTo  float64 // > 0: walking out to this distance from the centre (wander.go)
}

func newWalker(rng *rand.Rand) walker {
	w := walker{
		gridRad: rng.Float64() * math.Pi / 2,
		dir:     rng.IntN(4),
		speed:   walkSpeed + (rng.Float64()-0.5)*0.4,
	}
	r := 800 * math.Sqrt(rng.Float64())
	a := rng.Float64() * 2 * math.Pi
	w.x, w.y = r*math.Cos(a), r*math.Sin(a)
	w.segLeft = 60 + rng.Float64()*120
	return w
}

// heading is the compass heading of the current direction, degrees in [0, 360).
func (w *walker) heading() float64 {
	h := math.Mod(w.gridRad*180/math.Pi+float64(w.dir)*90, 360)
	if h < 0 {
		h += 360
	}
	return h
}

func (w *walker) unit(dir int) (dx, dy float64) {
	// Compass heading: 0 = north (+y), 90 = east (+x).
	h := w.gridRad + float64(dir)*math.Pi/2
	return math.Sin(h), math.Cos(h)
}

// moving reports whether the walker is walking (not at a visit).
func (w *walker) moving() bool { return w.paused <= 0 }

// step advances the walker by dt.
func (w *walker) step(rng *rand.Rand, dt time.Duration) {
	for dt > 0 {
		d := min(dt, maxStep)
		dt -= d
		if w.paused > 0 {
			w.paused -= d
			if w.paused <= 0 {
				w.visiting = false
			}
			continue
		}
		dist := w.speed * d.Seconds()
		for dist > 0 {
			m := min(dist, w.segLeft)
			dx, dy := w.unit(w.dir)
			w.x += dx * m
			w.y += dy * m
			dist -= m
			w.segLeft -= m
			if w.segLeft <= 0 {
				w.corner(rng)
				if w.paused > 0 {
					break
				}
			}
		}
	}
}

// corner picks the next block: mostly straight on, sometimes a turn,
// always back towards the centre once too far out; sometimes a visit.
func (w *walker) corner(rng *rand.Rand) {
	w.segLeft = 60 + rng.Float64()*120
	if w.leaving(rng) {
		return
	}
	if math.Hypot(w.x, w.y) > roamRadius {
		best, bestDot := w.dir, math.Inf(1)
		for d := range 4 {
			dx, dy := w.unit(d)
			if dot := dx*w.x + dy*w.y; dot < bestDot {
				best, bestDot = d, dot
			}
		}
		w.dir = best
	} else {
		switch p := rng.Float64(); {
		case p < 0.2:
			w.dir = (w.dir + 1) % 4
		case p < 0.4:
			w.dir = (w.dir + 3) % 4
		}
	}
	w.speed = walkSpeed + (rng.Float64()-0.5)*0.4
	if rng.Float64() < 0.08 {
		w.visiting = true
		w.paused = time.Duration(2+rng.Float64()*13) * time.Minute
	}
}

// battery drains slowly while in use and charges when low.
type battery struct {
	percent  float64
	charging bool
	drainPH  float64 // percent per hour
	chargePH float64
}

func newBattery(rng *rand.Rand) battery {
	return battery{
		percent:  40 + rng.Float64()*60,
		drainPH:  1.5 + rng.Float64()*2.5,
		chargePH: 20 + rng.Float64()*20,
	}
}

func (b *battery) step(dt time.Duration) {
	h := dt.Hours()
	if b.charging {
		b.percent += b.chargePH * h
		if b.percent >= 98 {
			b.percent, b.charging = min(b.percent, 100), false
		}
		return
	}
	b.percent -= b.drainPH * h
	if b.percent <= 15 {
		b.percent, b.charging = max(b.percent, 0), true
	}
}

func (b *battery) reading() event.Battery {
	return event.Battery{Percent: int(math.Round(math.Max(0, math.Min(100, b.percent)))), Charging: b.charging}
}

// model is one simulated device's state and message factory.
type model struct {
	rng      *rand.Rand
	centre   [2]float64
	walk     walker
	batt     battery
	signal   float64 // dBm
	accuracy float64 // m, drifts within 5..30
	boot     string
	seq      uint64
	last     time.Time
}

// newModel builds the model of device index under seed. boot is the
// device's boot id, the prefix of every message id it sends.
func newModel(seed int64, index int, centre [2]float64, boot string, start time.Time) *model {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(index)))
	m := &model{
		rng:    rng,
		centre: centre,
		boot:   boot,
		last:   start,
	}
	m.walk = newWalker(rng)
	m.batt = newBattery(rng)
	m.signal = -100 + rng.Float64()*40
	m.accuracy = 5 + rng.Float64()*25
	return m
}

// advance moves the walker, battery and radio on to now. Time never runs
// backwards for a model.
func (m *model) advance(now time.Time) {
	if !now.After(m.last) {
		return
	}
	dt := now.Sub(m.last)
	m.last = now
	m.walk.step(m.rng, dt)
	m.batt.step(dt)
	m.signal = clamp(m.signal+m.rng.NormFloat64()*2, -115, -55)
	m.accuracy = clamp(m.accuracy+m.rng.NormFloat64()*2, 5, 30)
}

func (m *model) envelope(t event.Type, now time.Time) event.Message {
	m.seq++
	return event.Message{
		V:    event.SchemaVersion,
		ID:   m.boot + ":" + strconv.FormatUint(m.seq, 10),
		TS:   now.UTC(),
		Type: t,
	}
}

// fix is the GNSS reading: the true position plus noise of about the
// reported accuracy.
func (m *model) fix() *event.Position {
	sd := m.accuracy / 2
	x := m.walk.x + m.rng.NormFloat64()*sd
	y := m.walk.y + m.rng.NormFloat64()*sd
	lat := m.centre[0] + y/metresPerDegLat
	lon := m.centre[1] + x/(metresPerDegLat*math.Cos(m.centre[0]*math.Pi/180))
	p := &event.Position{
		Lat:       round(clamp(lat, -90, 90), 6),
		Lon:       round(clamp(lon, -180, 180), 6),
		AccuracyM: round(m.accuracy, 1),
	}
	speed := 0.0
	if m.walk.moving() {
		speed = round(max(0, m.walk.speed+m.rng.NormFloat64()*0.2), 2)
		h := round(m.walk.heading(), 1)
		if h >= 360 {
			h = 0
		}
		p.HeadingDeg = &h
	}
	p.SpeedMPS = &speed
	return p
}

func (m *model) position(now time.Time) event.Message {
	m.advance(now)
	msg := m.envelope(event.TypePosition, now)
	msg.Position = m.fix()
	return msg
}

func (m *model) heartbeat(now time.Time) event.Message {
	m.advance(now)
	msg := m.envelope(event.TypeHeartbeat, now)
	s := int(math.Round(m.signal))
	msg.Heartbeat = &event.Heartbeat{SignalDBm: &s}
	return msg
}

func (m *model) battery(now time.Time) event.Message {
	m.advance(now)
	msg := m.envelope(event.TypeBattery, now)
	b := m.batt.reading()
	msg.Battery = &b
	return msg
}

func (m *model) sos(now time.Time) event.Message {
	m.advance(now)
	msg := m.envelope(event.TypeButton, now)
	msg.Button = &event.Button{Kind: event.ButtonSOS}
	msg.Position = m.fix()
	return msg
}

// manDown is the device's own man-down (or no-motion) alarm.
func (m *model) manDown(now time.Time, kind event.AlarmKind) event.Message {
	m.advance(now)
	msg := m.envelope(event.TypeAlarm, now)
	msg.Alarm = &event.Alarm{Kind: kind}
	msg.Position = m.fix()
	return msg
}

// motion returns an accelerometer window. When fall is true, or by chance
// (fallWindowOdds), the window holds a fall-like spike and a second
// message is returned: the device's own fall event.
func (m *model) motion(now time.Time, fall bool) (window event.Message, detected *event.Message) {
	m.advance(now)
	fall = fall || m.rng.Float64() < fallWindowOdds
	window = m.envelope(event.TypeMotion, now)
	n := int((2 + m.rng.Float64()*2) * motionRateHz)
	accel := make([][]float64, n)
	gyro := make([][]float64, n)
	walking := m.walk.moving()
	stepHz := 1.7 + m.rng.Float64()*0.3
	phase := m.rng.Float64() * 2 * math.Pi
	// A little tilt: the device is worn, not lying flat.
	tx, ty := m.rng.NormFloat64()*0.1, m.rng.NormFloat64()*0.1
	fallAt := n / 3
	for i := range n {
		t := float64(i) / motionRateHz
		ax := tx + m.rng.NormFloat64()*0.02
		ay := ty + m.rng.NormFloat64()*0.02
		az := math.Sqrt(max(0, 1-tx*tx-ty*ty)) + m.rng.NormFloat64()*0.02
		gx, gy, gz := m.rng.NormFloat64()*2, m.rng.NormFloat64()*2, m.rng.NormFloat64()*2
		if walking && !fall {
			s := math.Sin(2*math.Pi*stepHz*t + phase)
			az += 0.25 * s
			ax += 0.1 * math.Cos(2*math.Pi*stepHz*t+phase)
			gx += 20 * s
		}
		if fall {
			switch k := i - fallAt; {
			case k >= 0 && k < 15: // ~0.3 s of free fall
				ax, ay, az = m.rng.NormFloat64()*0.1, m.rng.NormFloat64()*0.1, 0.15+m.rng.NormFloat64()*0.05
				gx, gy, gz = m.rng.NormFloat64()*150, m.rng.NormFloat64()*150, m.rng.NormFloat64()*80
			case k >= 15 && k < 19: // impact
				ax, ay, az = 2+m.rng.Float64()*4, m.rng.NormFloat64()*2, 1+m.rng.Float64()*3
				gx, gy, gz = m.rng.NormFloat64()*300, m.rng.NormFloat64()*300, m.rng.NormFloat64()*300
			case k >= 19: // lying still on the side
				ax, ay, az = 1+m.rng.NormFloat64()*0.02, m.rng.NormFloat64()*0.02, 0.05+m.rng.NormFloat64()*0.02
			}
		}
		accel[i] = []float64{round(clamp(ax, -64, 64), 3), round(clamp(ay, -64, 64), 3), round(clamp(az, -64, 64), 3)}
		gyro[i] = []float64{round(clamp(gx, -5000, 5000), 1), round(clamp(gy, -5000, 5000), 1), round(clamp(gz, -5000, 5000), 1)}
	}
	window.Motion = &event.Motion{RateHz: motionRateHz, Accel: accel, Gyro: gyro}
	if !fall {
		return window, nil
	}
	f := m.envelope(event.TypeFall, now.Add(time.Duration(fallAt+19)*time.Second/motionRateHz))
	f.Fall = &event.Fall{Confidence: round(0.6+m.rng.Float64()*0.35, 2)}
	f.Position = m.fix()
	return window, &f
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}
