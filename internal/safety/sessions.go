package safety

import (
	"strings"
	"time"

	"vigil/internal/store"
)

// Deadlines are the moments a session's timers fire.
type Deadlines struct {
	// Reminder: tell the worker a check-in is due soon (zero: none).
	Reminder time.Time
	// CheckinDue is when the next check-in is expected (zero: none); the
	// missed_checkin alert fires at Missed = CheckinDue + grace.
	CheckinDue time.Time
	Missed     time.Time
	// Overrun: the session was not ended by its expected end + grace.
	Overrun time.Time
}

// SessionDeadlines computes an active session's deadlines: a pure
// function of the session (table-tested). Check-ins are due every
// interval after the last one; none is due after the expected end, which
// the overrun deadline covers.
func SessionDeadlines(s store.Session, remindBefore time.Duration) Deadlines {
	if s.State != store.SessionActive {
		return Deadlines{}
	}
	d := Deadlines{Overrun: s.ExpectedEnd.Add(s.Grace)}
	if s.CheckinInterval <= 0 {
		return d
	}
	last := s.LastCheckin
	if last.IsZero() {
		last = s.StartedAt
	}
	due := last.Add(s.CheckinInterval)
	if !due.Before(s.ExpectedEnd) {
		return d
	}
	d.CheckinDue, d.Missed = due, due.Add(s.Grace)
	if remindBefore > 0 {
		if r := due.Add(-remindBefore); r.After(last) {
			d.Reminder = r
		}
	}
	return d
}

// Preset is a named session template.
type Preset struct {
	Name            string
	Duration        time.Duration
	CheckinInterval time.Duration
	Grace           time.Duration
}

// DefaultPresets are used by organisations that have none of their own:
// the lower the risk, the longer between check-ins.
func DefaultPresets() []Preset {
	return []Preset{
		{Name: "low", Duration: 4 * time.Hour, CheckinInterval: time.Hour, Grace: 10 * time.Minute},
		{Name: "medium", Duration: 2 * time.Hour, CheckinInterval: 30 * time.Minute, Grace: 5 * time.Minute},
		{Name: "high", Duration: 30 * time.Minute, CheckinInterval: 15 * time.Minute, Grace: 2 * time.Minute},
	}
}

// Validate checks a preset against the limits a session has.
func (p Preset) Validate() error {
	switch {
	case p.Name == "" || len(p.Name) > 40 || strings.ContainsFunc(p.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}):
		return invalid("name", "1 to 40 of a-z, 0-9, - and _")
	case p.Duration <= 0 || p.Duration > MaxSessionLength:
		return invalid("duration", "required, at most 24h")
	case p.CheckinInterval < 0 || (p.CheckinInterval > 0 && p.CheckinInterval < MinCheckin):
		return invalid("checkin_interval", "0 (none) or at least 1m")
	case p.Grace < 0 || p.Grace > MaxGrace:
		return invalid("grace", "between 0 and 2h")
	}
	return nil
}
