package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// This file is the person behind a simulated device. A lone worker (a
// device assigned to a worker person) starts timed sessions, checks in by
// the device's button, usually on time or when reminded, sometimes not at
// all until the alert is due; sometimes overruns the end, walks out of the
// zone, or lets the device go silent. Anyone answers a pre-alert with the
// cancel button now and then.
//
// Like model.go it is deterministic and does no I/O: given a seed, the
// configuration and the same calls at the same times, a wearer asks for
// the same actions. device.go carries them out (button events, JSON API
// calls) and reports back (begin, startFailed, ended, endFailed, command).

// Role scripts a worker's first session, so that a demo shows each kind
// of alert within minutes instead of waiting for the odds. Later sessions
// draw from the odds.
type Role string

// The roles.
const (
	RoleRandom      Role = ""             // the first session draws from the odds too
	RoleDiligent    Role = "diligent"     // checks in on time, ends on time
	RoleForgetful   Role = "forgetful"    // forgets the first check-in and ignores its reminder: missed_checkin
	RoleWanderer    Role = "wanderer"     // starts near the zone's edge and walks out of it: geofence_exit
	RoleSilent      Role = "silent"       // the device goes silent 30 s into the session: device_offline
	RoleOverrun     Role = "overrun"      // a session two check-in intervals long, not ended on time: session_overrun
	RoleFlatBattery Role = "flat_battery" // the battery starts nearly flat and drains fast: low_battery
)

func (r Role) valid() bool {
	switch r {
	case RoleRandom, RoleDiligent, RoleForgetful, RoleWanderer, RoleSilent, RoleOverrun, RoleFlatBattery:
		return true
	}
	return false
}

// WorkerConfig says how lone workers behave. Durations at zero take the
// defaults noted; odds at zero mean never.
type WorkerConfig struct {
	// People maps a device id to the person (kind worker) the device is
	// assigned to on the server. Those devices are lone workers: they
	// start sessions through the JSON API (Config.APIAddr).
	People map[string]string
	// Roles script the first session of the first, second, … worker, in
	// the order of Config.Devices.
	Roles []Role

	CheckinInterval time.Duration // between check-ins; default 10m, at least 1m (the server's minimum)
	Grace           time.Duration // after a check-in's due time and after the expected end; default 2m
	SessionLength   time.Duration // mean; each session 0.5–1.5× this, at most 24h; default 1h
	Break           time.Duration // mean pause between sessions; default 10m (the first starts within a minute)
	React           time.Duration // mean time to answer a reminder or a pre-alert; default 15s
	SilentFor       time.Duration // how long a device stays silent; default 20m (above the server's offline_after, 15m)
	// ZoneRadius is the must_stay_inside circle around Config.Centre, in
	// metres (CircleZone); wanderers walk 300 m beyond it. Walkers roam
	// within about 1.7 km of the centre. Default 2000.
	ZoneRadius float64

	ForgetOdds      float64 // a check-in is forgotten, its reminder ignored, and made only after the alert was due
	OverrunOdds     float64 // per session: ended only after its expected end + grace
	WanderOdds      float64 // per session: the worker walks out of the zone, stays a few minutes, comes back
	SilentOdds      float64 // per session: the device stops sending for SilentFor
	FlatBatteryOdds float64 // per worker: the battery starts nearly flat and drains fast
}

func (c *WorkerConfig) withDefaults() error {
	switch {
	case c.CheckinInterval == 0:
		c.CheckinInterval = 10 * time.Minute
	case c.CheckinInterval < time.Minute:
		return fmt.Errorf("sim: check-in interval %v is below the server's minimum of 1m", c.CheckinInterval)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Grace, 2*time.Minute)
	def(&c.SessionLength, time.Hour)
	def(&c.Break, 10*time.Minute)
	def(&c.React, 15*time.Second)
	def(&c.SilentFor, 20*time.Minute)
	if c.ZoneRadius <= 0 {
		c.ZoneRadius = 2000
	}
	for _, p := range []float64{c.ForgetOdds, c.OverrunOdds, c.WanderOdds, c.SilentOdds, c.FlatBatteryOdds} {
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("sim: worker odds must be within 0..1")
		}
	}
	for _, r := range c.Roles {
		if !r.valid() {
			return fmt.Errorf("sim: unknown worker role %q", r)
		}
	}
	return nil
}

// Distances of a wanderer: scripted ones start this far inside the zone's
// edge, and every wanderer walks out to this far beyond it.
const (
	wanderStart  = 150.0
	wanderBeyond = 300.0
)

// actKind is something a wearer wants done.
type actKind uint8

const (
	actStart   actKind = iota + 1 // start a session through the API (action.start)
	actCheckin                    // press the check-in button
	actEnd                        // end the session through the API (action.session)
	actCancel                     // press the cancel button, answering a pre-alert
	actWander                     // walk out of the zone
	actSilent                     // the device stops sending
	actResume                     // and starts again
	actForgot                     // a check-in will be forgotten (counted only)
	actOverrun                    // this session will be ended late (counted only)
)

type action struct {
	kind    actKind
	start   sessionRequest // actStart
	session string         // actEnd
	late    bool           // actCheckin: made after the missed check-in was due
}

// sessionRequest is what a session is started with.
type sessionRequest struct {
	Duration, CheckinInterval, Grace time.Duration
	Note                             string
}

// plan is a session decided before it starts.
type plan struct {
	req         sessionRequest
	role        Role
	forgetOdds  float64
	forgetFirst bool
	overrun     bool
	wander      bool
	silent      bool
}

// session is the session in progress, in the wearer's (wall) time.
type session struct {
	plan
	id         string
	end        time.Time // expected end
	endAt      time.Time // when the worker ends it
	ending     bool      // the end was asked for
	last       time.Time // last check-in (the start until the first)
	checkinAt  time.Time // next check-in press (zero: none due before the end)
	forgot     bool      // that check-in is forgotten
	wanderAt   time.Time
	silentAt   time.Time
	forgetNext bool
}

// due is when the server expects the next check-in.
func (s *session) due() time.Time { return s.last.Add(s.req.CheckinInterval) }

type phase uint8

const (
	phaseNone     phase = iota // not a worker, or the API refused its sessions
	phaseBreak                 // the next session starts at startAt
	phaseStarting              // a start was asked for: begin or startFailed comes next
	phaseSession               // in a session
)

// wearer is the person behind one device; only the device's goroutine
// touches it.
type wearer struct {
	cfg        WorkerConfig
	cancelOdds float64
	retryMin   time.Duration
	rng        *rand.Rand
	worker     bool
	role       Role // the first session's, RoleRandom once it is planned
	flat       bool // the battery starts nearly flat
	ph         phase
	startAt    time.Time
	plan       plan
	attempts   int // failed starts in a row
	n          int // sessions planned
	s          session
	silentTo   time.Time   // silent until then (zero: not silent)
	cancels    []time.Time // planned cancel presses, earliest first
	out        []action
}

// newWearer is the wearer of device index under seed; person is the
// worker the device is assigned to ("" for none).
func newWearer(cfg WorkerConfig, cancelOdds float64, retryMin time.Duration, seed int64, index int, person string, role Role) *wearer {
	w := &wearer{
		cfg:        cfg,
		cancelOdds: cancelOdds,
		retryMin:   retryMin,
		rng:        rand.New(rand.NewPCG(uint64(seed), uint64(index)|2<<40)),
		worker:     person != "",
	}
	if w.worker {
		w.role = role
		w.flat = role == RoleFlatBattery || (role == RoleRandom && w.rng.Float64() < cfg.FlatBatteryOdds)
	}
	return w
}

// start schedules the first session: a scripted worker starts within
// seconds, the others spread over a minute (or Break, if shorter).
func (w *wearer) start(now time.Time) {
	if !w.worker {
		return
	}
	w.ph = phaseBreak
	if w.role != RoleRandom {
		w.startAt = now.Add(w.between(time.Second, 5*time.Second))
	} else {
		w.startAt = now.Add(w.frac(0, 1, min(w.cfg.Break, time.Minute)))
	}
}

func (w *wearer) silent() bool { return !w.silentTo.IsZero() }

// sessionID is the session in progress ("" for none).
func (w *wearer) sessionID() string {
	if w.ph != phaseSession {
		return ""
	}
	return w.s.id
}

func (w *wearer) emit(a action) { w.out = append(w.out, a) }

func (w *wearer) take() []action {
	out := w.out
	w.out = nil
	return out
}

// next is when the wearer next wants to act (zero: not by itself).
func (w *wearer) next() time.Time {
	var e time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (e.IsZero() || t.Before(e)) {
			e = t
		}
	}
	consider(w.silentTo)
	if len(w.cancels) > 0 {
		consider(w.cancels[0])
	}
	switch w.ph {
	case phaseBreak:
		consider(w.startAt)
	case phaseSession:
		consider(w.s.checkinAt)
		consider(w.s.wanderAt)
		consider(w.s.silentAt)
		if !w.s.ending {
			consider(w.s.endAt)
		}
	}
	return e
}

// step returns what is due at now.
func (w *wearer) step(now time.Time) []action {
	if w.silent() && !now.Before(w.silentTo) {
		w.silentTo = time.Time{}
		w.emit(action{kind: actResume})
	}
	for len(w.cancels) > 0 && !now.Before(w.cancels[0]) {
		w.cancels = w.cancels[1:]
		if !w.silent() {
			w.emit(action{kind: actCancel})
		}
	}
	switch w.ph {
	case phaseBreak:
		if !now.Before(w.startAt) {
			w.plan = w.newPlan()
			w.ph = phaseStarting
			w.emit(action{kind: actStart, start: w.plan.req})
		}
	case phaseSession:
		s := &w.s
		if !s.silentAt.IsZero() && !now.Before(s.silentAt) {
			s.silentAt = time.Time{}
			w.silentTo = now.Add(w.cfg.SilentFor)
			w.emit(action{kind: actSilent})
		}
		if !s.wanderAt.IsZero() && !now.Before(s.wanderAt) {
			s.wanderAt = time.Time{}
			w.emit(action{kind: actWander})
		}
		if !s.checkinAt.IsZero() && !now.Before(s.checkinAt) {
			if w.silent() {
				// The button does nothing on a dead device: press it again
				// once it is back.
				s.checkinAt = w.silentTo.Add(w.react())
			} else {
				w.emit(action{kind: actCheckin, late: now.After(s.due().Add(s.req.Grace))})
				s.last = now
				w.planCheckin()
			}
		}
		if !s.ending && !now.Before(s.endAt) {
			s.ending = true
			w.emit(action{kind: actEnd, session: s.id})
		}
	}
	return w.take()
}

// newPlan decides the next session.
func (w *wearer) newPlan() plan {
	c := w.cfg
	w.n++
	p := plan{role: w.role, req: sessionRequest{
		CheckinInterval: c.CheckinInterval,
		Grace:           c.Grace,
		Duration:        min(w.frac(0.5, 1.5, c.SessionLength), 24*time.Hour).Round(time.Second),
		Note:            fmt.Sprintf("simulated visit %d", w.n),
	}}
	w.role = RoleRandom
	switch p.role {
	case RoleRandom:
		p.forgetOdds = c.ForgetOdds
		p.overrun = w.rng.Float64() < c.OverrunOdds
		p.wander = w.rng.Float64() < c.WanderOdds
		p.silent = w.rng.Float64() < c.SilentOdds
	case RoleForgetful:
		p.forgetFirst = true
	case RoleWanderer:
		p.wander = true
	case RoleSilent:
		p.silent = true
	case RoleOverrun:
		p.overrun = true
		p.req.Duration = 2 * c.CheckinInterval
	}
	return p
}

// begin: the session asked for is started, with the server's id.
func (w *wearer) begin(now time.Time, id string) []action {
	if w.ph != phaseStarting {
		return nil
	}
	p := w.plan
	w.ph, w.attempts = phaseSession, 0
	s := session{plan: p, id: id, end: now.Add(p.req.Duration), last: now, forgetNext: p.forgetFirst}
	if p.overrun {
		s.endAt = s.end.Add(p.req.Grace + w.between(time.Minute, 5*time.Minute))
		w.emit(action{kind: actOverrun})
	} else {
		s.endAt = s.end.Add(-w.frac(0, 0.1, p.req.Duration))
	}
	if p.wander {
		if p.role == RoleWanderer {
			s.wanderAt = now.Add(10 * time.Second)
		} else {
			s.wanderAt = now.Add(w.frac(0.1, 0.4, p.req.Duration))
		}
	}
	if p.silent {
		if p.role == RoleSilent {
			s.silentAt = now.Add(30 * time.Second)
		} else {
			s.silentAt = now.Add(w.frac(0.1, 0.5, p.req.Duration))
		}
	}
	w.s = s
	w.planCheckin()
	return w.take()
}

// planCheckin decides the next check-in press: a little before it is due,
// or, forgotten, only after the missed check-in was due.
func (w *wearer) planCheckin() {
	s := &w.s
	s.checkinAt, s.forgot = time.Time{}, false
	due := s.due()
	if !due.Before(s.end) {
		return // none is due after the expected end
	}
	forget := s.forgetNext || w.rng.Float64() < s.forgetOdds
	s.forgetNext = false
	if forget {
		s.forgot = true
		s.checkinAt = due.Add(s.req.Grace).Add(w.between(30*time.Second, 150*time.Second))
		w.emit(action{kind: actForgot})
		return
	}
	s.checkinAt = due.Add(-w.frac(0.05, 0.6, s.req.CheckinInterval))
}

// startFailed: the start did not happen; try again later.
func (w *wearer) startFailed(now time.Time) {
	if w.ph != phaseStarting {
		return
	}
	w.attempts++
	d := math.Min(float64(w.retryMin)*math.Pow(2, float64(w.attempts-1)), float64(5*time.Minute))
	w.ph, w.startAt = phaseBreak, now.Add(time.Duration(d*(0.5+w.rng.Float64())))
}

// giveUp: the server refuses this worker's sessions (an unknown person,
// a device not theirs); it runs none.
func (w *wearer) giveUp() { w.ph = phaseNone }

// ended: the session is over; a break follows.
func (w *wearer) ended(now time.Time) []action {
	if w.ph != phaseSession {
		return nil
	}
	w.s = session{}
	w.ph, w.startAt = phaseBreak, now.Add(w.frac(0.5, 1.5, w.cfg.Break))
	return w.take()
}

// endFailed: ending did not work; try again in half a minute.
func (w *wearer) endFailed(now time.Time) {
	if w.ph == phaseSession {
		w.s.ending, w.s.endAt = false, now.Add(30*time.Second)
	}
}

// command is a command from the server (docs/device-api.md).
type command struct {
	Type      string    `json:"type"`
	AlertID   string    `json:"alert_id"`
	SessionID string    `json:"session_id"`
	Due       time.Time `json:"due"`
}

// command reacts to a command; it reports whether the wearer will act on
// it. A checkin_reminder is answered with a check-in within React (unless
// this check-in is forgotten or the device is silent); a pre_alert is
// cancelled with CancelOdds, before its due time.
func (w *wearer) command(now time.Time, c command) bool {
	switch c.Type {
	case "checkin_reminder":
		s := &w.s
		if w.ph != phaseSession || c.SessionID != s.id || s.checkinAt.IsZero() || s.forgot || w.silent() {
			return false
		}
		// A reminder that crossed a check-in already made is stale.
		if !c.Due.IsZero() && c.Due.Before(s.due().Add(-s.req.CheckinInterval/2)) {
			return false
		}
		if at := now.Add(w.react()); at.Before(s.checkinAt) {
			s.checkinAt = at
		}
		return true
	case "pre_alert":
		if w.silent() || w.cancelOdds <= 0 || w.rng.Float64() >= w.cancelOdds {
			return false
		}
		at := now.Add(w.react())
		if !c.Due.IsZero() {
			if last := c.Due.Add(-2 * time.Second); at.After(last) {
				at = last
			}
			if at.Before(now) {
				at = now
			}
		}
		i, _ := slices.BinarySearchFunc(w.cancels, at, time.Time.Compare)
		w.cancels = slices.Insert(w.cancels, i, at)
		return true
	}
	return false
}

func (w *wearer) react() time.Duration { return w.frac(0.3, 1.7, w.cfg.React) }

// frac is a uniformly drawn share between lo and hi of d.
func (w *wearer) frac(lo, hi float64, d time.Duration) time.Duration {
	return time.Duration(float64(d) * (lo + (hi-lo)*w.rng.Float64()))
}

// between is uniformly drawn from [a, b).
func (w *wearer) between(a, b time.Duration) time.Duration {
	return a + time.Duration(float64(b-a)*w.rng.Float64())
}
