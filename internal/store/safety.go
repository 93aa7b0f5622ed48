package store

import (
	"context"
	"time"

	"vigil/internal/event"
)

// AlertState is where an alert is in its lifecycle (internal/alert holds
// the rules for moving between states).
type AlertState string

// The alert states. Pending is a pre-alert the wearer can still cancel;
// pending, raised and acknowledged alerts are open.
const (
	AlertPending      AlertState = "pending"
	AlertRaised       AlertState = "raised"
	AlertAcknowledged AlertState = "acknowledged"
	AlertResolved     AlertState = "resolved"
	AlertCancelled    AlertState = "cancelled"
)

// Open reports whether an alert in state s still needs someone.
func (s AlertState) Open() bool {
	return s == AlertPending || s == AlertRaised || s == AlertAcknowledged
}

// Alert is one alarm about a person or a device, with its timeline.
type Alert struct {
	ID        string
	OrgID     string
	DeviceID  string // "" when no device is involved
	PersonID  string // "" when the device is unassigned
	SessionID string // the session that was running, if any
	Kind      string
	Severity  string
	State     AlertState
	// DedupKey names the cause: at most one open alert has a given key, so
	// a repeated cause joins the open alert's timeline instead of raising
	// a second one.
	DedupKey string
	// RaisedAt is when the alert was decided (server time); CauseTime when
	// what caused it happened (the device's time of the event, or the
	// deadline that passed).
	RaisedAt  time.Time
	CauseTime time.Time
	// PendingUntil is the end of a pre-alert: a pending alert becomes
	// raised then unless the wearer cancelled it. CancelUntil is the end
	// of the wearer's cancel window (zero: the wearer cannot cancel).
	PendingUntil time.Time
	CancelUntil  time.Time

	AcknowledgedAt time.Time
	AcknowledgedBy string
	ClosedAt       time.Time // resolved or cancelled
	ClosedBy       string
	Outcome        string // set on resolve
	OutcomeNote    string

	// Note is the session's amber note at the time of the alert (where,
	// who, what risk): personal data.
	Note string
	// Detail is short generated context, e.g. which geofence.
	Detail string
	// Position is the location snapshot; PositionTime the device time of
	// the fix (fix age = RaisedAt - PositionTime).
	Position     *event.Position
	PositionTime time.Time
	// Duress: the wearer gave a duress code. The alert stays open while
	// the device is told it was cancelled.
	Duress bool
	// Late: raised from events that arrived after store-and-forward.
	Late bool

	Version   int64 // increases with every change; UpdateAlert compares it
	UpdatedAt time.Time
	Timeline  []AlertEntry // GetAlert fills it, oldest first; ListAlerts leaves it nil
}

// AlertEntry is one line of an alert's timeline: who or what did what.
type AlertEntry struct {
	Seq    int // 1, 2, … per alert; assigned by the store
	At     time.Time
	Actor  string // "device:<id>", "engine", "user:<id>", "api"
	Action string // raised, repeated, acknowledged, resolved, cancelled, duress, …
	Detail string
	// Cause, when set, is unique across all timelines: the same cause (an
	// event's key, a deadline) is never recorded twice, so a redelivered
	// event or a restart cannot raise or extend anything again.
	Cause string
}

// RaiseResult says what RaiseAlert did.
type RaiseResult int

// The results of RaiseAlert.
const (
	// RaiseNew: a new alert was stored.
	RaiseNew RaiseResult = iota + 1
	// RaiseJoined: an open alert with the same dedup key took the entry.
	RaiseJoined
	// RaiseDuplicate: the cause was already recorded; nothing changed.
	RaiseDuplicate
)

// AlertFilter selects alerts for listing, newest first.
type AlertFilter struct {
	OrgID    string       // "" for every organisation
	PersonID string       // "" for everyone
	DeviceID string       // "" for every device
	States   []AlertState // empty for every state
	Kind     string       // "" for every kind
	// RaisedBefore, when set, pages back: only alerts raised before it.
	RaisedBefore time.Time
	Limit        int // default 100, at most 1000
}

// SessionState is where a timed session is.
type SessionState string

// The session states.
const (
	SessionActive SessionState = "active"
	SessionEnded  SessionState = "ended"
)

// Session is a lone worker's timed session (a home visit, a shift): the
// server expects check-ins every CheckinInterval (if set) and the end by
// ExpectedEnd, each with Grace.
type Session struct {
	ID              string
	OrgID           string
	PersonID        string
	DeviceID        string // the device used to start it, "" from the API
	Preset          string
	Note            string // where, who, what risk: personal data
	StartedAt       time.Time
	ExpectedEnd     time.Time
	CheckinInterval time.Duration // 0: no check-ins, only the end
	Grace           time.Duration
	LastCheckin     time.Time // StartedAt until the first check-in
	State           SessionState
	EndedAt         time.Time
	EndedBy         string
	Version         int64
}

// SessionFilter selects sessions for listing, newest first.
type SessionFilter struct {
	OrgID      string
	PersonID   string
	ActiveOnly bool
	Limit      int // default 100, at most 1000; ActiveOnly without an org lists all
}

// SessionPreset is an organisation's named session template, e.g. "high
// risk": 30 min, check-in every 15 min, 5 min grace.
type SessionPreset struct {
	OrgID           string
	Name            string
	Duration        time.Duration
	CheckinInterval time.Duration
	Grace           time.Duration
}

// GeofenceRecord is a stored geofence: its GeoJSON Feature (geometry and
// properties, internal/geofence parses it) and the columns to find it by.
type GeofenceRecord struct {
	ID        string
	OrgID     string
	Name      string
	Feature   []byte // a GeoJSON Feature
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SafetyStore is the part of the contract the safety engine, the alert
// lifecycle and their API use. Every Store implements it.
type SafetyStore interface {
	// RaiseAlert records a decision idempotently, in one transaction: if
	// first.Cause is already in any timeline it returns that alert and
	// RaiseDuplicate; else if an open alert has a.DedupKey it appends
	// first to that alert's timeline (RaiseJoined); else it stores a with
	// first as its timeline's first entry (RaiseNew). It returns the alert
	// as stored.
	RaiseAlert(ctx context.Context, a Alert, first AlertEntry) (Alert, RaiseResult, error)
	// UpdateAlert writes a's lifecycle fields (state, times, actors,
	// outcome, duress) and appends e, if a.Version is still the stored
	// version (else ErrConflict: reload and decide again). It returns the
	// alert as stored.
	UpdateAlert(ctx context.Context, a Alert, e AlertEntry) (Alert, error)
	// AddAlertEntry appends e to an alert's timeline; false if e.Cause was
	// already recorded.
	AddAlertEntry(ctx context.Context, alertID string, e AlertEntry) (bool, error)
	GetAlert(ctx context.Context, id string) (Alert, error) // with its timeline
	ListAlerts(ctx context.Context, f AlertFilter) ([]Alert, error)
	// HasCause reports whether a cause is recorded in any timeline.
	HasCause(ctx context.Context, cause string) (bool, error)

	// CreateSession stores a new active session; ErrConflict if the person
	// already has an active one, ErrNotFound for an unknown person.
	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, id string) (Session, error)
	// UpdateSession writes the mutable fields (expected end, last
	// check-in, state, end) if s.Version is still the stored version (else
	// ErrConflict), and returns the session as stored.
	UpdateSession(ctx context.Context, s Session) (Session, error)
	ListSessions(ctx context.Context, f SessionFilter) ([]Session, error)

	PutSessionPreset(ctx context.Context, p SessionPreset) error
	ListSessionPresets(ctx context.Context, orgID string) ([]SessionPreset, error)

	// PutGeofence creates or replaces a geofence; DeleteGeofence removes
	// one (ErrNotFound if absent).
	PutGeofence(ctx context.Context, g GeofenceRecord) error
	GetGeofence(ctx context.Context, id string) (GeofenceRecord, error)
	ListGeofences(ctx context.Context, orgID string) ([]GeofenceRecord, error) // "" for all
	DeleteGeofence(ctx context.Context, id string) error

	// OffDutyDevices returns which of the given devices' positions must
	// not be stored now under their organisation's location policy: a
	// device worn by a worker of an organisation with LocationOnDuty, who
	// has neither an active session nor an open alert. Unknown,
	// unassigned and residents' devices are never off duty.
	OffDutyDevices(ctx context.Context, deviceIDs []string) (map[string]bool, error)
	// ResidentIDs lists the ids of every person of kind resident.
	ResidentIDs(ctx context.Context) ([]string, error)
	// EachDeviceWatch and EachSessionTimer call fn for every device /
	// active session, in no particular order, streaming rows instead of
	// building a list (the safety engine's start-up reads millions), with
	// only the columns the engine keeps (EachSessionTimer reads a covering
	// index of the active sessions). An error from fn stops the walk and
	// is returned.
	EachDeviceWatch(ctx context.Context, fn func(w DeviceWatch) error) error
	EachSessionTimer(ctx context.Context, fn func(t SessionTimer) error) error
}

// DeviceWatch is what the safety engine reads of every device at start: a
// Device without its name, secrets, firmware, counters and last position
// (the engine reads the position with GetDevice when an alert needs it).
type DeviceWatch struct {
	ID, OrgID, PersonID string // PersonID "" when unassigned
	Disabled            bool
	LastSeen            time.Time // zero if never
	Battery             int       // percent; -1 without a reading
	Charging            bool
}

// SessionTimer is what the safety engine keeps of an active session to
// time it: a Session without its note, preset, state, end and version
// (GetSession has them).
type SessionTimer struct {
	ID, OrgID, PersonID, DeviceID string
	StartedAt, ExpectedEnd        time.Time
	CheckinInterval, Grace        time.Duration
	LastCheckin                   time.Time
}
