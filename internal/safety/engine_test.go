package safety_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"vigil/internal/alert"
	"vigil/internal/clock"
	"vigil/internal/event"
	"vigil/internal/safety"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
)

// commands records what the engine told devices.
type commands struct {
	mu  sync.Mutex
	got []string
}

func (c *commands) Command(_ context.Context, deviceID string, cmd safety.Command) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, deviceID+":"+cmd.Type)
	return nil
}

func (c *commands) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// world is one scenario: a store with org acme, worker p1 with device
// d1, resident r1 with pendant d2, and a running engine.
type world struct {
	t      *testing.T
	dir    string
	st     *sqlite.Store
	eng    *safety.Engine
	cmds   *commands
	cancel context.CancelFunc
	done   chan struct{}
	seq    int
	cfg    safety.Config
}

func newWorld(t *testing.T, cfg safety.Config) *world {
	t.Helper()
	if cfg.OfflineAfter == 0 {
		cfg.OfflineAfter = 24 * time.Hour // out of the way of scenarios about something else
	}
	w := &world{t: t, dir: t.TempDir(), cfg: cfg}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(w.dir, "v.db"), sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	w.st = st
	for _, err := range []error{
		st.CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme"}),
		st.CreatePerson(ctx, store.Person{ID: "p1", OrgID: "acme", Kind: store.PersonWorker, Name: "Ann"}),
		st.CreatePerson(ctx, store.Person{ID: "r1", OrgID: "acme", Kind: store.PersonResident, Name: "Rose"}),
		st.CreateDevice(ctx, store.Device{ID: "d1", OrgID: "acme", Name: "phone", PersonID: "p1"}),
		st.CreateDevice(ctx, store.Device{ID: "d2", OrgID: "acme", Name: "pendant", PersonID: "r1"}),
		st.SetDuressCode(ctx, "p1", store.DuressHash("p1", "9111")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	w.start()
	t.Cleanup(func() {
		w.stop()
		st.Close()
	})
	return w
}

// start runs a fresh engine over the store, as a restarted server would.
func (w *world) start() {
	w.t.Helper()
	w.cmds = &commands{}
	w.eng = safety.New(w.st, w.cmds, clock.Real{}, slog.New(slog.NewTextHandler(io.Discard, nil)), w.cfg)
	if err := w.eng.Load(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan struct{})
	go func() {
		defer close(w.done)
		w.eng.Run(ctx)
	}()
}

func (w *world) stop() {
	if w.cancel != nil {
		w.cancel()
		<-w.done
		w.cancel = nil
	}
}

func (w *world) ev(dev string, typ event.Type, f func(e *event.Event)) event.Event {
	w.seq++
	now := time.Now().UTC()
	e := event.Event{V: 1, OrgID: "acme", DeviceID: dev, MsgID: fmt.Sprintf("m%d", w.seq), Type: typ,
		DeviceTime: now, ReceivedAt: now, Source: event.SourceMQTT}
	if f != nil {
		f(&e)
	}
	return e
}

func (w *world) send(evs ...event.Event) {
	w.t.Helper()
	if err := w.eng.HandleEvents(context.Background(), evs); err != nil {
		w.t.Fatal(err)
	}
}

func button(kind event.ButtonKind, code string) func(e *event.Event) {
	return func(e *event.Event) { e.Button = &event.Button{Kind: kind, Code: code} }
}

func (w *world) alerts(states ...store.AlertState) []store.Alert {
	w.t.Helper()
	as, err := w.st.ListAlerts(context.Background(), store.AlertFilter{States: states})
	if err != nil {
		w.t.Fatal(err)
	}
	return as
}

func (w *world) kinds(states ...store.AlertState) []string {
	var out []string
	for _, a := range w.alerts(states...) {
		out = append(out, a.Kind+"/"+string(a.State))
	}
	return out
}

func (w *world) wantKinds(when string, want ...string) {
	w.t.Helper()
	synctest.Wait()
	got := w.kinds()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		w.t.Errorf("%s: alerts %v, want %v", when, got, want)
	}
}

func (w *world) startSession(r safety.StartRequest) store.Session {
	w.t.Helper()
	res, err := w.eng.StartSession(context.Background(), r)
	if err != nil {
		w.t.Fatal(err)
	}
	return res.Session
}

// at sleeps (virtual time) until d after the scenario's start t0.
func at(t0 time.Time, d time.Duration) {
	time.Sleep(time.Until(t0.Add(d)))
	synctest.Wait()
}

// TestSOS: At(0) SOS → an alert raised at once with the position; the same
// event again (redelivery) changes nothing; a second press joins the
// open alert's timeline.
func TestSOS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		pos := w.ev("d1", event.TypePosition, func(e *event.Event) {
			e.Position = &event.Position{Lat: 51.5, Lon: -0.12, AccuracyM: 9}
		})
		w.send(pos)
		sos := w.ev("d1", event.TypeButton, button(event.ButtonSOS, ""))
		w.send(sos)
		as := w.alerts()
		if len(as) != 1 {
			t.Fatalf("after SOS: %d alerts, want 1", len(as))
		}
		a := as[0]
		if a.Kind != alert.KindSOS || a.State != store.AlertRaised || a.Severity != alert.SeverityCritical || a.PersonID != "p1" ||
			a.Position == nil || a.Position.Lat != 51.5 || !a.RaisedAt.Equal(time.Now()) {
			t.Errorf("SOS alert: %+v", a)
		}
		w.send(sos) // redelivered
		w.send(w.ev("d1", event.TypeButton, button(event.ButtonSOS, "")))
		as = w.alerts()
		full, _ := w.st.GetAlert(context.Background(), as[0].ID)
		if len(as) != 1 || len(full.Timeline) != 2 {
			t.Errorf("after a redelivery and a second press: %d alerts, timeline %d entries; want 1 and 2", len(as), len(full.Timeline))
		}
		if got := w.cmds.list(); len(got) != 1 || got[0] != "d1:alert_raised" {
			t.Errorf("commands %v, want one alert_raised", got)
		}
	})
}

// TestMissedCheckin: At(0) start interval 30m grace 5m → reminder at 25m,
// nothing at 34m59s, missed_checkin at 35m.
func TestMissedCheckin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		t0 := time.Now()
		w.startSession(safety.StartRequest{PersonID: "p1", DeviceID: "d1", Duration: 4 * time.Hour,
			CheckinInterval: 30 * time.Minute, Grace: 5 * time.Minute, Note: "flat 3", By: "api"})
		at(t0, 25*time.Minute+time.Second)
		if got := w.cmds.list(); fmt.Sprint(got) != "[d1:checkin_reminder]" {
			t.Errorf("at 25m commands %v, want a reminder", got)
		}
		at(t0, 35*time.Minute-time.Second)
		w.wantKinds("at 34m59s")
		at(t0, 35*time.Minute)
		w.wantKinds("at 35m", "missed_checkin/raised")
		a := w.alerts()[0]
		if a.Note != "flat 3" || a.SessionID == "" || a.DeviceID != "d1" {
			t.Errorf("missed_checkin alert: %+v", a)
		}
		at(t0, 2*time.Hour)
		w.wantKinds("at 2h (no repeat without a check-in)", "missed_checkin/raised")
	})
}

// TestCheckinMovesDeadline: a check-in at 20m moves the deadline to 55m;
// a check-in by button works the same.
func TestCheckinMovesDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		t0 := time.Now()
		s := w.startSession(safety.StartRequest{PersonID: "p1", Duration: 4 * time.Hour, CheckinInterval: 30 * time.Minute, Grace: 5 * time.Minute})
		at(t0, 20*time.Minute)
		if _, err := w.eng.CheckIn(context.Background(), s.ID, "api"); err != nil {
			t.Fatal(err)
		}
		at(t0, 54*time.Minute)
		w.send(w.ev("d1", event.TypeButton, button(event.ButtonCheckIn, "")))
		at(t0, 60*time.Minute)
		w.wantKinds("at 60m after check-ins at 20m and 54m")
		at(t0, 89*time.Minute-time.Second)
		w.wantKinds("at 88m59s")
		at(t0, 89*time.Minute)
		w.wantKinds("at 89m (54m + 30m + 5m)", "missed_checkin/raised")
	})
}

// TestOverrunAndEnd: not ending by expected end + grace raises
// session_overrun; ending in time raises nothing.
func TestOverrunAndEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		t0 := time.Now()
		s := w.startSession(safety.StartRequest{PersonID: "p1", Duration: time.Hour, Grace: 5 * time.Minute})
		at(t0, 65*time.Minute-time.Second)
		w.wantKinds("before overrun")
		at(t0, 65*time.Minute)
		w.wantKinds("at 65m", "session_overrun/raised")
		if _, err := w.eng.End(context.Background(), s.ID, "api"); err != nil {
			t.Fatal(err)
		}
		s2 := w.startSession(safety.StartRequest{PersonID: "p1", Duration: time.Hour, Grace: 5 * time.Minute})
		at(t0, 2*time.Hour)
		if _, err := w.eng.Extend(context.Background(), s2.ID, time.Now().Add(time.Hour), "api"); err != nil {
			t.Fatal(err)
		}
		at(t0, 3*time.Hour)
		if _, err := w.eng.End(context.Background(), s2.ID, "api"); err != nil {
			t.Fatal(err)
		}
		at(t0, 10*time.Hour)
		w.wantKinds("after an extended session ended in time", "session_overrun/raised")
		if _, err := w.eng.End(context.Background(), s2.ID, "api"); err == nil {
			t.Error("ending an ended session: no error")
		}
	})
}

// TestOneTimerPerSession: a session keeps one deadline, its next due
// moment, through its reminder (25m), missed check-in (35m) and overrun
// (55m); after a restart past all of them the missed check-in and the
// overrun are both raised at once, and the passed reminder is not sent.
func TestOneTimerPerSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		t0 := time.Now()
		req := safety.StartRequest{PersonID: "p1", DeviceID: "d1", Duration: 50 * time.Minute,
			CheckinInterval: 30 * time.Minute, Grace: 5 * time.Minute}
		s := w.startSession(req)
		timers := func(when string, want int) {
			t.Helper()
			synctest.Wait()
			if n := w.eng.Timers(); n != want {
				t.Errorf("%s: %d timers, want %d", when, n, want)
			}
		}
		timers("after the start", 1)
		at(t0, 25*time.Minute)
		if got := w.cmds.list(); fmt.Sprint(got) != "[d1:checkin_reminder]" {
			t.Errorf("at 25m commands %v, want a reminder", got)
		}
		timers("after the reminder", 1)
		at(t0, 35*time.Minute)
		w.wantKinds("at 35m", "missed_checkin/raised")
		timers("after the missed check-in", 1)
		at(t0, 55*time.Minute-time.Second)
		w.wantKinds("at 54m59s", "missed_checkin/raised")
		at(t0, 55*time.Minute)
		w.wantKinds("at 55m", "session_overrun/raised", "missed_checkin/raised")
		timers("after the overrun", 0)
		if _, err := w.eng.End(context.Background(), s.ID, "api"); err != nil {
			t.Fatal(err)
		}

		t1 := time.Now()
		s2 := w.startSession(req)
		at(t1, 10*time.Minute)
		w.stop()
		at(t1, 60*time.Minute)
		w.start()
		synctest.Wait()
		var got []string
		for _, a := range w.alerts() {
			if a.SessionID == s2.ID {
				got = append(got, a.Kind+"@"+a.CauseTime.Sub(t1).String())
			}
		}
		slices.Sort(got)
		if want := "[missed_checkin@35m0s session_overrun@55m0s]"; fmt.Sprint(got) != want {
			t.Errorf("after a restart at 60m: %v, want %v", got, want)
		}
		if got := w.cmds.list(); slices.Contains(got, "d1:checkin_reminder") {
			t.Errorf("after a restart past the check-in: commands %v, want no reminder", got)
		}
		timers("after the restart", 0)
	})
}

// TestRestartPositionNotOverridden: Load does not read positions, yet a
// position older than the stored one, arriving late after a restart, does
// not replace it: an SOS then carries the stored (newer) fix.
func TestRestartPositionNotOverridden(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		t0 := time.Now().UTC()
		ctx := context.Background()
		fixAt := t0.Add(time.Minute)
		pos := w.ev("d1", event.TypePosition, func(e *event.Event) {
			e.Position = &event.Position{Lat: 51.5, Lon: -0.12, AccuracyM: 9, FixTime: fixAt}
			e.DeviceTime, e.ReceivedAt = fixAt, fixAt
		})
		if _, err := w.st.ApplyEvents(ctx, []event.Event{pos}); err != nil { // the projection's doing
			t.Fatal(err)
		}
		at(t0, 2*time.Minute)
		w.stop()
		w.start()
		old := w.ev("d1", event.TypePosition, func(e *event.Event) {
			e.Position = &event.Position{Lat: 40, Lon: 3, AccuracyM: 9, FixTime: t0}
			e.DeviceTime, e.Late = t0, true
		})
		w.send(old, w.ev("d1", event.TypeButton, button(event.ButtonSOS, "")))
		w.wantKinds("after the SOS", "sos/raised")
		if a := w.alerts()[0]; a.Position == nil || a.Position.Lat != 51.5 || !a.PositionTime.Equal(fixAt) {
			t.Errorf("SOS after a restart and a late older fix: position %+v at %v, want the stored fix of %v", a.Position, a.PositionTime, fixAt)
		}
	})
}

// TestRestart: the server stops at 10m and comes back at 40m; the check-in
// deadline (35m) that passed while it was down fires at once on start,
// exactly once, and a further restart raises nothing again.
func TestRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		t0 := time.Now()
		w.startSession(safety.StartRequest{PersonID: "p1", Duration: 4 * time.Hour, CheckinInterval: 30 * time.Minute, Grace: 5 * time.Minute})
		at(t0, 10*time.Minute)
		w.stop()
		at(t0, 40*time.Minute)
		w.wantKinds("while down")
		w.start()
		w.wantKinds("right after the restart", "missed_checkin/raised")
		w.stop()
		w.start()
		at(t0, 41*time.Minute)
		w.wantKinds("after a second restart", "missed_checkin/raised")
	})
}

// TestDeviceOffline: a worker's device that goes quiet during a session
// raises device_offline with its last position; outside a session it is
// not watched; a resident's pendant is always watched.
func TestDeviceOffline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{OfflineAfter: 15 * time.Minute})
		t0 := time.Now()
		w.send(w.ev("d1", event.TypePosition, func(e *event.Event) { e.Position = &event.Position{Lat: 52, Lon: 1, AccuracyM: 5} }))
		at(t0, 20*time.Minute)
		w.wantKinds("worker off duty")
		w.send(w.ev("d2", event.TypeHeartbeat, nil))
		w.startSession(safety.StartRequest{PersonID: "p1", Duration: 4 * time.Hour})
		w.send(w.ev("d1", event.TypeHeartbeat, nil))
		at(t0, 34*time.Minute)
		w.send(w.ev("d1", event.TypeHeartbeat, nil))
		at(t0, 49*time.Minute-time.Second)
		w.wantKinds("before 15 min of silence", "device_offline/raised") // the pendant, silent since 20m
		at(t0, 49*time.Minute)
		as := w.alerts()
		if len(as) != 2 {
			t.Fatalf("alerts %v, want the pendant's and the phone's device_offline", w.kinds())
		}
		phone := as[0]
		if phone.DeviceID != "d1" || phone.Kind != alert.KindDeviceOffline || phone.Position == nil || phone.Position.Lat != 52 {
			t.Errorf("phone offline alert: %+v", phone)
		}
	})
}

// TestFallPreAlert: a fall is a pending pre-alert; the wearer's cancel
// inside the window cancels it; an uncancelled one is raised when the
// window ends.
func TestFallPreAlert(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{PreAlert: time.Minute})
		t0 := time.Now()
		fall := func(e *event.Event) { e.Fall = &event.Fall{Confidence: 0.9} }
		w.send(w.ev("d2", event.TypeFall, fall))
		w.wantKinds("after a fall", "fall/pending")
		at(t0, 20*time.Second)
		cancel := w.ev("d2", event.TypeButton, button(event.ButtonCancel, ""))
		w.send(cancel)
		w.wantKinds("after cancel", "fall/cancelled")
		at(t0, 2*time.Minute)
		w.wantKinds("after the window", "fall/cancelled")

		w.send(w.ev("d2", event.TypeFall, fall))
		w.send(cancel) // the first cancel redelivered: it acted once already
		at(t0, 3*time.Minute-time.Second)
		w.wantKinds("second fall, pending", "fall/pending", "fall/cancelled")
		at(t0, 3*time.Minute)
		w.wantKinds("second fall, window over", "fall/raised", "fall/cancelled")
		if got := w.cmds.list(); fmt.Sprint(got) != "[d2:pre_alert d2:alert_cancelled d2:pre_alert d2:alert_raised]" {
			t.Errorf("commands %v", got)
		}
	})
}

// TestFallHelp: "I need help" during a fall's cancel window raises it at
// once, with the wearer on the timeline; redelivered, it acts once; an
// SOS inside the window raises the fall too; with no pre-alert open,
// "help" is an SOS.
func TestFallHelp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{PreAlert: time.Minute})
		t0 := time.Now()
		fall := func(e *event.Event) { e.Fall = &event.Fall{Confidence: 0.9} }
		w.send(w.ev("d2", event.TypeFall, fall))
		at(t0, 10*time.Second)
		help := w.ev("d2", event.TypeButton, button(event.ButtonHelp, ""))
		w.send(help)
		w.wantKinds("after help", "fall/raised")
		a, err := w.st.GetAlert(context.Background(), w.alerts()[0].ID)
		if err != nil || len(a.Timeline) == 0 {
			t.Fatalf("GetAlert: %v, %d entries", err, len(a.Timeline))
		}
		last := a.Timeline[len(a.Timeline)-1]
		if last.Actor != "device:d2" || last.Action != alert.ActionRaised || !last.At.Equal(t0.Add(10*time.Second).UTC()) {
			t.Errorf("last timeline entry %+v, want raised by the device at 10 s", last)
		}
		w.send(help) // redelivered: no SOS, nothing more
		at(t0, 2*time.Minute)
		w.wantKinds("after the window", "fall/raised")
		if got := w.cmds.list(); fmt.Sprint(got) != "[d2:pre_alert d2:alert_raised]" {
			t.Errorf("commands %v, want the pre-alert and one alert_raised", got)
		}
		if _, err := w.eng.Alerts().Resolve(context.Background(), a.ID, "test", "assisted", ""); err != nil {
			t.Fatal(err)
		}

		// An SOS inside the window: the SOS and the fall are both raised.
		w.send(w.ev("d2", event.TypeFall, fall))
		at(t0, 2*time.Minute+5*time.Second)
		w.send(w.ev("d2", event.TypeButton, button(event.ButtonSOS, "")))
		w.wantKinds("SOS in the window", "sos/raised", "fall/raised", "fall/resolved")

		// Help with nothing pending: an SOS (joining the open one).
		w.send(w.ev("d1", event.TypeButton, button(event.ButtonHelp, "")))
		got := w.kinds()
		if n := strings.Count(fmt.Sprint(got), "sos/raised"); n != 2 {
			t.Errorf("alerts %v, want a second sos (d1's help with nothing pending)", got)
		}
	})
}

// TestFallCancelWindowPerPerson: a resident whose care plan gives them
// 15 s to cancel has their fall raised at 15 s, not at the server's
// default minute; clearing it returns to the default.
func TestFallCancelWindowPerPerson(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{PreAlert: time.Minute})
		if err := w.st.SetFallCancelWindow(context.Background(), "r1", 15*time.Second); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		fall := func(e *event.Event) { e.Fall = &event.Fall{Confidence: 0.9} }
		w.send(w.ev("d2", event.TypeFall, fall))
		at(t0, 14*time.Second)
		w.wantKinds("inside the person's window", "fall/pending")
		at(t0, 15*time.Second)
		w.wantKinds("the person's window over", "fall/raised")
		first := w.alerts()[0]
		if _, err := w.eng.Alerts().Resolve(context.Background(), first.ID, "test", "assisted", ""); err != nil {
			t.Fatal(err)
		}

		// Cleared: the server's default applies again.
		if err := w.st.SetFallCancelWindow(context.Background(), "r1", 0); err != nil {
			t.Fatal(err)
		}
		at(t0, time.Minute)
		w.send(w.ev("d2", event.TypeFall, fall))
		at(t0, 2*time.Minute-time.Second)
		w.wantKinds("default window", "fall/pending", "fall/resolved")
		at(t0, 2*time.Minute)
		w.wantKinds("default window over", "fall/raised", "fall/resolved")
	})
}

// TestFallPreAlertSurvivesRestart: a pending pre-alert whose window ends
// while the server is down is raised on start.
func TestFallPreAlertSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{PreAlert: time.Minute})
		t0 := time.Now()
		w.send(w.ev("d2", event.TypeFall, func(e *event.Event) { e.Fall = &event.Fall{Confidence: 0.9} }))
		w.stop()
		at(t0, 5*time.Minute)
		w.start()
		w.wantKinds("after restart", "fall/raised")
	})
}

// TestDuressCancel: a cancel with the duress code during the SOS cancel
// window tells the device "cancelled" while the alert stays open, marked
// duress; a cancel with no alert and the duress code raises a silent
// duress alarm.
func TestDuressCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		w.send(w.ev("d1", event.TypeButton, button(event.ButtonSOS, "")))
		w.send(w.ev("d1", event.TypeButton, button(event.ButtonCancel, "9111")))
		as := w.alerts()
		if len(as) != 1 || as[0].State != store.AlertRaised || !as[0].Duress {
			t.Fatalf("after duress cancel: %+v", as)
		}
		if got := w.cmds.list(); fmt.Sprint(got) != "[d1:alert_raised d1:alert_cancelled]" {
			t.Errorf("device commands %v, want raised then cancelled", got)
		}
		ctx := context.Background()
		if _, err := w.eng.Alerts().Resolve(ctx, as[0].ID, "user:u1", alert.OutcomeAssisted, ""); err != nil {
			t.Fatal(err)
		}
		w.send(w.ev("d1", event.TypeButton, button(event.ButtonCancel, "9111")))
		as = w.alerts(store.AlertRaised)
		if len(as) != 1 || as[0].Kind != alert.KindDuress || !as[0].Duress {
			t.Errorf("silent duress: %+v", as)
		}
		// A plain cancel with no alert open does nothing.
		w.send(w.ev("d1", event.TypeButton, button(event.ButtonCancel, "")))
		if n := len(w.alerts()); n != 2 {
			t.Errorf("%d alerts after a stray cancel, want 2", n)
		}
	})
}

// TestLowBattery: a session started on a low battery warns; a battery
// report below the threshold while monitored raises low_battery once.
func TestLowBattery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		w.send(w.ev("d1", event.TypeBattery, func(e *event.Event) { e.Battery = &event.Battery{Percent: 15} }))
		w.wantKinds("off duty")
		res, err := w.eng.StartSession(context.Background(), safety.StartRequest{PersonID: "p1", Preset: "medium"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Warnings) != 1 {
			t.Errorf("warnings %v, want one about the battery", res.Warnings)
		}
		w.wantKinds("session on low battery", "low_battery/raised")
		w.send(w.ev("d1", event.TypeBattery, func(e *event.Event) { e.Battery = &event.Battery{Percent: 8} }))
		as := w.alerts()
		full, _ := w.st.GetAlert(context.Background(), as[0].ID)
		if len(as) != 1 || len(full.Timeline) != 2 {
			t.Errorf("critical battery: %d alerts, %d entries; want it joined to the open one", len(as), len(full.Timeline))
		}
	})
}

// TestLateCheckin: a check-in made before the deadline but delivered
// after (store-and-forward) is added to the missed_checkin alert's
// timeline; nothing resolves by itself and nothing fires twice.
func TestLateCheckin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		t0 := time.Now()
		w.startSession(safety.StartRequest{PersonID: "p1", Duration: 4 * time.Hour, CheckinInterval: 30 * time.Minute, Grace: 5 * time.Minute})
		at(t0, 29*time.Minute)
		ci := w.ev("d1", event.TypeButton, button(event.ButtonCheckIn, ""))
		at(t0, 40*time.Minute)
		w.wantKinds("at 40m", "missed_checkin/raised")
		ci.ReceivedAt, ci.Late = time.Now().UTC(), true
		w.send(ci)
		as := w.alerts()
		full, _ := w.st.GetAlert(context.Background(), as[0].ID)
		if last := full.Timeline[len(full.Timeline)-1]; last.Action != "checked_in" {
			t.Errorf("timeline after a late check-in: %+v", full.Timeline)
		}
		at(t0, 64*time.Minute)
		w.wantKinds("at 64m (next due 59m+5m)", "missed_checkin/raised")
	})
}

func TestStartSessionErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		ctx := context.Background()
		for _, tc := range []struct {
			r     safety.StartRequest
			field string
		}{
			{safety.StartRequest{}, "person_id"},
			{safety.StartRequest{PersonID: "nope", Duration: time.Hour}, "person_id"},
			{safety.StartRequest{PersonID: "p1", OrgID: "other", Duration: time.Hour}, "person_id"},
			{safety.StartRequest{PersonID: "p1"}, "duration"},
			{safety.StartRequest{PersonID: "p1", Duration: 25 * time.Hour}, "duration"},
			{safety.StartRequest{PersonID: "p1", Duration: time.Hour, CheckinInterval: time.Second}, "checkin_interval"},
			{safety.StartRequest{PersonID: "p1", Duration: time.Hour, Grace: -time.Second}, "grace"},
			{safety.StartRequest{PersonID: "p1", Preset: "extreme"}, "preset"},
			{safety.StartRequest{PersonID: "p1", Duration: time.Hour, DeviceID: "d2"}, "device_id"},
		} {
			_, err := w.eng.StartSession(ctx, tc.r)
			if err == nil || !contains(err.Error(), tc.field) {
				t.Errorf("StartSession(%+v): %v, want an error naming %s", tc.r, err, tc.field)
			}
		}
		w.startSession(safety.StartRequest{PersonID: "p1", Preset: "high"})
		if _, err := w.eng.StartSession(ctx, safety.StartRequest{PersonID: "p1", Preset: "high"}); err != safety.ErrActiveSession {
			t.Errorf("second session: %v, want ErrActiveSession", err)
		}
	})
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestRestartAlertDetails: after a restart the engine keeps only a
// session's timing, yet the missed_checkin alert raised from it still
// carries the amber note, the session's device and that device's stored
// position; the API's session calls still return the whole session; and a
// session started after the restart is timed like any other.
func TestRestartAlertDetails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, safety.Config{})
		t0 := time.Now()
		ctx := context.Background()
		s := w.startSession(safety.StartRequest{PersonID: "p1", DeviceID: "d1", Duration: 4 * time.Hour,
			CheckinInterval: 30 * time.Minute, Grace: 5 * time.Minute, Note: "flat 3, dog in the garden", By: "api"})
		fixAt := t0.Add(time.Minute).UTC()
		pos := w.ev("d1", event.TypePosition, func(e *event.Event) {
			e.Position = &event.Position{Lat: 51.5, Lon: -0.12, AccuracyM: 9, FixTime: fixAt}
			e.DeviceTime, e.ReceivedAt = fixAt, fixAt
		})
		if _, err := w.st.ApplyEvents(ctx, []event.Event{pos}); err != nil { // the projection's doing
			t.Fatal(err)
		}
		at(t0, 10*time.Minute)
		w.stop()
		w.start()
		got, err := w.eng.Extend(ctx, s.ID, t0.Add(5*time.Hour), "api")
		if err != nil {
			t.Fatal(err)
		}
		if got.Note != s.Note || got.Preset != s.Preset || got.DeviceID != "d1" || got.Version != 2 {
			t.Errorf("Extend after a restart returned %+v", got)
		}
		at(t0, 35*time.Minute)
		w.wantKinds("at 35m after a restart at 10m", "missed_checkin/raised")
		a := w.alerts()[0]
		if a.Note != "flat 3, dog in the garden" || a.SessionID != s.ID || a.DeviceID != "d1" || a.PersonID != "p1" || a.OrgID != "acme" {
			t.Errorf("missed_checkin alert after a restart: %+v", a)
		}
		if a.Position == nil || a.Position.Lat != 51.5 || a.Position.Lon != -0.12 || !a.Position.FixTime.Equal(fixAt) || !a.PositionTime.Equal(fixAt) {
			t.Errorf("missed_checkin alert position %+v at %v, want the stored fix of %v", a.Position, a.PositionTime, fixAt)
		}
		if _, err := w.eng.End(ctx, s.ID, "api"); err != nil {
			t.Fatal(err)
		}
		if n := w.eng.Timers(); n != 0 {
			t.Errorf("%d timers after the only session ended, want 0", n)
		}
		s2 := w.startSession(safety.StartRequest{PersonID: "p1", Duration: time.Hour, Grace: time.Minute, Note: "second visit"})
		at(t0, 35*time.Minute+61*time.Minute)
		w.wantKinds("after the second session overran", "session_overrun/raised", "missed_checkin/raised")
		for _, a := range w.alerts() {
			if a.Kind == alert.KindSessionOverrun && (a.SessionID != s2.ID || a.Note != "second visit") {
				t.Errorf("overrun of the session started after the restart: %+v", a)
			}
		}
	})
}
