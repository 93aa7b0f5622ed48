package sim

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"time"

	"vigil/internal/event"
)

// kind is something a device does on a schedule.
type kind int

const (
	kindPosition kind = iota
	kindHeartbeat
	kindBattery
	kindSOS
	kindMotion
	numKinds
)

// schedule says when each kind is next due, in wall-clock time.
type schedule struct {
	rng     *rand.Rand
	mean    [numKinds]time.Duration // 0 = never
	poisson [numKinds]bool          // exponential gaps instead of a jittered period
	next    [numKinds]time.Time
}

func newSchedule(cfg Config, index int) *schedule {
	sc := &schedule{rng: rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(index)|1<<40))}
	sc.mean[kindPosition] = time.Duration(float64(time.Second) / cfg.Rate)
	sc.mean[kindHeartbeat] = cfg.HeartbeatEvery
	sc.mean[kindBattery] = cfg.BatteryEvery
	sc.mean[kindSOS] = cfg.SOSEvery
	sc.poisson[kindSOS] = true
	sc.mean[kindMotion] = cfg.MotionEvery
	sc.poisson[kindMotion] = true
	return sc
}

// start sets the first due times: a device reports heartbeat and battery
// as it starts, its first position within one interval.
func (sc *schedule) start(now time.Time) {
	for k := range numKinds {
		switch {
		case sc.mean[k] <= 0:
			sc.next[k] = time.Time{}
		case k == kindHeartbeat || k == kindBattery:
			sc.next[k] = now
		case k == kindPosition:
			sc.next[k] = now.Add(time.Duration(sc.rng.Float64() * float64(sc.mean[k])))
		default:
			sc.next[k] = now.Add(sc.gap(k))
		}
	}
}

func (sc *schedule) gap(k kind) time.Duration {
	m := float64(sc.mean[k])
	if sc.poisson[k] {
		return time.Duration(sc.rng.ExpFloat64() * m)
	}
	return time.Duration(m * (0.9 + 0.2*sc.rng.Float64())) // ±10 %
}

// due returns the kinds due at now and schedules their next time.
func (sc *schedule) due(now time.Time) []kind {
	var ks []kind
	for k := range numKinds {
		if sc.next[k].IsZero() || sc.next[k].After(now) {
			continue
		}
		ks = append(ks, k)
		next := sc.next[k].Add(sc.gap(k))
		if next.Before(now) { // fell behind (a slow send): do not burst to catch up
			next = now.Add(sc.gap(k))
		}
		sc.next[k] = next
	}
	return ks
}

// earliest is the next time anything is due (far ahead if nothing ever is).
func (sc *schedule) earliest() time.Time {
	var e time.Time
	for k := range numKinds {
		if n := sc.next[k]; !n.IsZero() && (e.IsZero() || n.Before(e)) {
			e = n
		}
	}
	if e.IsZero() {
		return time.Now().Add(time.Hour)
	}
	return e
}

// backoff is the wait before retry number attempt (1, 2, …): RetryMin
// doubling up to 5 minutes, ±50 % jitter so devices do not retry in step.
func (sc *schedule) backoff(min time.Duration, attempt int) time.Duration {
	d := float64(min) * math.Pow(2, float64(max(0, attempt-1)))
	d = math.Min(d, float64(5*time.Minute))
	return time.Duration(d * (0.5 + sc.rng.Float64()))
}

// pending is an event waiting for the server's acknowledgement. Its
// payload is fixed when it is made, so a resend is byte for byte the same.
type pending struct {
	typ     event.Type
	id      string
	payload []byte
	alarm   bool
	sends   int
}

// device is one simulated device; only its own goroutine touches it.
type device struct {
	s     *Sim
	index int
	cred  Credential
	model *model
	sched *schedule
	delay time.Duration // ramp-up before the device starts
	queue []*pending

	answered bool // MQTT: the server acknowledged something on this connection

	replay *replayer // a real recording streamed as motion, or nil

	wearer *wearer      // the person wearing it (nil: nobody acts)
	person string       // the worker it is assigned to ("" for none)
	cmds   chan command // commands, from the MQTT client's goroutines
	silent bool         // sends nothing (wearer: actSilent … actResume)
}

// generate makes the events due at wall time now (timestamped with the
// configured clock) and queues them, after doing what the wearer wants
// done now.
func (d *device) generate(ctx context.Context, now time.Time) {
	if d.wearer != nil {
		d.act(ctx, now, d.wearer.step(now))
	}
	if d.silent {
		// Switched off: nothing is made, and nothing bursts out after.
		d.sched.due(now)
		if r := d.replay; r != nil && !now.Before(r.next) {
			r.next = now.Add(replayWindow)
		}
		return
	}
	for _, k := range d.sched.due(now) {
		ts := d.s.cfg.Now()
		switch k {
		case kindPosition:
			d.enqueue(d.model.position(ts))
		case kindHeartbeat:
			d.enqueue(d.model.heartbeat(ts))
		case kindBattery:
			d.enqueue(d.model.battery(ts))
		case kindSOS:
			d.enqueue(d.model.sos(ts))
		case kindMotion:
			w, fall := d.model.motion(ts, false)
			d.enqueue(w)
			if fall != nil {
				d.enqueue(*fall)
			}
		}
	}
	if r := d.replay; r != nil && !now.Before(r.next) {
		// Window k of a pass is stamped k windows after the first, as a
		// device recording continuously would: no gaps, no overlaps.
		if r.at == 0 {
			r.ts = d.s.cfg.Now()
		} else {
			r.ts = r.ts.Add(replayWindow)
		}
		m := d.model.envelope(event.TypeMotion, r.ts)
		w := Compact(r.windows[r.at]) // as a continuously streaming wearable would
		m.Motion = &w
		d.enqueue(m)
		r.at++
		r.next = now.Add(replayWindow)
		if r.at == len(r.windows) {
			d.s.log.Info("sim: replayed a recording as motion", "device_id", d.cred.DeviceID, "recording", r.rec.Name, "fall", r.rec.Fall)
			r.at, r.next = 0, now.Add(d.s.cfg.ReplayPause)
		}
	}
}

// replayer streams one recording's windows, one per replayWindow of wall
// time, in a loop.
type replayer struct {
	rec     Recording
	windows []event.Motion
	at      int
	next    time.Time // wall time the next window is due
	ts      time.Time // device time of the window last sent
}

const (
	replayRateHz = 50
	replayWindow = 2 * time.Second
)

// enqueue adds a message to the queue: alarms ahead of everything but
// earlier alarms; when full, the oldest non-alarm event is dropped.
func (d *device) enqueue(m event.Message) {
	payload, err := json.Marshal(m)
	if err != nil { // cannot happen for the values the model builds
		d.s.log.Error("sim: marshal event", "device_id", d.cred.DeviceID, "type", m.Type, "err", err)
		return
	}
	ev := event.Event{Type: m.Type, Button: m.Button, Fall: m.Fall}
	p := &pending{typ: m.Type, id: m.ID, payload: payload, alarm: ev.IsAlarm()}
	dropped := 0
	if len(d.queue) >= d.s.cfg.QueueMax {
		for i, q := range d.queue {
			if !q.alarm {
				d.queue = append(d.queue[:i], d.queue[i+1:]...)
				dropped++
				break
			}
		}
	}
	at := len(d.queue)
	if p.alarm {
		at = 0
		for at < len(d.queue) && d.queue[at].alarm {
			at++
		}
	}
	d.queue = append(d.queue, nil)
	copy(d.queue[at+1:], d.queue[at:])
	d.queue[at] = p
	d.s.update(func(st *Stats) {
		st.Generated[m.Type]++
		st.Dropped += uint64(dropped)
		st.Queued += 1 - dropped
	})
}

// remove takes queue entries [i, i+n) out.
func (d *device) remove(i, n int) {
	d.queue = append(d.queue[:i], d.queue[i+n:]...)
	d.s.update(func(st *Stats) { st.Queued -= n })
}

// sent counts transmissions of ps.
func (d *device) sent(ps []*pending) {
	resent := 0
	for _, p := range ps {
		if p.sends > 0 {
			resent++
		}
		p.sends++
	}
	d.s.update(func(st *Stats) {
		st.Sent += uint64(len(ps))
		st.Resent += uint64(resent)
	})
}

func (d *device) acked(ps []*pending, duplicates int) {
	d.s.update(func(st *Stats) {
		st.Acked += uint64(len(ps))
		st.Duplicates += uint64(duplicates)
		for _, p := range ps {
			st.AckedByType[p.typ]++
		}
	})
}

func (d *device) refused(reason string, n int) {
	d.s.update(func(st *Stats) { st.Refused[reason] += uint64(n) })
}

func (d *device) failed() {
	d.s.update(func(st *Stats) { st.Errors++ })
}

// sleep waits for dur or ctx; it reports false when ctx is done.
func sleep(ctx context.Context, dur time.Duration) bool {
	if dur <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// earliest is when the device next has something to generate.
func (d *device) earliest() time.Time {
	w := d.sched.earliest()
	if r := d.replay; r != nil && (w.IsZero() || r.next.Before(w)) {
		w = r.next
	}
	if d.wearer != nil {
		if n := d.wearer.next(); !n.IsZero() && n.Before(w) {
			w = n
		}
	}
	return w
}

// --- the wearer's actions -----------------------------------------------------

// act carries out what the wearer wants done at wall time now.
func (d *device) act(ctx context.Context, now time.Time, acts []action) {
	for _, a := range acts {
		switch a.kind {
		case actStart:
			d.startSession(ctx, now, a.start)
		case actEnd:
			d.endSession(ctx, now, a.session)
		case actCheckin:
			d.enqueue(d.model.button(event.ButtonCheckIn, d.s.cfg.Now()))
			d.s.update(func(st *Stats) {
				st.Checkins++
				if a.late {
					st.LateCheckins++
				}
			})
		case actCancel:
			d.enqueue(d.model.button(event.ButtonCancel, d.s.cfg.Now()))
			d.s.update(func(st *Stats) { st.Cancels++ })
		case actWander:
			d.model.walk.wander(d.s.cfg.Workers.ZoneRadius + wanderBeyond)
			d.s.update(func(st *Stats) { st.Wanders++ })
		case actSilent:
			d.silent = true
			d.s.update(func(st *Stats) { st.Silences++ })
			d.s.log.Debug("sim: device goes silent", "device_id", d.cred.DeviceID)
		case actResume:
			d.silent = false
			d.s.log.Debug("sim: device sends again", "device_id", d.cred.DeviceID)
		case actForgot:
			d.s.update(func(st *Stats) { st.Forgotten++ })
		case actOverrun:
			d.s.update(func(st *Stats) { st.Overruns++ })
		}
	}
}

const apiTimeout = 15 * time.Second

// startSession starts a session through the JSON API. A session left
// active by an earlier run (the server answers active_session) is ended
// first; a refusal (an unknown person, a device not theirs) stops the
// worker's sessions, logged once; anything else is retried with backoff.
func (d *device) startSession(ctx context.Context, now time.Time, r sessionRequest) {
	api := d.s.api
	req := StartSession{PersonID: d.person, DeviceID: d.cred.DeviceID, Duration: r.Duration,
		CheckinInterval: r.CheckinInterval, Grace: r.Grace, Note: r.Note}
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, apiTimeout)
		got, err := api.StartSession(cctx, req)
		cancel()
		var ae *APIError
		switch {
		case err == nil:
			d.s.update(func(st *Stats) { st.SessionsStarted++; st.InSession++ })
			d.s.log.Debug("sim: session started", "device_id", d.cred.DeviceID, "session_id", got.ID)
			d.act(ctx, now, d.wearer.begin(now, got.ID))
			return
		case ctx.Err() != nil:
			return
		case isAPI(err, "active_session") && attempt == 0:
			if d.endStale(ctx) {
				continue
			}
		case errors.As(err, &ae) && !ae.Temporary():
			d.s.update(func(st *Stats) { st.APIErrors++ })
			d.s.log.Warn("sim: the JSON API refused a worker's session; this worker runs none",
				"device_id", d.cred.DeviceID, "status", ae.Status, "code", ae.Code, "field", ae.Field)
			d.wearer.giveUp()
			return
		}
		d.s.update(func(st *Stats) { st.APIErrors++ })
		d.s.log.Debug("sim: session start failed; retrying", "device_id", d.cred.DeviceID, "err", err)
		d.wearer.startFailed(now)
		return
	}
}

// endStale ends the worker's active sessions (left from an earlier run).
func (d *device) endStale(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	list, err := d.s.api.ActiveSessions(cctx, d.person)
	if err != nil {
		return false
	}
	for _, s := range list {
		if _, err := d.s.api.EndSession(cctx, s.ID); err != nil && !isAPI(err, "session_ended") {
			return false
		}
		d.s.log.Debug("sim: ended a session left from an earlier run", "device_id", d.cred.DeviceID, "session_id", s.ID)
	}
	return true
}

// endSession ends the session through the JSON API; one that has ended
// already (by someone else) counts as ended.
func (d *device) endSession(ctx context.Context, now time.Time, id string) {
	cctx, cancel := context.WithTimeout(ctx, apiTimeout)
	_, err := d.s.api.EndSession(cctx, id)
	cancel()
	switch {
	case err == nil || isAPI(err, "session_ended", "not_found"):
		d.s.update(func(st *Stats) { st.SessionsEnded++; st.InSession-- })
		d.act(ctx, now, d.wearer.ended(now))
	case ctx.Err() != nil:
	default:
		d.s.update(func(st *Stats) { st.APIErrors++ })
		d.s.log.Debug("sim: session end failed; retrying", "device_id", d.cred.DeviceID, "err", err)
		d.wearer.endFailed(now)
	}
}

// finish ends the worker's session as the simulator stops (end of shift).
func (d *device) finish(ctx context.Context) {
	id := d.wearer.sessionID()
	if id == "" {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := d.s.api.EndSession(cctx, id); err != nil && !isAPI(err, "session_ended", "not_found") {
		d.s.log.Debug("sim: session not ended at shutdown", "device_id", d.cred.DeviceID, "session_id", id, "err", err)
		return
	}
	d.s.update(func(st *Stats) { st.SessionsEnded++; st.InSession-- })
}

// knownCommand says whether typ is a command type of docs/device-api.md.
func knownCommand(typ string) bool {
	switch typ {
	case "checkin_reminder", "pre_alert", "alert_raised", "alert_cancelled":
		return true
	}
	return false
}

// received is called on the MQTT client's goroutine for each command: it
// is counted and handed to the device's goroutine (dropped if that is
// far behind: commands are best effort).
func (d *device) received(payload []byte) {
	var c command
	typ := "invalid"
	if err := json.Unmarshal(payload, &c); err == nil {
		typ = c.Type
		if !knownCommand(typ) {
			typ = "other"
		}
	}
	d.s.update(func(st *Stats) { st.Commands++; st.CommandTypes[typ]++ })
	d.s.log.Debug("sim: command received", "device_id", d.cred.DeviceID, "type", typ)
	if typ == "invalid" || typ == "other" {
		return
	}
	select {
	case d.cmds <- c:
	default:
	}
}

// command lets the wearer react to a command, on the device's goroutine.
func (d *device) command(now time.Time, c command) {
	if d.wearer.command(now, c) && c.Type == "checkin_reminder" {
		d.s.update(func(st *Stats) { st.RemindersAnswered++ })
	}
}
