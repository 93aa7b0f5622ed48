package store

import (
	"context"
	"time"
)

// EscalationState is where an alert's escalation ladder stands.
type EscalationState string

// Escalation states.
const (
	EscalationActive    EscalationState = "active"    // steps still to fire
	EscalationStopped   EscalationState = "stopped"   // acknowledged, cancelled or resolved
	EscalationExhausted EscalationState = "exhausted" // the last step passed; admins were told
)

// Escalation is one alert's ladder: which step and repeat fires next, and
// when. Policy is the JSON snapshot of the policy taken when the ladder
// started (internal/escalation reads it), so editing a policy never
// changes a ladder already running.
type Escalation struct {
	AlertID    string
	OrgID      string
	Policy     string
	StartedAt  time.Time // the ladder's origin: when the alert was raised
	Step       int       // the next step to fire
	Attempt    int       // the next repeat of that step (0: its first call)
	NextAt     time.Time
	State      EscalationState
	StopReason string
	Version    int64
}

// DeliveryStatus is how one delivery ended.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending DeliveryStatus = "pending" // begun; the process may have died sending it
	DeliverySent    DeliveryStatus = "sent"
	DeliveryFailed  DeliveryStatus = "failed"
)

// Delivery is one message to one target on one channel, recorded before it
// is sent (pending) and finished after: its Key (alert, event, step,
// repeat, channel, target) is unique, so a resumed ladder sends nothing
// that was already sent. Target is an address: personal data.
type Delivery struct {
	Key        string
	AlertID    string
	OrgID      string
	Event      string
	Step       int
	Attempt    int
	Channel    string
	Target     string
	Status     DeliveryStatus
	ProviderID string
	Error      string // a class, never a secret or the message
	Latency    time.Duration
	CreatedAt  time.Time
	DoneAt     time.Time
}

// EscalationStore keeps escalation policies, ladders and deliveries.
type EscalationStore interface {
	// PutEscalationPolicy stores an organisation's policy (JSON) for an
	// alert kind, or "*" for every kind without its own.
	PutEscalationPolicy(ctx context.Context, orgID, kind, policy string, at time.Time) error
	// GetEscalationPolicy returns a policy or ErrNotFound.
	GetEscalationPolicy(ctx context.Context, orgID, kind string) (string, error)
	// ListEscalationPolicies returns an organisation's policies by kind.
	ListEscalationPolicies(ctx context.Context, orgID string) (map[string]string, error)

	// StartEscalation stores e unless the alert has a ladder already, and
	// returns the stored ladder and whether it was created now.
	StartEscalation(ctx context.Context, e Escalation) (Escalation, bool, error)
	GetEscalation(ctx context.Context, alertID string) (Escalation, error)
	// UpdateEscalation writes step, attempt, next time, state and stop
	// reason if e.Version is still the stored version (else ErrConflict),
	// and returns the ladder as stored.
	UpdateEscalation(ctx context.Context, e Escalation) (Escalation, error)
	// EachActiveEscalation streams the active ladders, unordered.
	EachActiveEscalation(ctx context.Context, fn func(Escalation) error) error

	// BeginDelivery records d as pending unless its key is recorded, and
	// returns the stored delivery and whether it was created now.
	BeginDelivery(ctx context.Context, d Delivery) (Delivery, bool, error)
	// FinishDelivery records how the delivery with d.Key ended (status,
	// provider id, error class, latency, done time).
	FinishDelivery(ctx context.Context, d Delivery) error
	// ListDeliveries lists an alert's deliveries, oldest first.
	ListDeliveries(ctx context.Context, alertID string) ([]Delivery, error)
}
