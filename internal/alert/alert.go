// Package alert is the alert lifecycle: the kinds and severities, and the
// rules for moving an alert between states — pending (a pre-alert the
// wearer can cancel) → raised → acknowledged → resolved with an outcome,
// or cancelled by the wearer inside a cancel window. Nothing resolves by
// itself. A duress code given where a cancel is expected leaves the alert
// open, marked duress, while the wearer is shown it cancelled (WearerView).
//
// The transition functions are pure: they take the alert as stored and
// return the changed alert and the timeline entry to append, or an error
// wrapping ErrIllegal. Service applies them through the store with
// optimistic concurrency (the alert's version), so two operators
// acknowledging at once get one winner and one clear error.
//
// It imports internal/store (the record types) and internal/clock; it must
// not import drivers, the bus, gateways or HTTP.
package alert

import (
	"errors"
	"fmt"
	"time"

	"vigil/internal/store"
)

// The alert kinds.
const (
	KindSOS            = "sos"
	KindDuress         = "duress"
	KindMissedCheckin  = "missed_checkin"
	KindSessionOverrun = "session_overrun"
	KindGeofenceExit   = "geofence_exit"
	KindGeofenceEnter  = "geofence_enter"
	KindManDown        = "man_down"
	KindNoMotion       = "no_motion"
	KindFall           = "fall"
	KindLowBattery     = "low_battery"
	KindDeviceOffline  = "device_offline"
	// KindFirmwareProblem: a device stays on a firmware version its
	// release is marked as having a known problem with.
	KindFirmwareProblem = "firmware_problem"
)

// The severities, most urgent first.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityWarning  = "warning"
	SeverityInfo     = "info"
)

// kinds maps each kind to its default severity.
var kinds = map[string]string{
	KindSOS:             SeverityCritical,
	KindDuress:          SeverityCritical,
	KindMissedCheckin:   SeverityHigh,
	KindSessionOverrun:  SeverityHigh,
	KindGeofenceExit:    SeverityHigh,
	KindGeofenceEnter:   SeverityHigh,
	KindManDown:         SeverityCritical,
	KindNoMotion:        SeverityCritical,
	KindFall:            SeverityCritical,
	KindLowBattery:      SeverityWarning,
	KindDeviceOffline:   SeverityHigh,
	KindFirmwareProblem: SeverityWarning,
}

// Severity returns a kind's default severity, and whether the kind exists.
func Severity(kind string) (string, bool) {
	s, ok := kinds[kind]
	return s, ok
}

// Kinds lists every kind.
func Kinds() []string {
	return []string{KindSOS, KindDuress, KindMissedCheckin, KindSessionOverrun, KindGeofenceExit, KindGeofenceEnter,
		KindManDown, KindNoMotion, KindFall, KindLowBattery, KindDeviceOffline, KindFirmwareProblem}
}

// The outcomes of resolving an alert.
const (
	OutcomeFalseAlarm        = "false_alarm"
	OutcomeAssisted          = "assisted"
	OutcomeEmergencyServices = "emergency_services"
	OutcomeOther             = "other"
)

// Outcomes lists every outcome.
func Outcomes() []string {
	return []string{OutcomeFalseAlarm, OutcomeAssisted, OutcomeEmergencyServices, OutcomeOther}
}

// The timeline actions the lifecycle writes.
const (
	ActionRaised        = "raised"
	ActionPreAlert      = "pre_alert"
	ActionRepeated      = "repeated"
	ActionAcknowledged  = "acknowledged"
	ActionResolved      = "resolved"
	ActionCancelled     = "cancelled"
	ActionDuress        = "duress"
	ActionCancelRefused = "cancel_refused"
)

// Errors. ErrIllegal wraps every refused transition.
var (
	ErrIllegal = errors.New("alert: illegal transition")
	// ErrCancelWindow: the wearer's cancel window has passed (or the kind
	// has none); a supervisor must resolve the alert.
	ErrCancelWindow = fmt.Errorf("%w: the cancel window has passed", ErrIllegal)
	// ErrOutcome: resolve needs a known outcome, and "other" needs a note.
	ErrOutcome = errors.New("alert: outcome must be false_alarm, assisted, emergency_services, or other with a note")
)

func illegal(a store.Alert, what string) error {
	return fmt.Errorf("%w: cannot %s an alert that is %s", ErrIllegal, what, a.State)
}

// Acknowledge takes ownership of a raised alert.
func Acknowledge(a store.Alert, by string, at time.Time, note string) (store.Alert, store.AlertEntry, error) {
	if a.State != store.AlertRaised {
		if a.State == store.AlertAcknowledged {
			return a, store.AlertEntry{}, fmt.Errorf("%w: already acknowledged by %s", ErrIllegal, a.AcknowledgedBy)
		}
		return a, store.AlertEntry{}, illegal(a, "acknowledge")
	}
	a.State, a.AcknowledgedAt, a.AcknowledgedBy = store.AlertAcknowledged, at, by
	return a, store.AlertEntry{At: at, Actor: by, Action: ActionAcknowledged, Detail: note}, nil
}

// Resolve closes a raised or acknowledged alert with an outcome.
func Resolve(a store.Alert, by string, at time.Time, outcome, note string) (store.Alert, store.AlertEntry, error) {
	if a.State != store.AlertRaised && a.State != store.AlertAcknowledged {
		return a, store.AlertEntry{}, illegal(a, "resolve")
	}
	switch outcome {
	case OutcomeFalseAlarm, OutcomeAssisted, OutcomeEmergencyServices:
	case OutcomeOther:
		if note == "" {
			return a, store.AlertEntry{}, ErrOutcome
		}
	default:
		return a, store.AlertEntry{}, ErrOutcome
	}
	if a.AcknowledgedAt.IsZero() {
		// Resolving implies someone took it on.
		a.AcknowledgedAt, a.AcknowledgedBy = at, by
	}
	a.State, a.ClosedAt, a.ClosedBy, a.Outcome, a.OutcomeNote = store.AlertResolved, at, by, outcome, note
	return a, store.AlertEntry{At: at, Actor: by, Action: ActionResolved, Detail: outcome}, nil
}

// CanCancel reports whether the wearer may still cancel a at time at: a
// pending pre-alert always, a raised alert until CancelUntil.
func CanCancel(a store.Alert, at time.Time) bool {
	switch a.State {
	case store.AlertPending:
		return true
	case store.AlertRaised:
		return !a.CancelUntil.IsZero() && !at.After(a.CancelUntil)
	}
	return false
}

// Cancel is the wearer's cancel. Inside the window the alert is
// cancelled; after it the cancel is refused with ErrCancelWindow (the
// caller records the refusal with CancelRefused).
func Cancel(a store.Alert, by string, at time.Time) (store.Alert, store.AlertEntry, error) {
	if !a.State.Open() {
		return a, store.AlertEntry{}, illegal(a, "cancel")
	}
	if a.Duress {
		// Already duress: a further cancel changes nothing real.
		return a, store.AlertEntry{}, fmt.Errorf("%w: a duress alert stays open", ErrIllegal)
	}
	if !CanCancel(a, at) {
		return a, store.AlertEntry{}, ErrCancelWindow
	}
	a.State, a.ClosedAt, a.ClosedBy = store.AlertCancelled, at, by
	return a, store.AlertEntry{At: at, Actor: by, Action: ActionCancelled}, nil
}

// CancelRefused is the timeline entry for a cancel after the window.
func CancelRefused(by string, at time.Time) store.AlertEntry {
	return store.AlertEntry{At: at, Actor: by, Action: ActionCancelRefused, Detail: "cancel window passed"}
}

// Duress handles a duress code given where a cancel was expected: the
// alert stays open (a pending pre-alert is raised at once), becomes
// critical and is marked duress. The wearer must be shown WearerView.
func Duress(a store.Alert, by string, at time.Time) (store.Alert, store.AlertEntry, error) {
	if !a.State.Open() {
		return a, store.AlertEntry{}, illegal(a, "mark duress on")
	}
	if a.State == store.AlertPending {
		a.State = store.AlertRaised
		a.PendingUntil = time.Time{}
	}
	a.Duress, a.Severity, a.CancelUntil = true, SeverityCritical, time.Time{}
	return a, store.AlertEntry{At: at, Actor: by, Action: ActionDuress}, nil
}

// Help raises a pending pre-alert at once because the wearer asked for
// help ("I need help" on the device or in the app) before its window
// ran out. by names who asked (e.g. "device:d1").
func Help(a store.Alert, by string, at time.Time) (store.Alert, store.AlertEntry, error) {
	if a.State != store.AlertPending {
		return a, store.AlertEntry{}, illegal(a, "ask for help on")
	}
	a.State = store.AlertRaised
	a.PendingUntil = time.Time{}
	return a, store.AlertEntry{At: at, Actor: by, Action: ActionRaised, Detail: "the wearer asked for help"}, nil
}

// Escalate raises a pending pre-alert whose window has passed.
func Escalate(a store.Alert, at time.Time) (store.Alert, store.AlertEntry, error) {
	if a.State != store.AlertPending {
		return a, store.AlertEntry{}, illegal(a, "escalate")
	}
	if at.Before(a.PendingUntil) {
		return a, store.AlertEntry{}, fmt.Errorf("%w: pre-alert runs until %s", ErrIllegal, a.PendingUntil.Format(time.RFC3339))
	}
	a.State = store.AlertRaised
	return a, store.AlertEntry{At: at, Actor: "engine", Action: ActionRaised, Detail: "pre-alert not cancelled",
		Cause: "escalate:" + a.ID}, nil
}

// WearerView is what the person holding the device may see of an alert:
// a duress alert looks cancelled (and a silent duress alarm like a
// cancelled SOS), with nothing of what happened after.
func WearerView(a store.Alert) store.Alert {
	if !a.Duress {
		return a
	}
	at, by := a.RaisedAt, "device:"+a.DeviceID
	for _, e := range a.Timeline {
		if e.Action == ActionDuress {
			at, by = e.At, e.Actor
			break
		}
	}
	kind := a.Kind
	if kind == KindDuress {
		kind = KindSOS
	}
	return store.Alert{ID: a.ID, OrgID: a.OrgID, DeviceID: a.DeviceID, PersonID: a.PersonID, SessionID: a.SessionID,
		Kind: kind, Severity: a.Severity, State: store.AlertCancelled, RaisedAt: a.RaisedAt, CauseTime: a.CauseTime,
		ClosedAt: at, ClosedBy: by, Position: a.Position, PositionTime: a.PositionTime, Note: a.Note,
		Timeline: []store.AlertEntry{
			{Seq: 1, At: a.RaisedAt, Actor: "device:" + a.DeviceID, Action: ActionRaised},
			{Seq: 2, At: at, Actor: by, Action: ActionCancelled},
		}}
}
