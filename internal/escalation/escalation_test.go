package escalation_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/internal/clock"
	"vigil/internal/escalation"
	"vigil/internal/event"
	"vigil/internal/notify"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
)

// sent is one delivery a recording channel took, at the server's time.
type sent struct {
	At      time.Duration // since t0
	Channel string
	To      string
	Event   notify.Event
	Step    int
	Attempt int
}

func (s sent) String() string {
	return fmt.Sprintf("%v %s:%s %s %d/%d", s.At, s.Channel, s.To, s.Event, s.Step, s.Attempt)
}

// recorder is a channel that records what it is given (the channels
// themselves are tested against real far ends in their own packages).
type recorder struct {
	channel string
	clk     *clock.Manual
	t0      time.Time
	fail    error
	mu      sync.Mutex
	got     []sent
}

func (r *recorder) Channel() string { return r.channel }

func (r *recorder) Notify(ctx context.Context, to notify.Target, m notify.Message) (notify.Receipt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return notify.Receipt{}, r.fail
	}
	r.got = append(r.got, sent{r.clk.Now().Sub(r.t0), to.Channel, to.Address, m.Event, m.Step, m.Attempt})
	return notify.Receipt{ProviderID: fmt.Sprintf("%s-%d", r.channel, len(r.got))}, nil
}

type world struct {
	t        *testing.T
	st       *sqlite.Store
	clk      *clock.Manual
	t0       time.Time
	chans    []*recorder
	eng      *escalation.Engine
	healthMu sync.Mutex
	health   map[string]bool // channel → worked last time
	cancel   context.CancelFunc
	done     chan struct{}
	gate     chan struct{} // if set, StartEscalation waits for it to close
}

// gatedStore holds StartEscalation until its gate closes (or the call's
// context ends), to show what happens before a ladder is stored.
type gatedStore struct {
	*sqlite.Store
	gate chan struct{}
}

func (g gatedStore) StartEscalation(ctx context.Context, e store.Escalation) (store.Escalation, bool, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return store.Escalation{}, false, ctx.Err()
	}
	return g.Store.StartEscalation(ctx, e)
}

const ladder = `{
  "steps": [
    {"name": "supervisor", "recipients": [{"channel": "email", "address": "sue@example.org"}], "wait": "60s", "repeat": "20s"},
    {"name": "manager", "recipients": [{"channel": "sms", "address": "+447700900123"}, {"channel": "console"}], "wait": "2m"}
  ],
  "admins": [{"channel": "email", "address": "boss@example.org", "name": "Boss"}]
}`

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "v.db"), sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	w := &world{t: t, st: st, clk: clock.NewManual(t0), t0: t0}
	for _, err := range []error{
		st.CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme"}),
		st.CreatePerson(ctx, store.Person{ID: "p1", OrgID: "acme", Kind: store.PersonWorker, Name: "Ann"}),
		st.CreateDevice(ctx, store.Device{ID: "d1", OrgID: "acme", Name: "phone", PersonID: "p1"}),
		st.PutEscalationPolicy(ctx, "acme", "sos", ladder, t0),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	w.start()
	t.Cleanup(w.stop)
	return w
}

func (w *world) start() {
	w.t.Helper()
	w.chans = nil
	var ns []notify.Notifier
	for _, c := range []string{"email", "sms", "console"} {
		r := &recorder{channel: c, clk: w.clk, t0: w.t0}
		w.chans = append(w.chans, r)
		ns = append(ns, r)
	}
	w.health = map[string]bool{}
	var st escalation.Store = w.st
	if w.gate != nil {
		st = gatedStore{w.st, w.gate}
	}
	w.eng = escalation.New(st, ns, w.clk, slog.New(slog.NewTextHandler(io.Discard, nil)), escalation.Config{BaseURL: "https://vigil.example.org/",
		ChannelHealth: func(channel string, ok bool) {
			w.healthMu.Lock()
			w.health[channel] = ok
			w.healthMu.Unlock()
		}})
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

func (w *world) at(d time.Duration) { w.clk.Advance(w.t0.Add(d).Sub(w.clk.Now())) }

func (w *world) channel(name string) *recorder {
	for _, r := range w.chans {
		if r.channel == name {
			return r
		}
	}
	w.t.Fatalf("no channel %s", name)
	return nil
}

// all returns every delivery so far, in a stable order.
func (w *world) all() []string {
	var out []string
	for _, r := range w.chans {
		r.mu.Lock()
		for _, s := range r.got {
			out = append(out, s.String())
		}
		r.mu.Unlock()
	}
	slices.Sort(out)
	return out
}

// want waits until exactly these deliveries (in any order) were made.
func (w *world) want(what string, want ...string) {
	w.t.Helper()
	slices.Sort(want)
	var got []string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); runtime.Gosched() {
		got = w.all()
		if slices.Equal(got, want) {
			return
		}
		if len(got) > len(want) {
			break
		}
	}
	w.t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
}

// raise stores a raised SOS and hands it to the engine, as the safety
// engine's store does.
func (w *world) raise(id string) store.Alert {
	w.t.Helper()
	now := w.clk.Now()
	a, _, err := w.st.RaiseAlert(context.Background(), store.Alert{ID: id, OrgID: "acme", DeviceID: "d1", PersonID: "p1",
		Kind: "sos", Severity: "critical", State: store.AlertRaised, DedupKey: "sos:" + id, RaisedAt: now, CauseTime: now,
		Note: "flat 3", Position: &event.Position{Lat: 51.5, Lon: -0.12, AccuracyM: 8}, PositionTime: now},
		store.AlertEntry{At: now, Actor: "device:d1", Action: "raised", Cause: "ev:" + id})
	if err != nil {
		w.t.Fatal(err)
	}
	w.eng.Observe(a)
	return a
}

// transition stores a state change (retrying while deliveries extend
// the timeline, as the alert service does) and hands it to the engine.
func (w *world) transition(id string, state store.AlertState) {
	w.t.Helper()
	ctx := context.Background()
	for {
		a, err := w.st.GetAlert(ctx, id)
		if err != nil {
			w.t.Fatal(err)
		}
		a.State = state
		if state == store.AlertAcknowledged {
			a.AcknowledgedAt, a.AcknowledgedBy = w.clk.Now(), "user:sue"
		} else {
			a.ClosedAt, a.ClosedBy = w.clk.Now(), "device:d1"
		}
		a, err = w.st.UpdateAlert(ctx, a, store.AlertEntry{At: w.clk.Now(), Actor: "test", Action: string(state)})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			w.t.Fatal(err)
		}
		w.eng.Observe(a)
		return
	}
}

// settled waits until the stored ladder's next moment is step/attempt,
// so the next move of the clock does not overtake the engine.
func (w *world) settled(id string, step, attempt int) {
	w.t.Helper()
	eventually(w.t, fmt.Sprintf("the ladder at %d/%d", step, attempt), func() bool {
		x, err := w.st.GetEscalation(context.Background(), id)
		return err == nil && x.Step == step && x.Attempt == attempt
	})
}

func (w *world) ladderState(id string) store.Escalation {
	w.t.Helper()
	x, err := w.st.GetEscalation(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	return x
}

// TestLadder: an unacknowledged SOS walks the organisation's policy: the
// supervisor by e-mail at once and every 20 s, the manager by SMS and the
// console at 60 s, and at 180 s, when the ladder runs out, the console
// and the admin.
func TestLadder(t *testing.T) {
	w := newWorld(t)
	w.raise("a1")
	w.want("at once", "0s email:sue@example.org raised 0/0")
	w.settled("a1", 0, 1)
	w.at(19 * time.Second)
	w.at(20 * time.Second)
	w.want("a reminder at 20s", "0s email:sue@example.org raised 0/0", "20s email:sue@example.org reminder 0/1")
	w.settled("a1", 0, 2)
	w.at(40 * time.Second)
	w.settled("a1", 1, 0)
	w.at(60 * time.Second)
	w.want("step 2 at 60s",
		"0s email:sue@example.org raised 0/0", "20s email:sue@example.org reminder 0/1", "40s email:sue@example.org reminder 0/2",
		"1m0s sms:+447700900123 reminder 1/0", "1m0s console:acme reminder 1/0")
	w.settled("a1", 2, 0)
	w.at(3 * time.Minute)
	w.want("exhausted at 180s",
		"0s email:sue@example.org raised 0/0", "20s email:sue@example.org reminder 0/1", "40s email:sue@example.org reminder 0/2",
		"1m0s sms:+447700900123 reminder 1/0", "1m0s console:acme reminder 1/0",
		"3m0s console:acme exhausted 2/0", "3m0s email:boss@example.org exhausted 2/0")
	eventually(t, "the ladder marked exhausted", func() bool {
		return w.ladderState("a1").State == store.EscalationExhausted
	})
	w.at(time.Hour)
	if n := len(w.all()); n != 7 {
		t.Errorf("%d deliveries after the ladder ran out, want 7: %q", n, w.all())
	}

	// Every delivery is on the alert's timeline, addresses masked.
	a, err := w.st.GetAlert(context.Background(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	var notified []string
	for _, e := range a.Timeline {
		if e.Action == "notified" {
			notified = append(notified, e.Detail)
		}
	}
	if len(notified) != 7 || !strings.Contains(strings.Join(notified, "\n"), "step 1 (supervisor) · email s…@example.org · raised") ||
		strings.Contains(strings.Join(notified, "\n"), "sue@") || strings.Contains(strings.Join(notified, "\n"), "+447700900123") {
		t.Errorf("timeline:\n%s", strings.Join(notified, "\n"))
	}
}

// TestAcknowledgeStops: the first acknowledgement stops the ladder and is
// shown on the console; nothing more is sent.
func TestAcknowledgeStops(t *testing.T) {
	w := newWorld(t)
	w.raise("a1")
	w.want("at once", "0s email:sue@example.org raised 0/0")
	w.settled("a1", 0, 1)
	w.at(10 * time.Second)
	w.transition("a1", store.AlertAcknowledged)
	w.want("the acknowledgement on the console", "0s email:sue@example.org raised 0/0", "10s console:acme acknowledged 0/0")
	if x := w.ladderState("a1"); x.State != store.EscalationStopped || x.StopReason != "acknowledged" {
		t.Errorf("ladder %+v, want stopped by the acknowledgement", x)
	}
	w.at(time.Hour)
	eventually(t, "no pending ladder", func() bool { return w.eng.Pending() == 0 })
	if n := len(w.all()); n != 2 {
		t.Errorf("sent after the acknowledgement: %q", w.all())
	}
}

// TestCancelTellsThoseTold: a cancel by the wearer reaches everyone a
// delivery already reached, and the console.
func TestCancelTellsThoseTold(t *testing.T) {
	w := newWorld(t)
	w.raise("a1")
	w.want("at once", "0s email:sue@example.org raised 0/0")
	w.settled("a1", 0, 1)
	w.at(20 * time.Second)
	w.want("two calls", "0s email:sue@example.org raised 0/0", "20s email:sue@example.org reminder 0/1")
	w.settled("a1", 0, 2)
	w.at(25 * time.Second)
	w.transition("a1", store.AlertCancelled)
	w.want("stand down", "0s email:sue@example.org raised 0/0", "20s email:sue@example.org reminder 0/1",
		"25s email:sue@example.org cancelled 0/0", "25s console:acme cancelled 0/0")
}

// TestRestartResumes: the server stops after the 20 s reminder; a crash
// after the 40 s reminder was sent but before the ladder moved on is
// simulated by recording that delivery as sent. Starting again at 70 s
// sends nothing twice (not the 40 s reminder) and skips nothing due (the
// 60 s step goes at once); the ladder then runs on.
func TestRestartResumes(t *testing.T) {
	w := newWorld(t)
	w.raise("a1")
	w.want("at once", "0s email:sue@example.org raised 0/0")
	w.settled("a1", 0, 1)
	w.at(20 * time.Second)
	w.want("two calls", "0s email:sue@example.org raised 0/0", "20s email:sue@example.org reminder 0/1")
	w.settled("a1", 0, 2)
	w.stop()

	ctx := context.Background()
	d, _, err := w.st.BeginDelivery(ctx, store.Delivery{Key: "a1/reminder/0/2/email/" + hash8("sue@example.org"), AlertID: "a1", OrgID: "acme",
		Event: "reminder", Step: 0, Attempt: 2, Channel: "email", Target: "sue@example.org", CreatedAt: w.t0.Add(40 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	d.Status = store.DeliverySent
	if err := w.st.FinishDelivery(ctx, d); err != nil {
		t.Fatal(err)
	}

	w.at(70 * time.Second)
	w.start()
	w.want("after the restart", "1m10s sms:+447700900123 reminder 1/0", "1m10s console:acme reminder 1/0")
	w.settled("a1", 2, 0)
	w.at(3 * time.Minute)
	w.want("then exhausted", "1m10s sms:+447700900123 reminder 1/0", "1m10s console:acme reminder 1/0",
		"3m0s console:acme exhausted 2/0", "3m0s email:boss@example.org exhausted 2/0")
}

// TestStartsMissedLadder: an alert raised just before a crash, whose
// ladder was never stored, gets one when the engine loads.
func TestStartsMissedLadder(t *testing.T) {
	w := newWorld(t)
	w.stop()
	ctx := context.Background()
	now := w.clk.Now()
	if _, _, err := w.st.RaiseAlert(ctx, store.Alert{ID: "a9", OrgID: "acme", Kind: "low_battery", Severity: "warning",
		State: store.AlertRaised, DedupKey: "b", RaisedAt: now, CauseTime: now},
		store.AlertEntry{At: now, Actor: "engine", Action: "raised", Cause: "x"}); err != nil {
		t.Fatal(err)
	}
	w.at(5 * time.Second)
	w.start()
	// low_battery has no policy of its own: the built-in one, the console.
	w.want("the built-in policy", "5s console:acme raised 0/0")
}

// TestFailingChannelDegrades: an SMS provider that fails does not hold up
// the console; the failure is recorded and on the timeline.
func TestFailingChannelDegrades(t *testing.T) {
	w := newWorld(t)
	w.channel("sms").fail = errors.New("sms: provider answered 500")
	w.raise("a1")
	w.settled("a1", 0, 1)
	w.at(20 * time.Second)
	w.settled("a1", 0, 2)
	w.at(40 * time.Second)
	w.settled("a1", 1, 0)
	w.at(60 * time.Second)
	w.want("the console despite the SMS failure", "0s email:sue@example.org raised 0/0", "20s email:sue@example.org reminder 0/1",
		"40s email:sue@example.org reminder 0/2", "1m0s console:acme reminder 1/0")
	eventually(t, "SMS reported degraded, e-mail not", func() bool {
		w.healthMu.Lock()
		defer w.healthMu.Unlock()
		sms, sok := w.health["sms"]
		em, eok := w.health["email"]
		return sok && !sms && eok && em
	})
	eventually(t, "the failure on the timeline", func() bool {
		a, err := w.st.GetAlert(context.Background(), "a1")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range a.Timeline {
			if e.Action == "notify_failed" && strings.Contains(e.Detail, "sms …123") && strings.Contains(e.Detail, "provider answered 500") {
				return true
			}
		}
		return false
	})
}

const consoleFirst = `{
  "steps": [
    {"name": "supervisor", "recipients": [{"channel": "console"}, {"channel": "email", "address": "sue@example.org"}], "wait": "60s", "repeat": "20s"}
  ]
}`

// TestConsoleBeforeLadder: a new raise reaches the console at once, while
// the ladder is still being stored; the console delivery is recorded
// afterwards, so the ladder's first moment does not tell the console
// again and its repeats go on as usual.
func TestConsoleBeforeLadder(t *testing.T) {
	w := newWorld(t)
	w.stop()
	if err := w.st.PutEscalationPolicy(context.Background(), "acme", "sos", consoleFirst, w.t0); err != nil {
		t.Fatal(err)
	}
	w.gate = make(chan struct{})
	w.start()
	w.raise("a1")
	w.want("the console before the ladder is stored", "0s console:acme raised 0/0")
	if _, err := w.st.GetEscalation(context.Background(), "a1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ladder stored before the console was told: %v", err)
	}
	close(w.gate)
	w.want("the first step, the console once", "0s console:acme raised 0/0", "0s email:sue@example.org raised 0/0")
	w.settled("a1", 0, 1)
	ds, err := w.st.ListDeliveries(context.Background(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, fmt.Sprintf("%s %s %d/%d %s", d.Channel, d.Event, d.Step, d.Attempt, d.Status))
	}
	slices.Sort(got)
	if want := []string{"console raised 0/0 sent", "email raised 0/0 sent"}; !slices.Equal(got, want) {
		t.Errorf("deliveries %q, want %q", got, want)
	}
	a, err := w.st.GetAlert(context.Background(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(a.Timeline, func(e store.AlertEntry) bool {
		return e.Action == "notified" && strings.HasPrefix(e.Detail, "step 1 (supervisor) · console feed · raised")
	}) {
		t.Errorf("the console delivery is not on the timeline: %+v", a.Timeline)
	}
	w.at(20 * time.Second)
	w.want("the first repeat", "0s console:acme raised 0/0", "0s email:sue@example.org raised 0/0",
		"20s console:acme reminder 0/1", "20s email:sue@example.org reminder 0/1")
}

// TestConsoleBeforeLadderCrash: the server stops after the console was
// told and before the ladder or the console's record was stored; after
// the restart the ladder starts and tells everyone, the console again (at
// least once): nothing is lost.
func TestConsoleBeforeLadderCrash(t *testing.T) {
	w := newWorld(t)
	w.stop()
	if err := w.st.PutEscalationPolicy(context.Background(), "acme", "sos", consoleFirst, w.t0); err != nil {
		t.Fatal(err)
	}
	w.gate = make(chan struct{})
	w.start()
	w.raise("a1")
	w.want("the console before the ladder is stored", "0s console:acme raised 0/0")
	w.stop()
	w.gate = nil
	w.start()
	w.want("everyone after the restart", "0s console:acme raised 0/0", "0s email:sue@example.org raised 0/0")
	w.settled("a1", 0, 1)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); runtime.Gosched() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func hash8(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

// TestMatchReply: a reply with a code finds the alert it was made for;
// a bare "ACK" finds the newest raised alert texted to that number.
func TestMatchReply(t *testing.T) {
	w := newWorld(t)
	links, err := escalation.NewLinks([]byte("0123456789abcdef0123456789abcdef"), "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	w.raise("a1")
	w.raise("a2")
	ctx := context.Background()
	const phone = "+447700900123"
	for _, id := range []string{"a1"} {
		d, _, err := w.st.BeginDelivery(ctx, store.Delivery{Key: id + "/sms", AlertID: id, OrgID: "acme", Event: "raised", Channel: "sms", Target: phone})
		if err != nil {
			t.Fatal(err)
		}
		d.Status = store.DeliverySent
		if err := w.st.FinishDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		from, code, want string
		ok               bool
	}{
		{phone, links.ReplyCode("a2", phone), "a2", true},
		{phone, strings.ToLower(links.ReplyCode("a1", phone)), "a1", true},
		{phone, "", "a1", true}, // only a1 was texted to this number
		{"+447700900999", links.ReplyCode("a2", phone), "", false},
		{"+447700900999", "", "", false},
		{phone, "ZZZZZZ", "", false},
	} {
		id, ok, err := escalation.MatchReply(ctx, w.st, links, c.from, c.code)
		if err != nil || id != c.want || ok != c.ok {
			t.Errorf("MatchReply(%s, %q) = %q %v %v, want %q %v", c.from, c.code, id, ok, err, c.want, c.ok)
		}
	}
}

// TestPeopleRecipients: steps name people instead of addresses — a role,
// a team, a user, the person's emergency contacts and carers — resolved
// when the step fires. Disabled users, users of other organisations and,
// on a duress alert, the wearer's own account are left out.
func TestPeopleRecipients(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	st := w.st
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.CreateOrg(ctx, store.Org{ID: "other", Name: "Other"}))
	for _, u := range []struct {
		id, email, org string
		role           store.Role
		person         string
		disabled       bool
	}{
		{"u-sup", "sup@example.org", "acme", store.RoleSupervisor, "", false},
		{"u-sup-off", "gone@example.org", "acme", store.RoleSupervisor, "", true},
		{"u-ann", "ann@example.org", "acme", store.RoleSupervisor, "p1", false}, // the wearer herself
		{"u-other", "other@example.org", "other", store.RoleSupervisor, "", false},
		{"u-carer", "carer@example.org", "acme", store.RoleCarer, "", false},
		{"u-mgr", "mgr@example.org", "acme", store.RoleAdmin, "", false},
	} {
		must(st.CreateUser(ctx, store.User{ID: u.id, Email: u.email, Name: u.id, PersonID: u.person, CreatedAt: w.t0}))
		must(st.PutMembership(ctx, store.Membership{UserID: u.id, OrgID: u.org, Role: u.role, CreatedAt: w.t0}))
		if u.disabled {
			must(st.SetUserDisabled(ctx, u.id, w.t0))
		}
	}
	must(st.LinkCarer(ctx, "u-carer", "p1"))
	must(st.CreateTeam(ctx, store.Team{ID: "night", OrgID: "acme", Name: "Night", CreatedAt: w.t0}))
	must(st.AddTeamMember(ctx, "night", "u-mgr"))
	must(st.PutContact(ctx, store.Contact{ID: "c1", OrgID: "acme", PersonID: "p1", Name: "Sis", Phone: "+447700900555", Email: "sis@example.org", CreatedAt: w.t0}))
	policy := `{"steps": [
	  {"recipients": [{"channel": "email", "role": "supervisor"}, {"channel": "sms", "contacts": true}], "wait": "60s"},
	  {"recipients": [{"channel": "email", "team": "night"}, {"channel": "email", "carers": true}, {"channel": "email", "user": "u-other"}], "wait": "60s"}
	]}`
	if _, err := escalation.ParsePolicy([]byte(policy)); err != nil {
		t.Fatal(err)
	}
	must(st.PutEscalationPolicy(ctx, "acme", "sos", policy, w.t0))

	w.raise("a1")
	w.want("step 1: supervisors and contacts", "0s email:ann@example.org raised 0/0", "0s email:sup@example.org raised 0/0",
		"0s sms:+447700900555 raised 0/0")
	w.settled("a1", 1, 0)
	w.at(time.Minute)
	w.want("step 2: the team and the carer, not another organisation's user",
		"0s email:ann@example.org raised 0/0", "0s email:sup@example.org raised 0/0", "0s sms:+447700900555 raised 0/0",
		"1m0s email:mgr@example.org reminder 1/0", "1m0s email:carer@example.org reminder 1/0")
}

func TestPeopleRecipientsSkipTheWearerOnDuress(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for _, err := range []error{
		w.st.CreateUser(ctx, store.User{ID: "u-ann", Email: "ann@example.org", Name: "Ann", PersonID: "p1", CreatedAt: w.t0}),
		w.st.PutMembership(ctx, store.Membership{UserID: "u-ann", OrgID: "acme", Role: store.RoleSupervisor, CreatedAt: w.t0}),
		w.st.CreateUser(ctx, store.User{ID: "u-sup", Email: "sup@example.org", Name: "Sue", CreatedAt: w.t0}),
		w.st.PutMembership(ctx, store.Membership{UserID: "u-sup", OrgID: "acme", Role: store.RoleSupervisor, CreatedAt: w.t0}),
		w.st.PutEscalationPolicy(ctx, "acme", "duress", `{"steps":[{"recipients":[{"channel":"email","role":"supervisor"}],"wait":"60s"}]}`, w.t0),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	now := w.clk.Now()
	a, _, err := w.st.RaiseAlert(ctx, store.Alert{ID: "d1", OrgID: "acme", DeviceID: "d1", PersonID: "p1", Kind: "duress", Severity: "critical",
		State: store.AlertRaised, DedupKey: "duress:d1", RaisedAt: now, CauseTime: now, Duress: true},
		store.AlertEntry{At: now, Actor: "device:d1", Action: "raised", Cause: "ev:duress"})
	if err != nil {
		t.Fatal(err)
	}
	w.eng.Observe(a)
	w.want("only the other supervisor", "0s email:sup@example.org raised 0/0")
}

func TestPeopleRecipientValidation(t *testing.T) {
	for _, c := range []struct{ policy, field string }{
		{`{"steps":[{"recipients":[{"channel":"sms","role":"supervisor"}],"wait":"60s"}]}`, "steps[0].recipients[0].channel"},
		{`{"steps":[{"recipients":[{"channel":"email","role":"boss"}],"wait":"60s"}]}`, "steps[0].recipients[0].role"},
		{`{"steps":[{"recipients":[{"channel":"email","role":"admin","team":"t"}],"wait":"60s"}]}`, "steps[0].recipients[0]"},
		{`{"steps":[{"recipients":[{"channel":"email","user":"u1","address":"a@example.org"}],"wait":"60s"}]}`, "steps[0].recipients[0].address"},
		{`{"steps":[{"recipients":[{"channel":"webhook","contacts":true}],"wait":"60s"}]}`, "steps[0].recipients[0].channel"},
	} {
		_, err := escalation.ParsePolicy([]byte(c.policy))
		var fe *escalation.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: %v, want a field error on %s", c.policy, err, c.field)
		}
	}
}
