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
// the alert's timeline. A duress alert stays raised, so its ladder runs
// like any other; the device holder is never a recipient (policies name
// supervisors, responders and admins, not the wearer).
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

	// For recipients named by user, role, team, contacts or carers.
	GetUser(ctx context.Context, id string) (store.User, error)
	ListUsers(ctx context.Context, orgID string) ([]store.User, error)
	ListMemberships(ctx context.Context, userID string) ([]store.Membership, error)
	GetTeam(ctx context.Context, id string) (store.Team, error)
	ListContacts(ctx context.Context, personID string) ([]store.Contact, error)
	ListCarerPeople(ctx context.Context, userID string) ([]string, error)
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
		kick: make(chan struct{}, 1), busy: make(map[string]bool), again: make(map[string]bool)}
}

// Observe hands the engine an alert as just stored. It never blocks: the
// safety engine calls it on its alert path.
func (e *Engine) Observe(a store.Alert) {
	e.mu.Lock()
	e.changes = append(e.changes, a)
	e.mu.Unlock()
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
			if err := e.start(ctx, a); err != nil {
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
	wg.Add(1)
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
	switch a.State {
	case store.AlertRaised:
		return e.start(ctx, a)
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

// start stores a ladder for a raised alert unless it has one, and
// schedules its next moment.
func (e *Engine) start(ctx context.Context, a store.Alert) error {
	p, err := e.policyFor(ctx, a.OrgID, a.Kind)
	if err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("start escalation of %s: %w", a.ID, err)
	}
	o := origin(a)
	x, _, err := e.st.StartEscalation(ctx, store.Escalation{AlertID: a.ID, OrgID: a.OrgID, Policy: string(b),
		StartedAt: o, NextAt: o, State: store.EscalationActive})
	if err != nil {
		return err
	}
	if x.State == store.EscalationActive {
		e.sch.Set(a.ID, x.NextAt)
	}
	return nil
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
	target := r.Address
	if r.Channel == ChannelConsole {
		target = a.OrgID
	}
	h := sha256.Sum256([]byte(target))
	key := fmt.Sprintf("%s/%s/%d/%d/%s/%s", a.ID, m.Event, m.Step, m.Attempt, r.Channel, hex.EncodeToString(h[:8]))
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
	d.Latency, d.DoneAt, d.ProviderID = time.Since(start), e.clk.Now().UTC(), rec.ProviderID
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

	// For recipients named by user, role, team, contacts or carers.
	GetUser(ctx context.Context, id string) (store.User, error)
	ListUsers(ctx context.Context, orgID string) ([]store.User, error)
	ListMemberships(ctx context.Context, userID string) ([]store.Membership, error)
	GetTeam(ctx context.Context, id string) (store.Team, error)
	ListContacts(ctx context.Context, personID string) ([]store.Contact, error)
	ListCarerPeople(ctx context.Context, userID string) ([]string, error)
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
