package safety

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"vigil/internal/alert"
	"vigil/internal/deadline"
	"vigil/internal/store"
)

// Errors the API maps to 4xx.
var (
	// ErrInvalid wraps every refused request; the message names the field.
	ErrInvalid = errors.New("safety: invalid request")
	// ErrActiveSession: the person already has an active session.
	ErrActiveSession = errors.New("safety: the person already has an active session")
	// ErrSessionEnded: the session is no longer active.
	ErrSessionEnded = errors.New("safety: the session has ended")
)

// FieldError is a refused request naming the field at fault; it matches
// ErrInvalid with errors.Is.
type FieldError struct{ Field, Msg string }

func (e *FieldError) Error() string        { return "safety: invalid request: " + e.Field + ": " + e.Msg }
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, msg string) error { return &FieldError{Field: field, Msg: msg} }

// Limits on session requests.
const (
	MaxSessionLength = 24 * time.Hour
	MinCheckin       = time.Minute
	MaxGrace         = 2 * time.Hour
	MaxNoteBytes     = 2000
)

// StartRequest starts a session. Either Preset or Duration (with the
// optional CheckinInterval and Grace) says how long it runs.
type StartRequest struct {
	OrgID, PersonID string
	DeviceID        string // optional: the device that started it
	Preset          string
	Duration        time.Duration
	CheckinInterval time.Duration
	Grace           time.Duration
	Note            string
	By              string // "device:<id>", "api", "user:<id>"
}

// StartResult is a started session and any warnings for the worker and
// supervisor (e.g. a low battery).
type StartResult struct {
	Session  store.Session
	Warnings []string
}

// Presets returns an organisation's session presets, or the defaults.
func (e *Engine) Presets(ctx context.Context, orgID string) ([]Preset, error) {
	ps, err := e.st.ListSessionPresets(ctx, orgID)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return DefaultPresets(), nil
	}
	out := make([]Preset, len(ps))
	for i, p := range ps {
		out[i] = Preset{Name: p.Name, Duration: p.Duration, CheckinInterval: p.CheckinInterval, Grace: p.Grace}
	}
	return out, nil
}

// StartSession starts a timed session for a worker.
func (e *Engine) StartSession(ctx context.Context, r StartRequest) (StartResult, error) {
	if r.PersonID == "" {
		return StartResult{}, invalid("person_id", "required")
	}
	p, err := e.st.GetPerson(ctx, r.PersonID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return StartResult{}, invalid("person_id", "no such person")
		}
		return StartResult{}, err
	}
	if r.OrgID != "" && p.OrgID != r.OrgID {
		return StartResult{}, invalid("person_id", "no such person")
	}
	if r.Preset != "" {
		presets, err := e.Presets(ctx, p.OrgID)
		if err != nil {
			return StartResult{}, err
		}
		found := false
		for _, ps := range presets {
			if ps.Name == r.Preset {
				found = true
				if r.Duration == 0 {
					r.Duration = ps.Duration
				}
				if r.CheckinInterval == 0 {
					r.CheckinInterval = ps.CheckinInterval
				}
				if r.Grace == 0 {
					r.Grace = ps.Grace
				}
			}
		}
		if !found {
			return StartResult{}, invalid("preset", "no such preset")
		}
	}
	switch {
	case r.Duration <= 0:
		return StartResult{}, invalid("duration", "required (or a preset) and positive")
	case r.Duration > MaxSessionLength:
		return StartResult{}, invalid("duration", "at most 24h")
	case r.CheckinInterval < 0 || (r.CheckinInterval > 0 && r.CheckinInterval < MinCheckin):
		return StartResult{}, invalid("checkin_interval", "0 (none) or at least 1m")
	case r.Grace < 0 || r.Grace > MaxGrace:
		return StartResult{}, invalid("grace", "between 0 and 2h")
	case len(r.Note) > MaxNoteBytes || !utf8.ValidString(r.Note):
		return StartResult{}, invalid("note", "at most 2000 bytes of UTF-8")
	}
	if r.DeviceID != "" {
		d, err := e.st.GetDevice(ctx, r.DeviceID)
		if err != nil || d.PersonID != p.ID {
			return StartResult{}, invalid("device_id", "not a device of this person")
		}
	}
	now := e.clk.Now().UTC()
	s := store.Session{ID: NewID("s"), OrgID: p.OrgID, PersonID: p.ID, DeviceID: r.DeviceID, Preset: r.Preset,
		Note: strings.TrimSpace(r.Note), StartedAt: now, ExpectedEnd: now.Add(r.Duration),
		CheckinInterval: r.CheckinInterval, Grace: r.Grace, LastCheckin: now}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.st.CreateSession(ctx, s); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return StartResult{}, ErrActiveSession
		}
		return StartResult{}, err
	}
	s.State, s.Version = store.SessionActive, 1
	si := e.putSession(s)
	e.schedule(si)
	res := StartResult{Session: s}
	// Devices of this person are monitored now: watch them for going
	// offline, and warn about a low battery.
	for _, d := range e.worn(s.PersonID) {
		if at, ok := e.offlineDeadline(d); ok {
			e.sch.Set(d.key(timerOffline), at)
		}
		if at, ok := e.noMotionDeadline(d); ok {
			e.sch.Set(d.key(timerNoMotion), at)
		}
		if d.battery >= 0 && int(d.battery) <= e.cfg.BatteryWarn && !d.charging {
			res.Warnings = append(res.Warnings, fmt.Sprintf("device %s battery at %d%%", d.id, d.battery))
			err := e.raise(ctx, alertSpec{kind: alert.KindLowBattery, dedup: "low_battery:" + d.id,
				cause: "session-battery:" + s.ID + ":" + d.id, causeTime: now, session: si, person: s.PersonID, org: s.OrgID,
				device: d, actor: "engine", detail: fmt.Sprintf("session started with battery at %d%%", d.battery)})
			if err != nil {
				e.log.Error("low battery warning not stored", "session_id", s.ID, "err", err)
			}
		}
	}
	e.log.Info("session started", "session_id", s.ID, "org_id", s.OrgID)
	return res, nil
}

// sessionDue is what a session's timer fires for.
type sessionDue uint8

const (
	dueNone sessionDue = iota
	dueReminder
	dueMissed
	dueOverrun
)

// nextSessionDue returns the session's earliest due moment after the
// last it handled: its check-in reminder (only while the check-in is
// still ahead of now: a reminder whose moment has passed, after a restart
// or a slow check-in, is sent at once), the missed check-in, and the
// overrun. The three never coincide (reminder < check-in due < missed <
// overrun), so handling them in time order needs one moment kept per
// session.
func (e *Engine) nextSessionDue(s *sessInfo, d Deadlines, now time.Time) (sessionDue, time.Time) {
	after := s.handled
	switch {
	case !d.Reminder.IsZero() && nanosOf(d.Reminder) > after && d.CheckinDue.After(now):
		return dueReminder, d.Reminder
	case !d.Missed.IsZero() && nanosOf(d.Missed) > after:
		return dueMissed, d.Missed
	case nanosOf(d.Overrun) > after:
		return dueOverrun, d.Overrun
	}
	return dueNone, time.Time{}
}

// sessionItem appends an active session's deadline for the scheduler to
// items.
func (e *Engine) sessionItem(items []deadline.Item[timerKey], s *sessInfo) []deadline.Item[timerKey] {
	d := SessionDeadlines(s.timing(), e.cfg.RemindBefore)
	if what, at := e.nextSessionDue(s, d, e.clk.Now()); what != dueNone {
		items = append(items, deadline.Item[timerKey]{Key: s.key(timerSession), At: at})
	}
	return items
}

// schedule (re)sets a session's deadline after its timing changed (a
// start, check-in or extension): every due moment counts again, and one
// already handled fires again as a no-op (the cause it was raised with is
// stored). The caller holds mu.
func (e *Engine) schedule(s *sessInfo) {
	s.handled = 0
	e.arm(s)
}

// arm sets the session's deadline to its next due moment, or cancels it
// if none is left; the caller holds mu.
func (e *Engine) arm(s *sessInfo) {
	var buf [1]deadline.Item[timerKey]
	if items := e.sessionItem(buf[:0], s); len(items) > 0 {
		e.sch.Set(items[0].Key, items[0].At)
	} else {
		e.sch.Cancel(s.key(timerSession))
	}
}

// unschedule drops an ended session's deadline; the caller holds mu.
func (e *Engine) unschedule(s *sessInfo) {
	e.sch.Cancel(s.key(timerSession))
}

// fireSession handles the session's due moment if it has come, and arms
// the next; the caller holds mu. On an error nothing is marked handled
// (Run fires the key again shortly).
func (e *Engine) fireSession(ctx context.Context, s *sessInfo) error {
	now := e.clk.Now()
	d := SessionDeadlines(s.timing(), e.cfg.RemindBefore)
	what, at := e.nextSessionDue(s, d, now)
	if what == dueNone {
		return nil
	}
	if now.Before(at) { // moved meanwhile
		e.sch.Set(s.key(timerSession), at)
		return nil
	}
	switch what {
	case dueReminder:
		// To the device that started the session, else (a session
		// started through the API) the wearer's most recently seen one.
		if dev := e.sessionDevice(s); dev != nil {
			e.command(ctx, dev.id, Command{Type: "checkin_reminder", SessionID: s.id, Due: d.CheckinDue})
		}
	case dueMissed:
		err := e.raise(ctx, alertSpec{kind: alert.KindMissedCheckin, dedup: "missed_checkin:" + s.id,
			cause: fmt.Sprintf("missed:%s:%d", s.id, d.CheckinDue.UnixNano()), causeTime: d.Missed,
			session: s, person: s.person, org: s.org, device: e.sessionDevice(s),
			detail: "check-in due " + d.CheckinDue.UTC().Format(time.RFC3339) + " not received", actor: "engine"})
		if err != nil {
			return err
		}
	case dueOverrun:
		err := e.raise(ctx, alertSpec{kind: alert.KindSessionOverrun, dedup: "session_overrun:" + s.id,
			cause: fmt.Sprintf("overrun:%s:%d", s.id, int64(s.end)), causeTime: d.Overrun,
			session: s, person: s.person, org: s.org, device: e.sessionDevice(s),
			detail: "session expected to end " + s.end.Time().Format(time.RFC3339), actor: "engine"})
		if err != nil {
			return err
		}
	}
	s.handled = nanosOf(at)
	e.arm(s)
	return nil
}

// update writes a session change decided by f on the session as stored
// (the engine keeps only its timing), retrying when the store changed
// meanwhile (another instance); the caller holds mu.
func (e *Engine) update(ctx context.Context, id string, f func(s *store.Session) error) (store.Session, error) {
	for attempt := 0; ; attempt++ {
		s, err := e.st.GetSession(ctx, id)
		if err != nil {
			return store.Session{}, err
		}
		if s.State != store.SessionActive {
			e.forget(s)
			return s, ErrSessionEnded
		}
		if err := f(&s); err != nil {
			return s, err
		}
		got, err := e.st.UpdateSession(ctx, s)
		if errors.Is(err, store.ErrConflict) && attempt < 3 {
			continue
		}
		if err != nil {
			return store.Session{}, err
		}
		if got.State == store.SessionActive {
			e.schedule(e.putSession(got))
		} else {
			e.forget(got)
		}
		return got, nil
	}
}

// forget drops the engine's record of an ended session; the caller holds
// mu.
func (e *Engine) forget(x store.Session) {
	if s := e.session(x.ID, x.PersonID); s != nil {
		e.dropSession(s)
	}
}

// checkIn records a check-in at device or server time at; the caller
// holds mu. A check-in that answers an open missed_checkin alert is added
// to its timeline (nothing resolves by itself).
func (e *Engine) checkIn(ctx context.Context, id string, at time.Time, by string) (store.Session, error) {
	got, err := e.update(ctx, id, func(s *store.Session) error {
		if at.After(s.LastCheckin) {
			s.LastCheckin = at
		}
		return nil
	})
	if err != nil {
		return got, err
	}
	open, err := e.st.ListAlerts(ctx, store.AlertFilter{PersonID: got.PersonID, Kind: alert.KindMissedCheckin,
		States: []store.AlertState{store.AlertRaised, store.AlertAcknowledged}, Limit: 10})
	if err != nil {
		return got, err
	}
	for _, a := range open {
		if a.SessionID == got.ID {
			_, err := e.st.AddAlertEntry(ctx, a.ID, store.AlertEntry{At: e.clk.Now().UTC(), Actor: by, Action: "checked_in",
				Detail: "worker checked in at " + at.UTC().Format(time.RFC3339),
				Cause:  fmt.Sprintf("checkin:%s:%d", got.ID, at.UnixNano())})
			if err != nil {
				return got, err
			}
		}
	}
	return got, nil
}

// CheckIn records a check-in from the API or the worker app.
func (e *Engine) CheckIn(ctx context.Context, sessionID, by string) (store.Session, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.checkIn(ctx, sessionID, e.clk.Now().UTC(), by)
}

// Extend moves a session's expected end to end (later than now).
func (e *Engine) Extend(ctx context.Context, sessionID string, end time.Time, by string) (store.Session, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clk.Now()
	return e.update(ctx, sessionID, func(s *store.Session) error {
		switch {
		case !end.After(now):
			return invalid("expected_end", "must be in the future")
		case end.Sub(s.StartedAt) > MaxSessionLength:
			return invalid("expected_end", "a session lasts at most 24h")
		}
		s.ExpectedEnd = end.UTC()
		return nil
	})
}

// End ends a session.
func (e *Engine) End(ctx context.Context, sessionID, by string) (store.Session, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clk.Now().UTC()
	s, err := e.update(ctx, sessionID, func(s *store.Session) error {
		s.State, s.EndedAt, s.EndedBy = store.SessionEnded, now, by
		return nil
	})
	if err != nil {
		return s, err
	}
	for d := e.people[s.PersonID].devs; d != nil; d = d.nextWorn {
		e.sch.Cancel(d.key(timerNoMotion))
		if !e.monitored(d) {
			e.sch.Cancel(d.key(timerOffline))
		}
	}
	e.log.Info("session ended", "session_id", s.ID, "org_id", s.OrgID)
	return s, nil
}
