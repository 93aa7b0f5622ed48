// Package escalation walks every raised alert up its organisation's ladder
// until someone acknowledges it: each step's recipients are told at once
// over their channels (console feed, e-mail, SMS, webhook), told again
// while the step waits, and the next step follows; when the ladder runs
// out the organisation's console and admins are told. A cancelled alert is
// announced to everyone already told; an acknowledgement or a resolution
// stops the ladder and shows on the console.
//
// Durability: a ladder (policy snapshot, next step and repeat, next time)
// is stored when the alert is raised, and each delivery is recorded before
// it is sent and finished after, under a unique key (alert, event, step,
// repeat, channel, recipient). After a restart every ladder resumes where
// it was: a delivery already sent is not sent again, a step that fell due
// while the server was down is sent at once (repeats of one step missed
// while down collapse into one), and a delivery that was begun but not
// finished is sent again (at least once: the crash window is between the
// far end taking it and the store recording that). Every delivery lands on
// the alert's timeline. One exception: a new raise is published to the
// console feed by a fast lane that only reads the store, ahead of the
// ladder's writes, and recorded after (by the ladder's first moment in
// place of sending it); a crash in between tells the console again after
// the restart, as for any begun delivery. A duress alert stays raised,
// so its ladder runs like any other; the device holder is never a
// recipient (policies name supervisors, responders and admins, not the
// wearer).
//
// Time is an input (clock.Clock; its timers when it makes them). The
// package imports the store's types, internal/alert, internal/notify and
// internal/deadline; it must not import the channels' packages, the bus,
// the safety engine, the web API or the app: the app hands it its
// notifiers and calls Observe after every stored alert change.
package escalation

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"vigil/internal/clock"
	"vigil/internal/deadline"
	"vigil/internal/notify"
	"vigil/internal/store"
)

// Store is what escalation reads and writes.
type Store interface {
	GetAlert(ctx context.Context, id string) (store.Alert, error)
	AddAlertEntry(ctx context.Context, alertID string, e store.AlertEntry) (bool, error)
	ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
	GetPerson(ctx context.Context, id string) (store.Person, error)
	GetEscalationPolicy(ctx context.Context, orgID, kind string) (string, error)
	StartEscalation(ctx context.Context, e store.Escalation) (store.Escalation, bool, error)
	GetEscalation(ctx context.Context, alertID string) (store.Escalation, error)
	UpdateEscalation(ctx context.Context, e store.Escalation) (store.Escalation, error)
	EachActiveEscalation(ctx context.Context, fn func(store.Escalation) error) error
	BeginDelivery(ctx context.Context, d store.Delivery) (store.Delivery, bool, error)
	FinishDelivery(ctx context.Context, d store.Delivery) error
	ListDeliveries(ctx context.Context, alertID string) ([]store.Delivery, error)

	// For recipients named by user, role, team, rota, contacts or carers.
	GetUser(ctx context.Context, id string) (store.User, error)
	ListUsers(ctx context.Context, orgID string) ([]store.User, error)
	ListMemberships(ctx context.Context, userID string) ([]store.Membership, error)
	GetTeam(ctx context.Context, id string) (store.Team, error)
	ListContacts(ctx context.Context, personID string) ([]store.Contact, error)
	ListCarerPeople(ctx context.Context, userID string) ([]string, error)
	GetRota(ctx context.Context, orgID, name string) (store.Rota, error)
}

// Config tunes an Engine. The zero value works.
type Config struct {
	// BaseURL is the console's public base URL ("https://vigil.example.org");
	// links in messages are built from it and nothing else. "" sends no
	// console links.
	BaseURL string
	// SendTimeout bounds one delivery; default 15 s.
	SendTimeout time.Duration
	// MaxParallel bounds the steps being sent at once; default 64.
	MaxParallel int
	// Links, if set, puts a signed acknowledge link for each recipient
	// into e-mail, SMS and webhook messages of raised and reminder events.
	Links *Links
	// ChannelHealth, if set, hears after every delivery whether its
	// channel worked (the console shows "SMS degraded"; security row 35).
	ChannelHealth func(channel string, ok bool)
}

// Engine runs the ladders.
type Engine struct {
	st       Store
	clk      clock.Clock
	log      *slog.Logger
	cfg      Config
	channels map[string]notify.Notifier
	sch      *deadline.Scheduler[string] // alert id → its ladder's next moment

	mu      sync.Mutex
	changes []store.Alert // observed, not yet handled
	kick    chan struct{}
	busy    map[string]bool // alerts whose step is being sent
	again   map[string]bool // alerts that fell due again while busy

	// The console fast lane: a new raise is published to the console
	// feed from here, ahead of the ladder's store writes.
	fresh     []store.Alert     // raised, not yet seen by the fast lane
	freshKick chan struct{}     // wakes the fast lane
	early     map[string]*early // alert id → what the fast lane did
	told      map[string]*early // alert id → console told, not yet recorded
}

// early is what the console fast lane did for a raised alert. The change
// loop waits for done before it starts the alert's ladder; a console
// delivery made is then held in Engine.told until the ladder's first
// moment records it in place of sending it (or, if the alert changes
// first, the change loop records it).
type early struct {
	done    chan struct{}
	policy  *Policy // the organisation's policy, as the fast lane read it
	sent    bool    // the console was told (r, m, at, rec, err, latency)
	r       Recipient
	m       notify.Message
	at      time.Time
	rec     notify.Receipt
	err     error
	latency time.Duration
}

// New returns an engine sending through notifiers (one per channel).
func New(st Store, notifiers []notify.Notifier, clk clock.Clock, log *slog.Logger, cfg Config) *Engine {
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 15 * time.Second
	}
	if cfg.MaxParallel <= 0 {
		cfg.MaxParallel = 64
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	ch := make(map[string]notify.Notifier, len(notifiers))
	for _, n := range notifiers {
		ch[n.Channel()] = n
	}
	return &Engine{st: st, clk: clk, log: log, cfg: cfg, channels: ch,
		sch:  deadline.New[string](deadline.Config{Clock: clock.TimersOf(clk)}),
		kick: make(chan struct{}, 1), busy: make(map[string]bool), again: make(map[string]bool),
		freshKick: make(chan struct{}, 1), early: make(map[string]*early), told: make(map[string]*early)}
}

// Observe hands the engine an alert as just stored. It never blocks: the
// safety engine calls it on its alert path.
func (e *Engine) Observe(a store.Alert) {
	fast := false
	e.mu.Lock()
	e.changes = append(e.changes, a)
	if a.State == store.AlertRaised && e.early[a.ID] == nil {
		e.early[a.ID] = &early{done: make(chan struct{})}
		e.fresh = append(e.fresh, a)
		fast = true
	}
	e.mu.Unlock()
	if fast {
		select {
		case e.freshKick <- struct{}{}:
		default:
		}
	}
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Load resumes every active ladder and starts one for every raised alert
// that has none (the server stopped between raising and starting it).
// Call it before Run.
func (e *Engine) Load(ctx context.Context) error {
	var items []deadline.Item[string]
	err := e.st.EachActiveEscalation(ctx, func(x store.Escalation) error {
		items = append(items, deadline.Item[string]{Key: x.AlertID, At: x.NextAt})
		return nil
	})
	if err != nil {
		return fmt.Errorf("load escalations: %w", err)
	}
	e.sch.Load(items)
	for before := (time.Time{}); ; {
		page, err := e.st.ListAlerts(ctx, store.AlertFilter{States: []store.AlertState{store.AlertRaised}, RaisedBefore: before, Limit: 1000})
		if err != nil {
			return fmt.Errorf("load escalations: %w", err)
		}
		for _, a := range page {
			if err := e.start(ctx, a, nil); err != nil {
				return fmt.Errorf("load escalations: %w", err)
			}
		}
		if len(page) < 1000 {
			break
		}
		before = page[len(page)-1].RaisedAt
	}
	return nil
}

// Pending returns how many ladders wait for their next moment (a metric).
func (e *Engine) Pending() int { return e.sch.Len() }

// Run handles observed changes and fires ladders until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, e.cfg.MaxParallel)
	wg.Add(2)
	go func() { // the console fast lane: reads and an in-memory publish only
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-e.freshKick:
			}
			e.mu.Lock()
			batch := e.fresh
			e.fresh = nil
			x := make([]*early, len(batch))
			for i, a := range batch {
				x[i] = e.early[a.ID]
			}
			e.mu.Unlock()
			for i, a := range batch {
				e.publishEarly(ctx, a, x[i])
				close(x[i].done)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-e.kick:
			}
			e.mu.Lock()
			batch := e.changes
			e.changes = nil
			e.mu.Unlock()
			for _, a := range batch {
				if err := e.change(ctx, a); err != nil && ctx.Err() == nil {
					// Not lost: Load starts or stops it after a restart,
					// and the ladder's next moment re-checks the alert.
					e.log.Error("escalation change not applied", "alert_id", a.ID, "state", string(a.State), "err", err)
				}
			}
		}
	}()
	e.sch.Run(ctx, func(due []deadline.Item[string]) {
		for _, it := range due {
			id := it.Key
			e.mu.Lock()
			if e.busy[id] {
				e.again[id] = true
				e.mu.Unlock()
				continue
			}
			e.busy[id] = true
			e.mu.Unlock()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				err := e.fire(ctx, id)
				e.mu.Lock()
				delete(e.busy, id)
				rerun := e.again[id]
				delete(e.again, id)
				e.mu.Unlock()
				if err != nil && ctx.Err() == nil {
					e.log.Error("escalation step failed; retrying", "alert_id", id, "err", err)
					e.sch.Set(id, e.clk.Now().Add(5*time.Second))
				} else if rerun {
					e.sch.Set(id, e.clk.Now())
				}
			}()
		}
	})
}

// change reacts to an alert as stored.
func (e *Engine) change(ctx context.Context, a store.Alert) error {
	if a.State != store.AlertRaised {
		e.recordTold(ctx, a)
	}
	switch a.State {
	case store.AlertRaised:
		x, err := e.takeEarly(ctx, a.ID)
		if err != nil {
			return err
		}
		return e.start(ctx, a, x)
	case store.AlertAcknowledged:
		if err := e.stop(ctx, a.ID, "acknowledged"); err != nil {
			return err
		}
		e.announce(ctx, a, notify.EventAcked, consoleOnly)
	case store.AlertResolved:
		if err := e.stop(ctx, a.ID, "resolved"); err != nil {
			return err
		}
		e.announce(ctx, a, notify.EventResolved, consoleOnly)
	case store.AlertCancelled:
		if err := e.stop(ctx, a.ID, "cancelled"); err != nil {
			return err
		}
		e.announce(ctx, a, notify.EventCancelled, everyoneTold)
	}
	return nil
}

// origin is when an alert's ladder starts: when it was raised, or when
// its pre-alert ended.
func origin(a store.Alert) time.Time {
	if a.PendingUntil.After(a.RaisedAt) {
		return a.PendingUntil
	}
	return a.RaisedAt
}

// start stores a ladder for a raised alert unless it has one and
// schedules its next moment. A console delivery the fast lane made (ea)
// is handed to that first moment to record, or recorded here if there
// will be no first moment.
func (e *Engine) start(ctx context.Context, a store.Alert, ea *early) error {
	x, err := e.startLadder(ctx, a, ea)
	if ea != nil && ea.sent {
		if err != nil || x.State != store.EscalationActive {
			// No first moment will record it: record it now (Load starts
			// a missing ladder after a restart, and its first moment
			// must find the console told).
			e.finish(ctx, a, ea.r, ea.m, stepName(0, ea.policy.Steps[0]), store.Delivery{}, ea.at, ea.rec, ea.err, ea.latency)
		} else {
			// The first moment records it instead of sending it; held
			// before that moment is scheduled.
			e.mu.Lock()
			e.told[a.ID] = ea
			e.mu.Unlock()
		}
	}
	if err != nil {
		return err
	}
	if x.State == store.EscalationActive {
		e.sch.Set(a.ID, x.NextAt)
	}
	return nil
}

// takeTold returns (and forgets) the console delivery the fast lane made
// for an alert and nobody recorded yet, if any.
func (e *Engine) takeTold(alertID string) *early {
	e.mu.Lock()
	defer e.mu.Unlock()
	ea := e.told[alertID]
	delete(e.told, alertID)
	return ea
}

// recordTold records the fast lane's console delivery for a, if nobody
// did yet: the alert changed before its ladder's first moment ran.
func (e *Engine) recordTold(ctx context.Context, a store.Alert) {
	if ea := e.takeTold(a.ID); ea != nil {
		e.finish(ctx, a, ea.r, ea.m, stepName(0, ea.policy.Steps[0]), store.Delivery{}, ea.at, ea.rec, ea.err, ea.latency)
	}
}

// startLadder stores a's ladder unless it has one and returns it.
func (e *Engine) startLadder(ctx context.Context, a store.Alert, ea *early) (store.Escalation, error) {
	var p Policy
	if ea != nil && ea.policy != nil {
		p = *ea.policy
	} else {
		var err error
		if p, err = e.policyFor(ctx, a.OrgID, a.Kind); err != nil {
			return store.Escalation{}, err
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return store.Escalation{}, fmt.Errorf("start escalation of %s: %w", a.ID, err)
	}
	o := origin(a)
	x, _, err := e.st.StartEscalation(ctx, store.Escalation{AlertID: a.ID, OrgID: a.OrgID, Policy: string(b),
		StartedAt: o, NextAt: o, State: store.EscalationActive})
	return x, err
}

// takeEarly waits for the fast lane to be done with a raised alert and
// returns what it did (nil if it never saw the alert).
func (e *Engine) takeEarly(ctx context.Context, alertID string) (*early, error) {
	e.mu.Lock()
	x := e.early[alertID]
	e.mu.Unlock()
	if x == nil {
		return nil, nil
	}
	select {
	case <-x.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	e.mu.Lock()
	delete(e.early, alertID)
	e.mu.Unlock()
	return x, nil
}

// publishEarly tells the console of a new raise at once, ahead of the
// ladder's store writes, when the ladder's first step names the console
// and is due now. It only reads the store: the alert is durable (Observe
// comes after its raise committed), and the console delivery is recorded
// afterwards, by the ladder's first moment in place of sending it (see
// start). A crash before that record loses nothing: the restart starts or
// resumes the ladder, whose first moment finds no record and tells the
// console again (at least once, as for any delivery).
func (e *Engine) publishEarly(ctx context.Context, a store.Alert, x *early) {
	if origin(a).After(e.clk.Now()) {
		return // a pre-alert: the ladder starts later
	}
	if _, err := e.st.GetEscalation(ctx, a.ID); !errors.Is(err, store.ErrNotFound) {
		return // a ladder exists already (or cannot tell): its moments decide
	}
	p, err := e.policyFor(ctx, a.OrgID, a.Kind)
	if err != nil {
		return
	}
	x.policy = &p
	if len(p.Steps) == 0 {
		return
	}
	n, ok := e.channels[ChannelConsole]
	if !ok {
		return
	}
	for _, r := range p.Steps[0].Recipients {
		if r.Channel != ChannelConsole || r.selector() {
			continue
		}
		x.r, x.m, x.at = r, e.message(ctx, a, notify.EventRaised, Point{At: origin(a)}), e.clk.Now().UTC()
		start := time.Now()
		sctx, cancel := context.WithTimeout(ctx, e.cfg.SendTimeout)
		x.rec, x.err = n.Notify(sctx, notify.Target{Channel: ChannelConsole, Address: a.OrgID, Name: r.Name}, x.m)
		cancel()
		x.latency, x.sent = time.Since(start), ctx.Err() == nil
		return
	}
}

// policyFor returns the organisation's policy for kind, its default
// policy, or the built-in one.
func (e *Engine) policyFor(ctx context.Context, orgID, kind string) (Policy, error) {
	for _, k := range []string{kind, DefaultKind} {
		s, err := e.st.GetEscalationPolicy(ctx, orgID, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return Policy{}, err
		}
		p, err := ParsePolicy([]byte(s))
		if err != nil {
			e.log.Error("stored escalation policy is invalid; using the built-in one", "org_id", orgID, "kind", k, "err", err)
			break
		}
		return p, nil
	}
	return DefaultPolicy(kind), nil
}

// stop ends an active ladder.
func (e *Engine) stop(ctx context.Context, alertID, reason string) error {
	e.sch.Cancel(alertID)
	for {
		x, err := e.st.GetEscalation(ctx, alertID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // a pre-alert cancelled before it was raised
		}
		if err != nil {
			return err
		}
		if x.State != store.EscalationActive {
			return nil
		}
		x.State, x.StopReason = store.EscalationStopped, reason
		_, err = e.st.UpdateEscalation(ctx, x)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return err
	}
}

// fire sends an alert's ladder's due moment and schedules the next.
func (e *Engine) fire(ctx context.Context, alertID string) error {
	x, err := e.st.GetEscalation(ctx, alertID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if x.State != store.EscalationActive {
		return nil
	}
	now := e.clk.Now()
	if x.NextAt.After(now) { // moved meanwhile
		e.sch.Set(alertID, x.NextAt)
		return nil
	}
	a, err := e.st.GetAlert(ctx, alertID)
	if err != nil {
		return err
	}
	if a.State != store.AlertRaised {
		// Acknowledged, resolved or cancelled while the change was on its
		// way (or before a restart): the ladder ends.
		return e.stop(ctx, alertID, string(a.State))
	}
	p, err := ParsePolicy([]byte(x.Policy))
	if err != nil {
		e.log.Error("escalation snapshot is invalid; using the built-in policy", "alert_id", alertID, "err", err)
		p = DefaultPolicy(a.Kind)
	}
	pt := Point{Step: x.Step, Attempt: x.Attempt, At: x.NextAt}
	if p.Exhausted(pt) {
		// The ladder ran out: the console and every admin, always.
		rs := append([]Recipient{{Channel: ChannelConsole}}, p.Admins...)
		if def, err := e.policyFor(ctx, a.OrgID, DefaultKind); err == nil && a.Kind != DefaultKind {
			rs = append(rs, def.Admins...)
		}
		e.deliverAll(ctx, a, dedupe(e.resolve(ctx, a, rs)), notify.EventExhausted, pt, "exhausted")
		x.State, x.StopReason = store.EscalationExhausted, "no acknowledgement"
		_, err := e.st.UpdateEscalation(ctx, x)
		if errors.Is(err, store.ErrConflict) {
			return nil // stopped meanwhile
		}
		return err
	}
	step := p.Steps[pt.Step]
	ev := notify.EventReminder
	if pt.Step == 0 && pt.Attempt == 0 {
		ev = notify.EventRaised
	}
	e.deliverAll(ctx, a, dedupe(e.resolve(ctx, a, step.Recipients)), ev, pt, stepName(pt.Step, step))
	next := p.Next(pt, x.StartedAt, e.clk.Now())
	x.Step, x.Attempt, x.NextAt = next.Step, next.Attempt, next.At
	if _, err := e.st.UpdateEscalation(ctx, x); errors.Is(err, store.ErrConflict) {
		return nil // stopped meanwhile
	} else if err != nil {
		return err
	}
	e.sch.Set(alertID, next.At)
	return nil
}

func stepName(i int, s Step) string {
	if s.Name != "" {
		return fmt.Sprintf("step %d (%s)", i+1, s.Name)
	}
	return fmt.Sprintf("step %d", i+1)
}

func dedupe(rs []Recipient) []Recipient {
	seen := make(map[Recipient]bool, len(rs))
	out := rs[:0:0]
	for _, r := range rs {
		k := Recipient{Channel: r.Channel, Address: r.Address}
		if !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out
}

// Whom announce tells.
const (
	consoleOnly  = false
	everyoneTold = true
)

// announce tells the console (and, for everyoneTold, every recipient a
// delivery about the alert already reached) of a change.
func (e *Engine) announce(ctx context.Context, a store.Alert, ev notify.Event, all bool) {
	rs := []Recipient{{Channel: ChannelConsole}}
	if all {
		ds, err := e.st.ListDeliveries(ctx, a.ID)
		if err != nil {
			e.log.Error("escalation: deliveries not listed", "alert_id", a.ID, "err", err)
		}
		for _, d := range ds {
			if d.Status == store.DeliverySent && d.Channel != ChannelConsole {
				rs = append(rs, Recipient{Channel: d.Channel, Address: d.Target})
			}
		}
	}
	e.deliverAll(ctx, a, dedupe(rs), ev, Point{}, string(ev))
}

// deliverAll sends one message to each recipient at once and waits for
// all of them (each bounded by SendTimeout).
func (e *Engine) deliverAll(ctx context.Context, a store.Alert, rs []Recipient, ev notify.Event, pt Point, what string) {
	m := e.message(ctx, a, ev, pt)
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.deliver(ctx, a, r, m, what)
		}()
	}
	wg.Wait()
}

// deliver sends m to r once: recorded before, finished after, and put on
// the alert's timeline.
func (e *Engine) deliver(ctx context.Context, a store.Alert, r Recipient, m notify.Message, what string) {
	if r.Channel == ChannelConsole && m.Event == notify.EventRaised && m.Step == 0 && m.Attempt == 0 {
		if ea := e.takeTold(a.ID); ea != nil {
			// The fast lane told the console already: record it, once.
			e.finish(ctx, a, r, m, what, store.Delivery{}, ea.at, ea.rec, ea.err, ea.latency)
			return
		}
	}
	target := deliveryTarget(a, r)
	key := deliveryKey(a, r, m)
	d, created, err := e.st.BeginDelivery(ctx, store.Delivery{Key: key, AlertID: a.ID, OrgID: a.OrgID, Event: string(m.Event),
		Step: m.Step, Attempt: m.Attempt, Channel: r.Channel, Target: target, CreatedAt: e.clk.Now().UTC()})
	if err != nil {
		e.log.Error("escalation: delivery not recorded; sending anyway", "alert_id", a.ID, "channel", r.Channel, "err", err)
		d = store.Delivery{Key: key, AlertID: a.ID}
	} else if !created && d.Status != store.DeliveryPending {
		return // sent (or refused) before a restart: never twice
	}
	if e.cfg.Links != nil && r.Channel != ChannelConsole && (m.Event == notify.EventRaised || m.Event == notify.EventReminder) {
		m.AckURL = e.cfg.Links.URL(e.cfg.Links.Token(a.ID, target, e.clk.Now()))
	}
	start := time.Now()
	var rec notify.Receipt
	n, ok := e.channels[r.Channel]
	if !ok {
		err = fmt.Errorf("channel %s is not configured", r.Channel)
	} else {
		sctx, cancel := context.WithTimeout(ctx, e.cfg.SendTimeout)
		rec, err = n.Notify(sctx, notify.Target{Channel: r.Channel, Address: target, Name: r.Name}, m)
		cancel()
	}
	if ctx.Err() != nil {
		return // shutting down: left pending, sent again after the restart
	}
	e.finish(ctx, a, r, m, what, d, time.Time{}, rec, err, time.Since(start))
}

// deliveryTarget is the address a delivery goes to: the organisation for
// the console.
func deliveryTarget(a store.Alert, r Recipient) string {
	if r.Channel == ChannelConsole {
		return a.OrgID
	}
	return r.Address
}

// deliveryKey is a delivery's unique key: alert, event, step, repeat,
// channel, recipient.
func deliveryKey(a store.Alert, r Recipient, m notify.Message) string {
	h := sha256.Sum256([]byte(deliveryTarget(a, r)))
	return fmt.Sprintf("%s/%s/%d/%d/%s/%s", a.ID, m.Event, m.Step, m.Attempt, r.Channel, hex.EncodeToString(h[:8]))
}

// finish records a delivery's outcome and puts it on the alert's
// timeline. d is the delivery as begun; a zero d (the console fast lane,
// which sent before recording) is begun here first, at begun, unless a
// record of it exists already.
func (e *Engine) finish(ctx context.Context, a store.Alert, r Recipient, m notify.Message, what string, d store.Delivery,
	begun time.Time, rec notify.Receipt, err error, latency time.Duration) {
	key := deliveryKey(a, r, m)
	if d.Key == "" {
		got, created, berr := e.st.BeginDelivery(ctx, store.Delivery{Key: key, AlertID: a.ID, OrgID: a.OrgID, Event: string(m.Event),
			Step: m.Step, Attempt: m.Attempt, Channel: r.Channel, Target: deliveryTarget(a, r), CreatedAt: begun})
		if berr != nil {
			e.log.Error("escalation: delivery not recorded", "alert_id", a.ID, "channel", r.Channel, "err", berr)
			got = store.Delivery{Key: key, AlertID: a.ID}
		} else if !created && got.Status != store.DeliveryPending {
			return // recorded already
		}
		d = got
	}
	d.Latency, d.DoneAt, d.ProviderID = latency, e.clk.Now().UTC(), rec.ProviderID
	d.Status, d.Error = store.DeliverySent, ""
	action := "notified"
	if err != nil {
		d.Status, d.Error, action = store.DeliveryFailed, errorClass(err), "notify_failed"
		e.log.Warn("escalation delivery failed", "alert_id", a.ID, "channel", r.Channel, "err", err)
	}
	if e.cfg.ChannelHealth != nil {
		e.cfg.ChannelHealth(r.Channel, err == nil)
	}
	if err := e.st.FinishDelivery(ctx, d); err != nil {
		e.log.Error("escalation: delivery outcome not recorded", "alert_id", a.ID, "channel", r.Channel, "err", err)
	}
	detail := fmt.Sprintf("%s · %s %s · %s", what, r.Channel, label(r), m.Event)
	if err != nil {
		detail += " · " + d.Error
	} else {
		detail += fmt.Sprintf(" · %d ms", d.Latency.Milliseconds())
	}
	if _, err := e.st.AddAlertEntry(ctx, a.ID, store.AlertEntry{At: d.DoneAt, Actor: "escalation", Action: action,
		Detail: detail, Cause: "delivery:" + key}); err != nil {
		e.log.Error("escalation: timeline entry not added", "alert_id", a.ID, "err", err)
	}
}

// label names a recipient on the timeline: their name, or a masked
// address.
func label(r Recipient) string {
	if r.Name != "" {
		return r.Name
	}
	switch r.Channel {
	case ChannelConsole:
		return "feed"
	case ChannelEmail:
		if i := strings.IndexByte(r.Address, '@'); i > 0 {
			return r.Address[:1] + "…" + r.Address[i:]
		}
	case ChannelSMS:
		if len(r.Address) > 3 {
			return "…" + r.Address[len(r.Address)-3:]
		}
	case ChannelWebhook:
		if u, err := url.Parse(r.Address); err == nil {
			return u.Host
		}
	}
	return "recipient"
}

// errorClass is what the store and the timeline keep of a failure. The
// channels promise their errors carry no secret and no message content.
func errorClass(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case notify.IsPermanent(err):
		return truncate("refused: "+err.Error(), 200)
	}
	return truncate("failed: "+err.Error(), 200)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// message builds what every channel sends about a.
func (e *Engine) message(ctx context.Context, a store.Alert, ev notify.Event, pt Point) notify.Message {
	m := notify.Message{Event: ev, AlertID: a.ID, OrgID: a.OrgID, Kind: a.Kind, Severity: a.Severity, State: string(a.State),
		RaisedAt: a.RaisedAt, Step: pt.Step, Attempt: pt.Attempt, Note: a.Note, Detail: a.Detail, AckedBy: a.AcknowledgedBy}
	if a.PersonID != "" {
		if p, err := e.st.GetPerson(ctx, a.PersonID); err == nil {
			m.PersonName = p.Name
		}
	}
	if p := a.Position; p != nil {
		m.Position = &notify.Position{Lat: p.Lat, Lon: p.Lon, AccuracyM: p.AccuracyM, At: a.PositionTime}
		m.MapURL = fmt.Sprintf("https://www.openstreetmap.org/?mlat=%.6f&mlon=%.6f#map=17/%.6f/%.6f", p.Lat, p.Lon, p.Lat, p.Lon)
	}
	if e.cfg.BaseURL != "" {
		m.ConsoleURL = e.cfg.BaseURL + "/alerts/" + url.PathEscape(a.ID)
	}
	return m
}

// ReplyStore is what matching an SMS reply reads.
type ReplyStore interface {
	ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
	ListDeliveries(ctx context.Context, alertID string) ([]store.Delivery, error)

	// For recipients named by user, role, team, rota, contacts or carers.
	GetUser(ctx context.Context, id string) (store.User, error)
	ListUsers(ctx context.Context, orgID string) ([]store.User, error)
	ListMemberships(ctx context.Context, userID string) ([]store.Membership, error)
	GetTeam(ctx context.Context, id string) (store.Team, error)
	ListContacts(ctx context.Context, personID string) ([]store.Contact, error)
	ListCarerPeople(ctx context.Context, userID string) ([]string, error)
	GetRota(ctx context.Context, orgID, name string) (store.Rota, error)
}

// MatchReply finds the raised alert an SMS reply from a number
// acknowledges: the one whose reply code for that number is code, or,
// with no code, the newest raised alert that was texted to that number.
// ok is false when none matches.
func MatchReply(ctx context.Context, st ReplyStore, links *Links, from, code string) (alertID string, ok bool, err error) {
	open, err := st.ListAlerts(ctx, store.AlertFilter{States: []store.AlertState{store.AlertRaised}, Limit: 1000})
	if err != nil {
		return "", false, fmt.Errorf("match sms reply: %w", err)
	}
	code = strings.ToUpper(code)
	for _, a := range open { // newest first
		if code != "" {
			if hmac.Equal([]byte(links.ReplyCode(a.ID, from)), []byte(code)) {
				return a.ID, true, nil
			}
			continue
		}
		ds, err := st.ListDeliveries(ctx, a.ID)
		if err != nil {
			return "", false, fmt.Errorf("match sms reply: %w", err)
		}
		for _, d := range ds {
			if d.Channel == ChannelSMS && d.Target == from && d.Status == store.DeliverySent {
				return a.ID, true, nil
			}
		}
	}
	return "", false, nil
}
