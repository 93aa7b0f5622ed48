// Package store holds the records Vigil keeps in SQL and the contract both
// implementations (sqlite/, postgres/) meet, proved by storetest.Run.
//
// The SQL store is a projection of the event log on the bus plus the
// configuration data (organisations, people, devices). Writes of events are
// group-committed: ApplyEvents takes a batch and commits it in one
// transaction, idempotent by (device_id, msg_id).
//
// This package imports only the standard library and internal/event. It must
// not import the bus, gateways, HTTP or the concrete drivers; those live in
// the subpackages, and only internal/app imports them.
package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"vigil/internal/event"
)

// Sentinel errors. Implementations wrap them with the operation.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: already exists")
	// ErrSchemaBehind: the database has migrations this binary does not
	// know yet (run a newer binary). ErrSchemaAhead is the reverse wording
	// from the binary's side: the database lacks migrations (run migrate).
	ErrSchemaNewer = errors.New("store: database schema is newer than this binary")
	ErrSchemaOlder = errors.New("store: database schema is older than this binary; run `vigil migrate`")
	ErrSchemaDrift = errors.New("store: applied migration differs from the embedded one")
)

// Org is an organisation (a care provider, a team of a council).
type Org struct {
	ID        string // short slug chosen by the operator, e.g. "acme"
	Name      string
	CreatedAt time.Time
	// LocationPolicy says when its workers' positions may be kept; the
	// zero value reads as LocationOnDuty.
	LocationPolicy LocationPolicy
	// RequireWebAuthn: its users must use a passkey or security key as
	// their second factor (TOTP is not enough).
	RequireWebAuthn bool
}

// LocationPolicy says when a worker's positions may be stored.
type LocationPolicy string

// The location policies. Residents' positions are kept under both.
const (
	// LocationOnDuty keeps a worker's positions only while they have an
	// active session or an open alert; others are not stored at all.
	LocationOnDuty LocationPolicy = "on_duty"
	// LocationAlways keeps every position.
	LocationAlways LocationPolicy = "always"
)

// PersonKind says whether a person is a lone worker or a monitored resident.
type PersonKind string

// The person kinds.
const (
	PersonWorker   PersonKind = "worker"
	PersonResident PersonKind = "resident"
)

// Person is someone Vigil protects.
type Person struct {
	ID        string
	OrgID     string
	Kind      PersonKind
	Name      string
	CreatedAt time.Time
	// FallSensitivity tunes the fall detector for this person's devices:
	// an offset in log-odds, 0 for the model's operating point (see
	// fall.Config; callers check it against the model's bounds).
	FallSensitivity float64
	// FallCancelWindow is how long this person has to cancel a detected
	// fall ("I'm OK") before it is raised; 0 uses the server's default
	// (safety.pre_alert). Pendants use 10–30 s.
	FallCancelWindow time.Duration
	// DuressCodeHash is SHA-256 over the person id and their duress code
	// (DuressHash), nil when none is set. A cancel given with the duress
	// code looks cancelled to whoever holds the device, while the alert
	// stays open, marked duress.
	DuressCodeHash []byte
}

// Device is a registered wearable, pendant, tracker or phone app.
type Device struct {
	ID       string
	OrgID    string
	Name     string
	PersonID string // "" when unassigned
	// SecretHash is SHA-256 of the device's random secret. The secret
	// itself is shown once at registration and never stored.
	SecretHash []byte
	// CertFingerprint is the SHA-256 of the device's client certificate,
	// once enrolled with one (device enrolment issue); "" until then.
	CertFingerprint string
	Firmware        string
	CreatedAt       time.Time
	DisabledAt      time.Time // zero while enabled
	// Quarantine is why the device was flagged for misbehaving (ACL
	// denials, message floods, impossible travel); zero when it is not.
	// Commands to it are blocked; its alarms still get through.
	Quarantine DeviceQuarantine
	State      DeviceState
}

// DeviceQuarantine is a device's quarantine flag.
type DeviceQuarantine struct {
	Reason string
	At     time.Time
}

// RevokedDevice is a disabled device as a gateway's denylist keeps it.
type RevokedDevice struct {
	ID              string
	OrgID           string
	CertFingerprint string // "" when it never enrolled a certificate
	DisabledAt      time.Time
}

// DeviceState is what the projection of events says about a device now.
type DeviceState struct {
	LastSeen     time.Time // received_at of the newest event; zero if never
	LastPosition *event.Position
	PositionTime time.Time // device time of LastPosition
	Battery      *int
	Charging     bool
	BatteryTime  time.Time
	Events       int64
}

// StoredEvent is an event as kept in the event log. Position reports
// (events of type position) are not in the log: they are kept once, as
// PositionRecords.
type StoredEvent struct {
	Seq int64 // store-assigned, increasing
	event.Event
}

// PositionRecord is one row of position history: a position report
// (everything its event carried; the organisation is the device's) or the
// position of another event, such as an SOS. (DeviceID, DeviceTime, MsgID)
// identifies it.
type PositionRecord struct {
	DeviceID   string
	MsgID      string
	DeviceTime time.Time
	ReceivedAt time.Time
	Source     event.Source
	Late       bool
	event.Position
}

// EventFilter selects events for listing.
type EventFilter struct {
	OrgID    string
	DeviceID string
	Limit    int // default 100, at most 1000
}

// Store is everything Vigil keeps in SQL. Consumers declare the smaller
// interfaces they need; this is the whole contract the conformance suite
// checks.
type Store interface {
	CreateOrg(ctx context.Context, o Org) error
	GetOrg(ctx context.Context, id string) (Org, error)
	ListOrgs(ctx context.Context) ([]Org, error)

	CreatePerson(ctx context.Context, p Person) error
	GetPerson(ctx context.Context, id string) (Person, error)
	ListPeople(ctx context.Context, orgID string) ([]Person, error)
	SetFallSensitivity(ctx context.Context, personID string, v float64) error // unknown person: ErrNotFound
	// SetFallCancelWindow sets a person's fall cancel window (0: the
	// server's default); unknown person: ErrNotFound.
	SetFallCancelWindow(ctx context.Context, personID string, d time.Duration) error

	CreateDevice(ctx context.Context, d Device) error
	GetDevice(ctx context.Context, id string) (Device, error)
	ListDevices(ctx context.Context, orgID string) ([]Device, error)   // orgID "" lists all
	AssignDevice(ctx context.Context, deviceID, personID string) error // personID "" unassigns
	SetDeviceSecret(ctx context.Context, deviceID string, secretHash []byte) error
	DisableDevice(ctx context.Context, deviceID string, at time.Time) error
	// ListRevokedDevices lists devices disabled at or after since (zero:
	// all disabled devices), oldest first: the gateways' denylist, polled
	// so that a revocation made anywhere (API, CLI, another instance)
	// reaches every live connection.
	ListRevokedDevices(ctx context.Context, since time.Time) ([]RevokedDevice, error)
	// QuarantineDevice flags a device (first reason and time kept while
	// flagged); it reports whether the flag is new. ReleaseDevice clears
	// it. Unknown device: ErrNotFound.
	QuarantineDevice(ctx context.Context, deviceID, reason string, at time.Time) (bool, error)
	ReleaseDevice(ctx context.Context, deviceID string) error

	// ApplyEvents projects a batch in one transaction: appends each event
	// not yet stored (by DeviceID+MsgID) to the event log, appends
	// positions to the history, and advances each device's state (a late
	// event never replaces newer state). It returns how many events were
	// new. Events of unknown devices, or naming another org than their
	// device's, fail the whole batch with an error wrapping ErrNotFound.
	ApplyEvents(ctx context.Context, evs []event.Event) (inserted int, err error)
	// ListEvents lists the event log (every event but position reports,
	// which Positions returns), newest (highest Seq) first.
	ListEvents(ctx context.Context, f EventFilter) ([]StoredEvent, error)
	CountEvents(ctx context.Context, deviceID string) (int64, error) // "" counts all; unknown device: ErrNotFound
	// HasEvent reports whether an event, position reports included, is
	// stored.
	HasEvent(ctx context.Context, deviceID, msgID string) (bool, error)
	// Positions returns history with from <= device time < to, oldest
	// first; a zero from or to leaves that side open.
	Positions(ctx context.Context, deviceID string, from, to time.Time) ([]PositionRecord, error)

	// GetMeta and PutMeta keep small named values (e.g. the bootstrap
	// token's hash). GetMeta returns ErrNotFound for an unknown key, and so
	// does DeleteMeta, so exactly one of concurrent deleters succeeds.
	GetMeta(ctx context.Context, key string) (string, error)
	PutMeta(ctx context.Context, key, value string) error
	// PutMetas writes several values in one transaction: all or none.
	PutMetas(ctx context.Context, kvs map[string]string) error
	DeleteMeta(ctx context.Context, key string) error

	// Ping checks the database answers (readiness).
	SafetyStore
	EscalationStore
	AccessStore
	AuditStore
	RotaStore
	RetentionStore
	OrgSSOStore
	PersonPhotoStore
	PrivacyStore
	EnrolStore
	FirmwareStore
	TrackerStore
	// SetLocationPolicy sets an organisation's location policy.
	SetLocationPolicy(ctx context.Context, orgID string, p LocationPolicy) error
	// SetDuressCode sets a person's duress code hash (nil clears it).
	SetDuressCode(ctx context.Context, personID string, hash []byte) error

	Ping(ctx context.Context) error
	Close() error
}

// DuressHash is the stored form of a person's duress code.
func DuressHash(personID, code string) []byte {
	h := sha256.Sum256([]byte("vigil-duress\x00" + personID + "\x00" + code))
	return h[:]
}
