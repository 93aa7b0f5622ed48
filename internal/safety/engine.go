// Package safety is the lone-worker safety engine: every rule that turns
// device events and the passage of time into an alert — SOS and duress
// buttons, timed sessions with check-ins (the "amber alert"), session
// overrun, low battery, device offline, geofences, and the pre-alert of a
// fall before it is raised.
//
// Decisions are written before they are acted on: an alert exists only
// once RaiseAlert committed it, with a cause key (the event, or the
// deadline) that makes a redelivered event, a restart, or a second
// processor a no-op. All timers live on the server in one deadline
// scheduler; Load rebuilds them from the store at start, and a deadline
// that passed while the server was down fires at once.
//
// Memory: the engine keeps, per device and per active session, only what
// the rules need, in compact records (state.go): ids, the wearer, the
// organisation (interned), times as Unix nanoseconds, the battery, and
// the last position once an event brought one or an alert read it; a
// session's timing but not its note, preset or version. A session has one
// deadline, its next due moment (reminder, missed check-in or overrun);
// deadlines are keyed by small pointer-free {kind, handle} keys. About
// 480 bytes per worker with a device and a session at 100k and 560 at 1M,
// scheduler included (BenchmarkLoad100k, BenchmarkLoad1M). What is not kept is read
// from the store when needed: the session (for its amber note) and the
// device's stored position when an alert is raised, the session before
// every session change (check-in, extend, end), and a device's record
// once per DeviceCacheTTL while it sends events.
//
// Concurrency: one mutex serialises the engine's decisions (events from
// the bus consumer, deadlines from Run, and the API's session calls); the
// work under it is in memory except when a decision is stored or a
// session read. Load reads devices and sessions on two goroutines it
// waits for.
//
// It imports internal/store (record types), internal/alert, internal/event,
// internal/deadline, internal/geofence and internal/clock. It must not
// import the bus, drivers, gateways or HTTP: internal/app feeds it.
package safety

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"vigil/internal/alert"
	"vigil/internal/clock"
	"vigil/internal/deadline"
	"vigil/internal/event"
	"vigil/internal/store"
)

// Store is what the engine needs of the store.
type Store interface {
	alert.Store
	RaiseAlert(ctx context.Context, a store.Alert, first store.AlertEntry) (store.Alert, store.RaiseResult, error)
	ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
	HasCause(ctx context.Context, cause string) (bool, error)
	GetDevice(ctx context.Context, id string) (store.Device, error)
	EachDeviceWatch(ctx context.Context, fn func(store.DeviceWatch) error) error
	EachSessionTimer(ctx context.Context, fn func(store.SessionTimer) error) error
	ResidentIDs(ctx context.Context) ([]string, error)
	ListOrgs(ctx context.Context) ([]store.Org, error)
	CreateSession(ctx context.Context, s store.Session) error
	GetSession(ctx context.Context, id string) (store.Session, error)
	UpdateSession(ctx context.Context, s store.Session) (store.Session, error)
	ListSessions(ctx context.Context, f store.SessionFilter) ([]store.Session, error)
	ListSessionPresets(ctx context.Context, orgID string) ([]store.SessionPreset, error)
	ListGeofences(ctx context.Context, orgID string) ([]store.GeofenceRecord, error)
}

// Commander sends a command to a device (e.g. over its MQTT commands
// topic). Delivery is best effort: a device that is offline misses it, and
// the server-side timers do not depend on it.
type Commander interface {
	Command(ctx context.Context, deviceID string, c Command) error
}

// Command is what the server tells a device.
type Command struct {
	Type      string    `json:"type"` // checkin_reminder, alert_raised, alert_cancelled, pre_alert
	AlertID   string    `json:"alert_id,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	Due       time.Time `json:"due,omitzero"`
}

// Config tunes the rules; the zero value uses the defaults.
type Config struct {
	// RemindBefore: check-in reminders go this long before the due time;
	// default 5 min.
	RemindBefore time.Duration
	// OfflineAfter: no event from a monitored device (a worker in a
	// session, a resident) for this long raises device_offline; default
	// 15 min.
	OfflineAfter time.Duration
	// BatteryWarn and BatteryCritical are percentages; defaults 20 and 10.
	BatteryWarn, BatteryCritical int
	// SOSCancelWindow: how long after an SOS the wearer may still cancel
	// it as a false press (the alert is raised at once regardless);
	// default 60 s.
	SOSCancelWindow time.Duration
	// PreAlert is the pending stage of a detected fall or man-down during
	// which the wearer can cancel before it is raised; default 30 s. A
	// person's own FallCancelWindow replaces it for their falls.
	PreAlert time.Duration
	// ManDownPreAlert is the pending stage of a man-down or no-motion
	// alarm; default 30 s (as Blackline's).
	ManDownPreAlert time.Duration
	// NoMotionAfter: no movement in a device's motion windows for this
	// long during a session raises a no_motion pre-alert; default 2 min,
	// negative to turn it off.
	NoMotionAfter time.Duration
	// DeviceCacheTTL: how long the engine trusts what it read about a
	// device (its person and organisation) before reading it again;
	// default 1 min.
	DeviceCacheTTL time.Duration
}

func (c Config) withDefaults() Config {
	if c.RemindBefore == 0 {
		c.RemindBefore = 5 * time.Minute
	}
	if c.OfflineAfter <= 0 {
		c.OfflineAfter = 15 * time.Minute
	}
	if c.BatteryWarn <= 0 {
		c.BatteryWarn = 20
	}
	if c.BatteryCritical <= 0 {
		c.BatteryCritical = 10
	}
	if c.SOSCancelWindow == 0 {
		c.SOSCancelWindow = 60 * time.Second
	}
	if c.PreAlert <= 0 {
		c.PreAlert = 30 * time.Second
	}
	if c.ManDownPreAlert <= 0 {
		c.ManDownPreAlert = 30 * time.Second
	}
	if c.NoMotionAfter == 0 {
		c.NoMotionAfter = 2 * time.Minute
	}
	if c.DeviceCacheTTL <= 0 {
		c.DeviceCacheTTL = time.Minute
	}
	return c
}

// Engine runs the rules.
type Engine struct {
	st   Store
	svc  *alert.Service
	cmd  Commander
	clk  clock.Clock
	log  *slog.Logger
	cfg  Config
	sch  *deadline.Scheduler[timerKey]
	fenc *fences

	// State, under mu; see state.go.
	mu         sync.Mutex
	orgs       map[string]string // interned organisation ids
	devs       slab[devInfo]
	devices    map[string]*devInfo // by id
	sess       slab[sessInfo]
	people     map[string]person // person id → active session and devices
	pending    slab[pendingAlert]
	pendingIDs map[string]int32 // pending alert id → handle in pending
}

// New returns an engine. cmd may be nil (no device commands). Its deadlines
// wait on clk's timers if clk makes them (a clock.Manual in a
// whole-pipeline test), else on the real clock (testing/synctest's in a
// bubble).
func New(st Store, cmd Commander, clk clock.Clock, log *slog.Logger, cfg Config) *Engine {
	return &Engine{
		st: st, svc: alert.NewService(st, clk), cmd: cmd, clk: clk, log: log, cfg: cfg.withDefaults(),
		sch:        deadline.New[timerKey](deadline.Config{Clock: clock.TimersOf(clk)}),
		fenc:       newFences(),
		orgs:       make(map[string]string),
		devices:    make(map[string]*devInfo),
		people:     make(map[string]person),
		pendingIDs: make(map[string]int32),
	}
}

// Alerts is the lifecycle service the API uses.
func (e *Engine) Alerts() *alert.Service { return e.svc }

// Run fires deadlines until ctx ends. It also re-reads every
// organisation's geofences once a minute, so zones imported by the CLI
// (another process) apply without a restart.
func (e *Engine) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := clock.TimersOf(e.clk).NewTimer()
		defer t.Stop()
		for {
			t.ResetAt(e.clk.Now().Add(time.Minute))
			select {
			case <-ctx.Done():
				return
			case <-t.C():
				if err := e.reloadAllFences(ctx); err != nil && ctx.Err() == nil {
					e.log.Warn("geofences not reloaded", "err", err)
				}
			}
		}
	}()
	e.sch.Run(ctx, func(due []deadline.Item[timerKey]) {
		for _, it := range due {
			if err := e.fire(ctx, it); err != nil {
				if ctx.Err() != nil {
					return
				}
				// The decision was not stored: try again shortly rather
				// than lose it.
				e.log.Error("safety deadline failed; retrying", "kind", int(it.Key.kind), "err", err)
				e.sch.Set(it.Key, e.clk.Now().Add(5*time.Second))
			}
		}
	})
}

func (e *Engine) reloadAllFences(ctx context.Context) error {
	orgs, err := e.st.ListOrgs(ctx)
	if err != nil {
		return err
	}
	for _, o := range orgs {
		if err := e.ReloadFences(ctx, o.ID); err != nil {
			return err
		}
	}
	return nil
}

// Timers returns how many deadlines are pending (a metric).
func (e *Engine) Timers() int { return e.sch.Len() }

func (e *Engine) fire(ctx context.Context, it deadline.Item[timerKey]) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch it.Key.kind {
	case timerSession:
		if s := e.sessionOf(it.Key); s != nil {
			return e.fireSession(ctx, s)
		}
	case timerPending:
		id := e.pendingOf(it.Key)
		if id == "" {
			return nil
		}
		a, err := e.svc.Escalate(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		e.releasePending(id)
		if err == nil && a.State == store.AlertRaised {
			e.command(ctx, a.DeviceID, Command{Type: "alert_raised", AlertID: a.ID})
		}
	case timerNoMotion:
		d := e.deviceOf(it.Key)
		if d == nil {
			return nil
		}
		at, ok := e.noMotionDeadline(d)
		if !ok {
			return nil
		}
		if e.clk.Now().Before(at) {
			e.sch.Set(it.Key, at)
			return nil
		}
		err := e.raise(ctx, alertSpec{kind: alert.KindNoMotion, dedup: "no_motion:" + d.id,
			cause: fmt.Sprintf("nomotion:%s:%d", d.id, int64(d.lastMove)), causeTime: at,
			session: e.activeSession(d.person), person: d.person, org: d.org, device: d, actor: "engine",
			detail: "no movement since " + d.lastMove.Time().Format(time.RFC3339), preAlert: e.cfg.ManDownPreAlert})
		if err == nil {
			d.alertedMove = d.lastMove // one alert per still spell
		}
		return err
	case timerOffline:
		d := e.deviceOf(it.Key)
		if d == nil {
			return nil
		}
		at, ok := e.offlineDeadline(d)
		if !ok {
			return nil
		}
		if e.clk.Now().Before(at) {
			e.sch.Set(it.Key, at)
			return nil
		}
		s := e.activeSession(d.person)
		detail := "no event since " + d.lastSeen.Time().Format(time.RFC3339)
		return e.raise(ctx, alertSpec{kind: alert.KindDeviceOffline, dedup: "device_offline:" + d.id,
			cause: fmt.Sprintf("offline:%s:%d", d.id, int64(d.lastSeen)), causeTime: at,
			session: s, person: d.person, org: d.org, device: d, detail: detail, actor: "engine"})
	}
	return nil
}

// --- events -----------------------------------------------------------------

// HandleEvents applies a batch of events. Each device's events are taken
// in device-time order (store-and-forward batches arrive late and
// shuffled). An error means a decision could not be stored: the caller
// must redeliver the batch; what was already decided is not decided again.
func (e *Engine) HandleEvents(ctx context.Context, evs []event.Event) error {
	// Group by device in order of first appearance, each device's events
	// by device time.
	first := make(map[string]int, 8)
	order := make([]int, len(evs))
	for i := range evs {
		order[i] = i
		if _, ok := first[evs[i].DeviceID]; !ok {
			first[evs[i].DeviceID] = i
		}
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if c := first[evs[a].DeviceID] - first[evs[b].DeviceID]; c != 0 {
			return c
		}
		return evs[a].DeviceTime.Compare(evs[b].DeviceTime)
	})
	// The lock is let go between chunks: a consumer's batch can hold tens
	// of thousands of position reports, and an SOS on the urgent consumer
	// must not wait for all of them (sync.Mutex hands over to a waiter
	// that has waited over 1 ms).
	for len(order) > 0 {
		n := min(len(order), handleChunk)
		if err := e.handleLocked(ctx, evs, order[:n]); err != nil {
			return err
		}
		order = order[n:]
	}
	return nil
}

// handleChunk is how many events HandleEvents applies per hold of the lock.
const handleChunk = 64

func (e *Engine) handleLocked(ctx context.Context, evs []event.Event, order []int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, i := range order {
		if err := e.handle(ctx, &evs[i]); err != nil {
			return fmt.Errorf("safety: event %s: %w", evs[i].Key(), err)
		}
	}
	return nil
}

func (e *Engine) device(ctx context.Context, id string) (*devInfo, error) {
	now := nanosOf(e.clk.Now())
	d := e.devices[id]
	if d != nil && time.Duration(now-d.readAt) < e.cfg.DeviceCacheTTL {
		return d, nil
	}
	sd, err := e.st.GetDevice(ctx, id)
	if err != nil {
		return nil, err
	}
	resident := false
	if sd.PersonID != "" {
		p, err := e.st.GetPerson(ctx, sd.PersonID)
		if err != nil {
			return nil, err
		}
		resident = p.Kind == store.PersonResident
	}
	d = e.putDevice(watchOf(sd), resident, now)
	d.mergeStored(sd)
	return d, nil
}

// knowPosition makes sure d's position includes the stored one (see
// devInfo.posRead); the caller holds mu.
func (e *Engine) knowPosition(ctx context.Context, d *devInfo) error {
	if d.posRead {
		return nil
	}
	sd, err := e.st.GetDevice(ctx, d.id)
	if errors.Is(err, store.ErrNotFound) {
		d.posRead = true // deleted since: what events brought is all there is
		return nil
	}
	if err != nil {
		return err
	}
	d.mergeStored(sd)
	return nil
}

// watchOf is what the engine keeps of a device besides its position.
func watchOf(d store.Device) store.DeviceWatch {
	w := store.DeviceWatch{ID: d.ID, OrgID: d.OrgID, PersonID: d.PersonID, Disabled: !d.DisabledAt.IsZero(),
		LastSeen: d.State.LastSeen, Battery: -1, Charging: d.State.Charging}
	if d.State.Battery != nil {
		w.Battery = *d.State.Battery
	}
	return w
}

func (e *Engine) handle(ctx context.Context, ev *event.Event) error {
	d, err := e.device(ctx, ev.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted since: nothing to decide
	}
	if err != nil {
		return err
	}
	if t := nanosOf(ev.DeviceTime); t > d.lastSeen {
		d.lastSeen = t
	}
	if at, ok := e.offlineDeadline(d); ok {
		e.sch.Set(d.key(timerOffline), at)
	}
	switch ev.Type {
	case event.TypePosition:
		d.setPos(*ev.Position, nanosOf(ev.DeviceTime), d.pos == nil)
		return e.checkFences(ctx, d, ev)
	case event.TypeBattery:
		if !ev.Late || d.battery < 0 {
			d.battery, d.charging = int32(ev.Battery.Percent), ev.Battery.Charging
		}
		return e.checkBattery(ctx, d, ev)
	case event.TypeButton:
		return e.button(ctx, d, ev)
	case event.TypeFall:
		return e.fall(ctx, d, ev)
	case event.TypeAlarm:
		kind, what := alert.KindManDown, "man-down reported by the device"
		if ev.Alarm.Kind == event.AlarmNoMotion {
			kind, what = alert.KindNoMotion, "no motion reported by the device"
		}
		return e.raise(ctx, alertSpec{kind: kind, dedup: kind + ":" + d.id, cause: eventCause(ev), causeTime: ev.DeviceTime,
			session: e.activeSession(d.person), person: d.person, org: d.org, device: d, ev: ev, actor: "device:" + d.id,
			detail: what, preAlert: e.cfg.ManDownPreAlert})
	}
	return nil
}

// noMotionDeadline is when a device in a session counts as not moving:
// its last movement (or the session start, if later) plus NoMotionAfter.
// Only devices that send motion windows are watched.
func (e *Engine) noMotionDeadline(d *devInfo) (time.Time, bool) {
	s := e.activeSession(d.person)
	if s == nil || d.lastMove == 0 || e.cfg.NoMotionAfter < 0 || d.disabled || d.alertedMove == d.lastMove {
		return time.Time{}, false
	}
	if s.device != "" && s.device != d.id {
		return time.Time{}, false
	}
	base := max(d.lastMove, s.started)
	return base.Time().Add(e.cfg.NoMotionAfter), true
}

// Motion is what the engine needs of a motion window: when it ended and
// whether the wearer moved in it (see Moving).
type Motion struct {
	DeviceID string
	End      time.Time
	Moving   bool
}

// HandleMotion notes motion windows (the fall consumer passes them on) for
// no-motion detection. The first window of a device starts its clock even
// if still; later still windows leave it running.
func (e *Engine) HandleMotion(ctx context.Context, ms []Motion) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range ms {
		d, err := e.device(ctx, m.DeviceID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("safety: motion of %s: %w", m.DeviceID, err)
		}
		if end := nanosOf(m.End); (m.Moving || d.lastMove == 0) && end > d.lastMove {
			d.lastMove = end
		}
		if at, ok := e.noMotionDeadline(d); ok {
			e.sch.Set(d.key(timerNoMotion), at)
		}
	}
	return nil
}

// Moving reports whether a motion window shows the wearer moving: the
// acceleration's magnitude varies by more than MovingStdG (a device lying
// still, or on a motionless body, varies by its sensor noise, ~0.01 g).
func Moving(m *event.Motion) bool {
	if m == nil || len(m.Accel) < 2 {
		return false
	}
	var sum, sum2 float64
	for _, a := range m.Accel {
		if len(a) != 3 {
			continue
		}
		g := math.Sqrt(a[0]*a[0] + a[1]*a[1] + a[2]*a[2])
		sum += g
		sum2 += g * g
	}
	n := float64(len(m.Accel))
	mean := sum / n
	return math.Sqrt(math.Max(0, sum2/n-mean*mean)) > MovingStdG
}

// MovingStdG is the standard deviation of the acceleration magnitude, in
// g, above which a window counts as movement.
const MovingStdG = 0.03

func (e *Engine) monitored(d *devInfo) bool {
	return d.person != "" && !d.disabled && (d.resident || e.people[d.person].sess != nil)
}

// offlineDeadline is when a monitored device counts as offline: silence
// is measured from its last event, or from the start of the session if
// that is later (a session started on a device quiet for an hour gets the
// full time). A device never heard from is not watched.
func (e *Engine) offlineDeadline(d *devInfo) (time.Time, bool) {
	if !e.monitored(d) || d.lastSeen == 0 {
		return time.Time{}, false
	}
	base := d.lastSeen
	if s := e.activeSession(d.person); s != nil {
		if s.device != "" && s.device != d.id && !d.resident {
			return time.Time{}, false // the session is on another device
		}
		base = max(base, s.started)
	}
	return base.Time().Add(e.cfg.OfflineAfter), true
}

func (e *Engine) activeSession(person string) *sessInfo {
	if person == "" {
		return nil
	}
	return e.people[person].sess
}

func (e *Engine) sessionDevice(s *sessInfo) *devInfo {
	if s.device != "" {
		if d := e.devices[s.device]; d != nil {
			return d
		}
	}
	// The person's most recently seen device.
	var best *devInfo
	for d := e.people[s.person].devs; d != nil; d = d.nextWorn {
		if best == nil || d.lastSeen > best.lastSeen {
			best = d
		}
	}
	return best
}

func eventCause(ev *event.Event) string { return "ev:" + ev.Key() }

func (e *Engine) button(ctx context.Context, d *devInfo, ev *event.Event) error {
	s := e.activeSession(d.person)
	actor := "device:" + d.id
	switch ev.Button.Kind {
	case event.ButtonSOS:
		if err := e.raise(ctx, alertSpec{kind: alert.KindSOS, dedup: "sos:" + d.id, cause: eventCause(ev), causeTime: ev.DeviceTime,
			session: s, person: d.person, org: d.org, device: d, ev: ev, actor: actor, detail: "SOS button",
			cancelWindow: e.cfg.SOSCancelWindow}); err != nil {
			return err
		}
		// An SOS inside a fall's cancel window says the wearer needs
		// help: the pre-alert is raised too, with what the detector saw.
		_, err := e.raisePending(ctx, d, ev, false)
		return err
	case event.ButtonHelp:
		return e.help(ctx, d, ev, s)
	case event.ButtonDuress:
		return e.raise(ctx, alertSpec{kind: alert.KindDuress, dedup: "duress:" + d.id, cause: eventCause(ev), causeTime: ev.DeviceTime,
			session: s, person: d.person, org: d.org, device: d, ev: ev, actor: actor, detail: "duress button", duress: true})
	case event.ButtonCheckIn:
		if s == nil {
			return nil
		}
		_, err := e.checkIn(ctx, s.id, ev.DeviceTime, actor)
		return err
	case event.ButtonCancel:
		return e.deviceCancel(ctx, d, ev)
	}
	return nil
}

// help answers the device's pending pre-alerts with "I need help": each
// is raised at once. With none pending the wearer is asking for help
// anyway, so it is an SOS.
func (e *Engine) help(ctx context.Context, d *devInfo, ev *event.Event, s *sessInfo) error {
	if done, err := e.st.HasCause(ctx, eventCause(ev)); err != nil || done {
		return err // a redelivered help press acts once
	}
	n, err := e.raisePending(ctx, d, ev, true)
	if err != nil || n > 0 {
		return err
	}
	return e.raise(ctx, alertSpec{kind: alert.KindSOS, dedup: "sos:" + d.id, cause: eventCause(ev), causeTime: ev.DeviceTime,
		session: s, person: d.person, org: d.org, device: d, ev: ev, actor: "device:" + d.id,
		detail: "help asked with no pre-alert open", cancelWindow: e.cfg.SOSCancelWindow})
}

// raisePending raises every pending pre-alert of device d at once because
// of event ev (the wearer asked for help) and returns how many it raised.
// The first takes ev's own cause when canonical is set (so a redelivered
// ev is recognised); the others, and all when it is not, a cause of their
// own (causes are unique across timelines).
func (e *Engine) raisePending(ctx context.Context, d *devInfo, ev *event.Event, canonical bool) (int, error) {
	open, err := e.st.ListAlerts(ctx, store.AlertFilter{DeviceID: d.id, States: []store.AlertState{store.AlertPending}, Limit: 100})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range open {
		if a.DeviceID != d.id || a.State != store.AlertPending {
			continue
		}
		cause := "help:" + ev.Key() + ":" + a.ID
		if canonical && n == 0 {
			cause = eventCause(ev)
		}
		got, err := e.svc.HelpFor(ctx, a.ID, "device:"+d.id, cause)
		if errors.Is(err, alert.ErrIllegal) {
			continue // cancelled or raised meanwhile
		}
		if err != nil {
			return n, err
		}
		e.releasePending(a.ID)
		e.log.Info("pre-alert raised on request", "alert_id", got.ID, "kind", got.Kind, "org_id", got.OrgID)
		e.command(ctx, d.id, Command{Type: "alert_raised", AlertID: got.ID})
		n++
	}
	return n, nil
}

// deviceCancel applies a cancel press to the device's newest cancellable
// alert; with the duress code and nothing to cancel, it raises a silent
// duress alarm.
func (e *Engine) deviceCancel(ctx context.Context, d *devInfo, ev *event.Event) error {
	open, err := e.st.ListAlerts(ctx, store.AlertFilter{DeviceID: d.id, States: []store.AlertState{store.AlertPending, store.AlertRaised}, Limit: 100})
	if err != nil {
		return err
	}
	actor := "device:" + d.id
	if done, err := e.st.HasCause(ctx, eventCause(ev)); err != nil || done {
		return err // a redelivered cancel acts once
	}
	for _, a := range open {
		if a.DeviceID != d.id || (!alert.CanCancel(a, ev.ReceivedAt) && !a.Duress) {
			continue
		}
		v, err := e.svc.CancelFor(ctx, a.ID, actor, ev.Button.Code, eventCause(ev))
		if err != nil && !errors.Is(err, alert.ErrIllegal) {
			return err
		}
		if err == nil {
			e.command(ctx, d.id, Command{Type: "alert_cancelled", AlertID: v.ID})
			e.releasePending(a.ID)
		}
		return nil
	}
	if ev.Button.Code != "" && d.person != "" {
		p, err := e.st.GetPerson(ctx, d.person)
		if err != nil {
			return err
		}
		if alert.IsDuressCode(p, ev.Button.Code) {
			return e.raise(ctx, alertSpec{kind: alert.KindDuress, dedup: "duress:" + d.id, cause: eventCause(ev), causeTime: ev.DeviceTime,
				session: e.activeSession(d.person), person: d.person, org: d.org, device: d, ev: ev, actor: actor,
				detail: "duress code given with a cancel", duress: true})
		}
	}
	return nil
}

func (e *Engine) fall(ctx context.Context, d *devInfo, ev *event.Event) error {
	detail := "fall detected by the device"
	if ev.Source == event.SourceDetector {
		detail = "fall detected by the server's detector"
	}
	// The wearer's own cancel window, if their care plan sets one (a fall
	// is rare: one read of the person).
	window := e.cfg.PreAlert
	if d.person != "" {
		p, err := e.st.GetPerson(ctx, d.person)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if p.FallCancelWindow > 0 {
			window = p.FallCancelWindow
		}
	}
	return e.raise(ctx, alertSpec{kind: alert.KindFall, dedup: "fall:" + d.id, cause: eventCause(ev), causeTime: ev.DeviceTime,
		session: e.activeSession(d.person), person: d.person, org: d.org, device: d, ev: ev, actor: "device:" + d.id,
		detail: detail, preAlert: window})
}

func (e *Engine) checkBattery(ctx context.Context, d *devInfo, ev *event.Event) error {
	b := ev.Battery
	if b.Charging || b.Percent > e.cfg.BatteryWarn || !e.monitored(d) {
		return nil
	}
	sev := alert.SeverityWarning
	if b.Percent <= e.cfg.BatteryCritical {
		sev = alert.SeverityHigh
	}
	return e.raise(ctx, alertSpec{kind: alert.KindLowBattery, severity: sev, dedup: "low_battery:" + d.id, cause: eventCause(ev),
		causeTime: ev.DeviceTime, session: e.activeSession(d.person), person: d.person, org: d.org, device: d, ev: ev,
		actor: "device:" + d.id, detail: fmt.Sprintf("battery at %d%%", b.Percent)})
}

// --- raising ----------------------------------------------------------------

type alertSpec struct {
	kind, severity, dedup, cause string
	causeTime                    time.Time
	session                      *sessInfo // its note is read from the store
	person, org                  string
	device                       *devInfo
	ev                           *event.Event
	actor, detail                string
	cancelWindow, preAlert       time.Duration
	duress                       bool
}

// raise stores a decision, then acts on it (device command, pre-alert
// timer). The store's cause key makes it idempotent.
func (e *Engine) raise(ctx context.Context, sp alertSpec) error {
	now := e.clk.Now().UTC()
	sev := sp.severity
	if sev == "" {
		sev, _ = alert.Severity(sp.kind)
	}
	a := store.Alert{ID: NewID("a"), OrgID: sp.org, PersonID: sp.person, Kind: sp.kind, Severity: sev,
		State: store.AlertRaised, DedupKey: sp.dedup, RaisedAt: now, CauseTime: sp.causeTime, Detail: sp.detail, Duress: sp.duress}
	if sp.session != nil {
		// The amber note is not kept in memory: read it now (alerts are
		// rare; a session's note does not change).
		s, err := e.st.GetSession(ctx, sp.session.id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("session note: %w", err)
		}
		a.SessionID, a.Note = sp.session.id, s.Note
	}
	if d := sp.device; d != nil {
		a.DeviceID = d.id
		if err := e.knowPosition(ctx, d); err != nil {
			return fmt.Errorf("device position: %w", err)
		}
		if p := d.pos; p != nil {
			a.Position = &event.Position{Lat: p.lat, Lon: p.lon, AccuracyM: p.acc, FixTime: p.fix.Time()}
			a.PositionTime = p.at.Time()
		}
	}
	if sp.ev != nil {
		a.Late = sp.ev.Late
		if sp.ev.Position != nil {
			p := *sp.ev.Position
			a.Position, a.PositionTime = &p, sp.ev.DeviceTime
		}
	}
	if sp.cancelWindow > 0 {
		a.CancelUntil = now.Add(sp.cancelWindow)
	}
	action := alert.ActionRaised
	if sp.preAlert > 0 && !a.Late {
		// A late fall (store-and-forward) is past any cancel window: raise it.
		a.State, a.PendingUntil, action = store.AlertPending, now.Add(sp.preAlert), alert.ActionPreAlert
	}
	first := store.AlertEntry{At: now, Actor: sp.actor, Action: action, Detail: sp.detail, Cause: sp.cause}
	got, res, err := e.st.RaiseAlert(ctx, a, first)
	if err != nil {
		return err
	}
	switch res {
	case store.RaiseNew:
		e.log.Info("alert raised", "alert_id", got.ID, "kind", got.Kind, "state", string(got.State), "org_id", got.OrgID, "late", got.Late)
		if got.State == store.AlertPending {
			e.sch.Set(e.pendingKey(got.ID), got.PendingUntil)
			e.command(ctx, got.DeviceID, Command{Type: "pre_alert", AlertID: got.ID, Due: got.PendingUntil})
		} else if !got.Duress {
			e.command(ctx, got.DeviceID, Command{Type: "alert_raised", AlertID: got.ID})
		}
	case store.RaiseJoined:
		e.log.Debug("alert repeated", "alert_id", got.ID, "kind", got.Kind)
	}
	return nil
}

func (e *Engine) command(ctx context.Context, deviceID string, c Command) {
	if e.cmd == nil || deviceID == "" {
		return
	}
	if err := e.cmd.Command(ctx, deviceID, c); err != nil {
		e.log.Debug("device command not sent", "device_id", deviceID, "type", c.Type, "err", err)
	}
}

// NewID returns a new random id with a one-letter prefix ("a" alerts, "s"
// sessions, "g" geofences): the prefix and 16 base32 characters.
func NewID(prefix string) string {
	var b [10]byte
	rand.Read(b[:])
	return prefix + idEnc.EncodeToString(b[:])
}

var idEnc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
