package web

import (
	"time"

	"vigil/internal/store"
)

// positionJSON is a location snapshot.
type positionJSON struct {
	Lat       float64    `json:"lat"`
	Lon       float64    `json:"lon"`
	AccuracyM float64    `json:"accuracy_m"`
	FixTime   *time.Time `json:"fix_time,omitempty"`
	At        time.Time  `json:"at"`    // device time of the fix
	AgeS      float64    `json:"age_s"` // at the time of the alert
}

type entryJSON struct {
	Seq    int       `json:"seq"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Detail string    `json:"detail,omitempty"`
}

type AlertJSON struct {
	ID             string        `json:"id"`
	OrgID          string        `json:"org_id"`
	DeviceID       string        `json:"device_id,omitempty"`
	PersonID       string        `json:"person_id,omitempty"`
	SessionID      string        `json:"session_id,omitempty"`
	Kind           string        `json:"kind"`
	Severity       string        `json:"severity"`
	State          string        `json:"state"`
	RaisedAt       time.Time     `json:"raised_at"`
	CauseTime      time.Time     `json:"cause_time"`
	PendingUntil   *time.Time    `json:"pending_until,omitempty"`
	CancelUntil    *time.Time    `json:"cancel_until,omitempty"`
	AcknowledgedAt *time.Time    `json:"acknowledged_at,omitempty"`
	AcknowledgedBy string        `json:"acknowledged_by,omitempty"`
	ClosedAt       *time.Time    `json:"closed_at,omitempty"`
	ClosedBy       string        `json:"closed_by,omitempty"`
	Outcome        string        `json:"outcome,omitempty"`
	OutcomeNote    string        `json:"outcome_note,omitempty"`
	Note           string        `json:"note,omitempty"`
	Detail         string        `json:"detail,omitempty"`
	Position       *positionJSON `json:"position,omitempty"`
	Duress         bool          `json:"duress,omitempty"`
	Late           bool          `json:"late,omitempty"`
	Timeline       []entryJSON   `json:"timeline,omitempty"`
}

func tptr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// AlertView is an alert as the API shows it (cause keys stay inside).
func AlertView(a store.Alert) AlertJSON {
	v := AlertJSON{ID: a.ID, OrgID: a.OrgID, DeviceID: a.DeviceID, PersonID: a.PersonID, SessionID: a.SessionID,
		Kind: a.Kind, Severity: a.Severity, State: string(a.State), RaisedAt: a.RaisedAt, CauseTime: a.CauseTime,
		PendingUntil: tptr(a.PendingUntil), CancelUntil: tptr(a.CancelUntil), AcknowledgedAt: tptr(a.AcknowledgedAt),
		AcknowledgedBy: a.AcknowledgedBy, ClosedAt: tptr(a.ClosedAt), ClosedBy: a.ClosedBy, Outcome: a.Outcome,
		OutcomeNote: a.OutcomeNote, Note: a.Note, Detail: a.Detail, Duress: a.Duress, Late: a.Late}
	if p := a.Position; p != nil {
		v.Position = &positionJSON{Lat: p.Lat, Lon: p.Lon, AccuracyM: p.AccuracyM, FixTime: tptr(p.FixTime),
			At: a.PositionTime, AgeS: a.RaisedAt.Sub(a.PositionTime).Seconds()}
	}
	for _, e := range a.Timeline {
		v.Timeline = append(v.Timeline, entryJSON{Seq: e.Seq, At: e.At, Actor: e.Actor, Action: e.Action, Detail: e.Detail})
	}
	return v
}

type SessionJSON struct {
	ID               string     `json:"id"`
	OrgID            string     `json:"org_id"`
	PersonID         string     `json:"person_id"`
	DeviceID         string     `json:"device_id,omitempty"`
	Preset           string     `json:"preset,omitempty"`
	Note             string     `json:"note,omitempty"`
	State            string     `json:"state"`
	StartedAt        time.Time  `json:"started_at"`
	ExpectedEnd      time.Time  `json:"expected_end"`
	CheckinIntervalS float64    `json:"checkin_interval_s"`
	GraceS           float64    `json:"grace_s"`
	LastCheckin      time.Time  `json:"last_checkin"`
	NextCheckinDue   *time.Time `json:"next_checkin_due,omitempty"`
	EndedAt          *time.Time `json:"ended_at,omitempty"`
	EndedBy          string     `json:"ended_by,omitempty"`
	Warnings         []string   `json:"warnings,omitempty"`
}

// SessionView is a session as the API shows it.
func SessionView(s store.Session, nextDue time.Time) SessionJSON {
	return SessionJSON{ID: s.ID, OrgID: s.OrgID, PersonID: s.PersonID, DeviceID: s.DeviceID, Preset: s.Preset, Note: s.Note,
		State: string(s.State), StartedAt: s.StartedAt, ExpectedEnd: s.ExpectedEnd, CheckinIntervalS: s.CheckinInterval.Seconds(),
		GraceS: s.Grace.Seconds(), LastCheckin: s.LastCheckin, NextCheckinDue: tptr(nextDue), EndedAt: tptr(s.EndedAt), EndedBy: s.EndedBy}
}
