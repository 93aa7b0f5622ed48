package sim

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeServer applies the server's session rules (docs/safety.md) to a
// wearer's actions in one-second steps of virtual time: a reminder
// remindBefore a check-in is due, missed_checkin at due + grace (one per
// due time), session_overrun at the expected end + grace, none due at or
// after the expected end. It keeps a timeline.
type fakeServer struct {
	t0           time.Time
	remindBefore time.Duration
	n            int
	s            *fakeSession
	timeline     []string
	first        map[string]time.Duration // what → first time, from t0
	count        map[string]int
}

type fakeSession struct {
	id                      string
	interval, grace         time.Duration
	last, end               time.Time
	reminded, missed, overr bool
}

func newFakeServer(t0 time.Time, remindBefore time.Duration) *fakeServer {
	return &fakeServer{t0: t0, remindBefore: remindBefore, first: map[string]time.Duration{}, count: map[string]int{}}
}

func (f *fakeServer) log(now time.Time, what string) {
	at := now.Sub(f.t0)
	f.timeline = append(f.timeline, fmt.Sprintf("%8s %s", at, what))
	if _, ok := f.first[what]; !ok {
		f.first[what] = at
	}
	f.count[what]++
}

var actNames = map[actKind]string{actWander: "wander", actSilent: "silent", actResume: "resume", actForgot: "forgot", actOverrun: "will overrun", actCancel: "cancel"}

// run drives w from f.t0 for d.
func (f *fakeServer) run(w *wearer, d time.Duration) {
	w.start(f.t0)
	for now := f.t0; now.Before(f.t0.Add(d)); now = now.Add(time.Second) {
		f.timers(now, w)
		f.apply(now, w, w.step(now))
	}
}

func (f *fakeServer) apply(now time.Time, w *wearer, acts []action) {
	for _, a := range acts {
		switch a.kind {
		case actStart:
			f.n++
			f.s = &fakeSession{id: fmt.Sprintf("s%d", f.n), interval: a.start.CheckinInterval, grace: a.start.Grace,
				last: now, end: now.Add(a.start.Duration)}
			f.log(now, "start")
			f.apply(now, w, w.begin(now, f.s.id))
		case actCheckin:
			if f.s == nil {
				f.log(now, "checkin outside a session")
				continue
			}
			if a.late {
				f.log(now, "late checkin")
			} else {
				f.log(now, "checkin")
			}
			f.s.last, f.s.reminded, f.s.missed = now, false, false
		case actEnd:
			if f.s == nil || a.session != f.s.id {
				f.log(now, "end of another session")
				continue
			}
			f.log(now, "end")
			f.s = nil
			f.apply(now, w, w.ended(now))
		default:
			f.log(now, actNames[a.kind])
		}
	}
}

func (f *fakeServer) timers(now time.Time, w *wearer) {
	s := f.s
	if s == nil {
		return
	}
	if due := s.last.Add(s.interval); due.Before(s.end) {
		if r := due.Add(-f.remindBefore); f.remindBefore > 0 && r.After(s.last) && !now.Before(r) && !s.reminded {
			s.reminded = true
			f.log(now, "reminder")
			if w.command(now, command{Type: "checkin_reminder", SessionID: s.id, Due: due}) {
				f.log(now, "reminder answered")
			}
		}
		if !now.Before(due.Add(s.grace)) && !s.missed {
			s.missed = true
			f.log(now, "missed_checkin")
		}
	}
	if !now.Before(s.end.Add(s.grace)) && !s.overr {
		s.overr = true
		f.log(now, "session_overrun")
	}
}

func workerConfig(t *testing.T, c WorkerConfig) WorkerConfig {
	t.Helper()
	if err := c.withDefaults(); err != nil {
		t.Fatal(err)
	}
	return c
}

// demoWorkers is how `vigil demo` sets workers up.
func demoWorkers(t *testing.T) WorkerConfig {
	return workerConfig(t, WorkerConfig{CheckinInterval: 2 * time.Minute, Grace: 30 * time.Second,
		SessionLength: 15 * time.Minute, Break: time.Minute, React: 15 * time.Second, SilentFor: 5 * time.Minute})
}

func TestWearerDeterministic(t *testing.T) {
	cfg := workerConfig(t, WorkerConfig{ForgetOdds: 0.2, OverrunOdds: 0.2, WanderOdds: 0.2, SilentOdds: 0.2, FlatBatteryOdds: 0.5})
	timeline := func(seed int64, index int) []string {
		f := newFakeServer(t0, 5*time.Minute)
		w := newWearer(cfg, 0.5, time.Second, seed, index, "p1", RoleRandom)
		f.run(w, 12*time.Hour)
		return f.timeline
	}
	a, b := timeline(42, 3), timeline(42, 3)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed, different behaviour (-a +b):\n%s", diff)
	}
	if len(a) < 50 {
		t.Fatalf("only %d things happened in 12 hours:\n%s", len(a), strings.Join(a, "\n"))
	}
	for name, other := range map[string][]string{"other seed": timeline(43, 3), "other device": timeline(42, 4)} {
		if cmp.Equal(a, other) {
			t.Errorf("%s: the same timeline, want a different one", name)
		}
	}
}

// TestWearerDiligent: with no odds, a worker checks in before every due
// time and ends every session on time, session after session.
func TestWearerDiligent(t *testing.T) {
	for seed := range int64(5) {
		f := newFakeServer(t0, 5*time.Minute)
		f.run(newWearer(workerConfig(t, WorkerConfig{}), 0, time.Second, seed, 0, "p1", RoleRandom), 24*time.Hour)
		for _, bad := range []string{"missed_checkin", "session_overrun", "late checkin", "forgot", "will overrun", "checkin outside a session", "end of another session"} {
			if f.count[bad] > 0 {
				t.Errorf("seed %d: %d× %s:\n%s", seed, f.count[bad], bad, strings.Join(f.timeline, "\n"))
			}
		}
		if f.count["start"] < 10 || f.count["end"] < f.count["start"]-1 || f.count["checkin"] < 3*f.count["start"] {
			t.Errorf("seed %d: %d sessions, %d ended, %d check-ins; want a working day of sessions with check-ins",
				seed, f.count["start"], f.count["end"], f.count["checkin"])
		}
		// Most check-ins answer the reminder (5 min before due, 10 min
		// interval), some come before it.
		if ans := f.count["reminder answered"]; ans == 0 || ans == f.count["checkin"] {
			t.Errorf("seed %d: %d of %d check-ins answered a reminder, want some but not all", seed, ans, f.count["checkin"])
		}
	}
}

// TestWearerAnswersReminders: a reminded worker checks in within React
// (0.3–1.7× its mean).
func TestWearerAnswersReminders(t *testing.T) {
	f := newFakeServer(t0, 5*time.Minute)
	f.run(newWearer(workerConfig(t, WorkerConfig{React: 20 * time.Second}), 0, time.Second, 7, 0, "p1", RoleRandom), 8*time.Hour)
	var reminded time.Duration = -1
	n := 0
	for _, line := range f.timeline {
		at, what, _ := strings.Cut(strings.TrimSpace(line), " ")
		d, err := time.ParseDuration(at)
		if err != nil {
			t.Fatal(err)
		}
		switch what {
		case "reminder answered":
			reminded = d
		case "checkin":
			if reminded >= 0 {
				n++
				if d-reminded > 34*time.Second {
					t.Errorf("checked in %v after the reminder, want within 34s", d-reminded)
				}
			}
			reminded = -1
		}
	}
	if n == 0 {
		t.Fatal("no reminder answered")
	}
}

// TestWearerForgets: a worker who forgets every check-in ignores every
// reminder, and each forgotten check-in is a missed_checkin; the late
// check-in comes after it.
func TestWearerForgets(t *testing.T) {
	f := newFakeServer(t0, 5*time.Minute)
	f.run(newWearer(workerConfig(t, WorkerConfig{ForgetOdds: 1}), 0, time.Second, 3, 0, "p1", RoleRandom), 12*time.Hour)
	if f.count["forgot"] == 0 || f.count["reminder answered"] != 0 || f.count["checkin"] != 0 {
		t.Fatalf("forgot %d, answered %d reminders, %d on-time check-ins:\n%s", f.count["forgot"], f.count["reminder answered"],
			f.count["checkin"], strings.Join(f.timeline, "\n"))
	}
	// Every forgotten check-in is missed, unless the session ended first.
	if m, fo := f.count["missed_checkin"], f.count["forgot"]; m < fo-f.count["start"] || m > fo {
		t.Errorf("%d missed check-ins for %d forgotten in %d sessions", m, fo, f.count["start"])
	}
	if f.count["late checkin"] == 0 || f.first["late checkin"] < f.first["missed_checkin"] {
		t.Errorf("late check-ins %d, first at %v, first missed at %v", f.count["late checkin"], f.first["late checkin"], f.first["missed_checkin"])
	}
}

func TestWearerOverruns(t *testing.T) {
	f := newFakeServer(t0, 5*time.Minute)
	f.run(newWearer(workerConfig(t, WorkerConfig{OverrunOdds: 1}), 0, time.Second, 5, 0, "p1", RoleRandom), 12*time.Hour)
	if f.count["end"] == 0 || f.count["session_overrun"] < f.count["end"] {
		t.Errorf("%d sessions ended, %d overran; want every one to overrun", f.count["end"], f.count["session_overrun"])
	}
	if f.count["missed_checkin"] != 0 {
		t.Errorf("%d missed check-ins", f.count["missed_checkin"])
	}
}

// TestDemoRoles: with the demo's settings, each scripted worker shows its
// alert within minutes of the start.
func TestDemoRoles(t *testing.T) {
	tests := []struct {
		role   Role
		what   string
		within time.Duration
	}{
		{RoleForgetful, "missed_checkin", 3 * time.Minute},
		{RoleOverrun, "session_overrun", 5 * time.Minute},
		{RoleWanderer, "wander", 20 * time.Second},
		{RoleSilent, "silent", 40 * time.Second},
	}
	for _, tc := range tests {
		t.Run(string(tc.role), func(t *testing.T) {
			for seed := range int64(10) {
				f := newFakeServer(t0, time.Minute)
				f.run(newWearer(demoWorkers(t), 0, time.Second, seed, 1, "p1", tc.role), 10*time.Minute)
				at, ok := f.first[tc.what]
				if !ok || at > tc.within {
					t.Fatalf("seed %d: %s at %v (seen %v), want within %v:\n%s", seed, tc.what, at, ok, tc.within, strings.Join(f.timeline, "\n"))
				}
			}
		})
	}
	// The silent worker presses nothing while silent, and only its first
	// check-in is late.
	f := newFakeServer(t0, time.Minute)
	f.run(newWearer(demoWorkers(t), 0, time.Second, 1, 1, "p1", RoleSilent), 15*time.Minute)
	silent, resume := f.first["silent"], f.first["resume"]
	if resume-silent != 5*time.Minute {
		t.Errorf("silent from %v to %v, want 5m", silent, resume)
	}
	for _, line := range f.timeline {
		at, what, _ := strings.Cut(strings.TrimSpace(line), " ")
		d, _ := time.ParseDuration(at)
		if d > silent && d < resume && strings.Contains(what, "checkin") && what != "missed_checkin" {
			t.Errorf("%s while silent", line)
		}
	}
	// A diligent scripted worker raises nothing.
	f = newFakeServer(t0, time.Minute)
	f.run(newWearer(demoWorkers(t), 0, time.Second, 1, 1, "p1", RoleDiligent), 30*time.Minute)
	if f.count["missed_checkin"]+f.count["session_overrun"] > 0 || f.count["start"] == 0 {
		t.Errorf("diligent worker:\n%s", strings.Join(f.timeline, "\n"))
	}
	if w := newWearer(demoWorkers(t), 0, time.Second, 1, 1, "p1", RoleFlatBattery); !w.flat {
		t.Error("flat_battery worker has a good battery")
	}
}

// TestWearerCancelsPreAlerts: a pre_alert is cancelled before its due
// time with CancelOdds, by anyone; never while the device is silent.
func TestWearerCancelsPreAlerts(t *testing.T) {
	count := func(w *wearer, n int) (cancels int) {
		now := t0
		for range n {
			due := now.Add(time.Minute)
			w.command(now, command{Type: "pre_alert", AlertID: "a1", Due: due})
			for ; now.Before(due.Add(time.Minute)); now = now.Add(time.Second) {
				for _, a := range w.step(now) {
					if a.kind == actCancel {
						if !now.Before(due) {
							t.Errorf("cancel at %v, after the due time %v", now.Sub(t0), due.Sub(t0))
						}
						cancels++
					}
				}
			}
		}
		return cancels
	}
	cfg := workerConfig(t, WorkerConfig{React: 50 * time.Second})
	if got := count(newWearer(cfg, 1, time.Second, 1, 0, "", RoleRandom), 20); got != 20 {
		t.Errorf("odds 1: %d of 20 cancelled", got)
	}
	if got := count(newWearer(cfg, 0, time.Second, 1, 0, "", RoleRandom), 20); got != 0 {
		t.Errorf("odds 0: %d of 20 cancelled", got)
	}
	if got := count(newWearer(cfg, 0.5, time.Second, 1, 0, "", RoleRandom), 200); got < 70 || got > 130 {
		t.Errorf("odds 0.5: %d of 200 cancelled", got)
	}
	w := newWearer(cfg, 1, time.Second, 1, 0, "", RoleRandom)
	w.silentTo = t0.Add(time.Hour)
	if got := count(w, 5); got != 0 {
		t.Errorf("silent: %d cancelled", got)
	}
	// Other commands are only counted.
	for _, typ := range []string{"alert_raised", "alert_cancelled", "checkin_reminder", "reboot"} {
		if newWearer(cfg, 1, time.Second, 1, 0, "", RoleRandom).command(t0, command{Type: typ}) {
			t.Errorf("%s acted on by a device with no session", typ)
		}
	}
}

// TestWearerRetriesStart: a failed start is retried with backoff; a
// refusal stops the worker.
func TestWearerRetriesStart(t *testing.T) {
	w := newWearer(workerConfig(t, WorkerConfig{}), 0, time.Second, 1, 0, "p1", RoleDiligent)
	w.start(t0)
	now := t0
	var waits []time.Duration
	for range 12 {
		now = w.next()
		acts := w.step(now)
		if len(acts) != 1 || acts[0].kind != actStart {
			t.Fatalf("got %+v, want a start", acts)
		}
		w.startFailed(now)
		waits = append(waits, w.next().Sub(now))
	}
	if waits[0] > 2*time.Second || waits[len(waits)-1] < 150*time.Second || waits[len(waits)-1] > 450*time.Second {
		t.Errorf("retry waits %v, want 1s doubling to about 5m", waits)
	}
	w.step(w.next())
	w.giveUp()
	if !w.next().IsZero() || len(w.step(now.Add(time.Hour))) != 0 {
		t.Error("a worker the server refused keeps trying")
	}
}

// TestWanderLeavesZone: a wanderer placed near the edge walks out beyond
// it within minutes, stays a while, then comes back inside.
func TestWanderLeavesZone(t *testing.T) {
	const zone = 2000.0
	for seed := range int64(5) {
		m := newModel(seed, 0, leeds, "b", t0)
		m.placeAt(zone - wanderStart)
		m.walk.wander(zone + wanderBeyond)
		var out, back time.Duration
		for i := range 60 * 60 {
			now := t0.Add(time.Duration(i) * time.Second)
			m.advance(now)
			r := math.Hypot(m.walk.x, m.walk.y)
			if out == 0 && r > zone+50 {
				out = now.Sub(t0)
			}
			if out > 0 && back == 0 && r < zone-50 {
				back = now.Sub(t0)
			}
		}
		if out == 0 || out > 4*time.Minute {
			t.Errorf("seed %d: 50 m outside after %v, want within 4m", seed, out)
		}
		if back == 0 || back-out < 3*time.Minute {
			t.Errorf("seed %d: out at %v, back at %v; want a stay of minutes, then back", seed, out, back)
		}
	}
}

func TestFlatBattery(t *testing.T) {
	m := newModel(1, 0, leeds, "b", t0)
	m.flatBattery()
	first := m.battery(t0).Battery
	second := m.battery(t0.Add(5 * time.Minute)).Battery
	if first.Percent <= 20 || second.Percent > 20 || second.Charging {
		t.Errorf("battery %+v then %+v five minutes later, want above 20 %% then at most 20 %%, not charging", first, second)
	}
}

func TestNewValidatesWorkers(t *testing.T) {
	dev := []Credential{{DeviceID: "da", Secret: "s"}}
	people := map[string]string{"da": "p1"}
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"workers", Config{MQTTAddr: "h:1", APIAddr: "h:2", Devices: dev, Workers: WorkerConfig{People: people}}, true},
		{"people of other devices", Config{MQTTAddr: "h:1", Devices: dev, Workers: WorkerConfig{People: map[string]string{"db": "p"}}}, true},
		{"workers without the API", Config{MQTTAddr: "h:1", Devices: dev, Workers: WorkerConfig{People: people}}, false},
		{"API without port", Config{MQTTAddr: "h:1", APIAddr: "h", Devices: dev, Workers: WorkerConfig{People: people}}, false},
		{"interval below 1m", Config{MQTTAddr: "h:1", APIAddr: "h:2", Devices: dev, Workers: WorkerConfig{People: people, CheckinInterval: 30 * time.Second}}, false},
		{"odds above 1", Config{MQTTAddr: "h:1", Devices: dev, Workers: WorkerConfig{ForgetOdds: 1.5}}, false},
		{"cancel odds below 0", Config{MQTTAddr: "h:1", Devices: dev, CancelOdds: -0.1}, false},
		{"unknown role", Config{MQTTAddr: "h:1", Devices: dev, Workers: WorkerConfig{Roles: []Role{"sleepy"}}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Errorf("got %v, want ok=%v", err, tc.ok)
			}
		})
	}
	s, err := New(Config{MQTTAddr: "h:1", APIAddr: "h:2", Devices: dev, Workers: WorkerConfig{People: people}})
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Workers != 1 {
		t.Errorf("got %d workers, want 1", st.Workers)
	}
	if s.cfg.Workers.ZoneRadius != 2000 || s.cfg.Workers.CheckinInterval != 10*time.Minute {
		t.Errorf("defaults: %+v", s.cfg.Workers)
	}
}
