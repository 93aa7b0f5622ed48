package console

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"vigil/internal/notify"
)

// Channel is the channel name of the console notifier.
const Channel = "console"

// ErrOrgMismatch: the target organisation is not the message's.
var ErrOrgMismatch = fmt.Errorf("console: target organisation is not the alert's: %w", ErrInvalid)

var _ notify.Notifier = (*Notifier)(nil)

// Notifier publishes alert messages into a Hub. Target.Address is the
// organisation's id. It never blocks on a browser.
type Notifier struct{ hub *Hub }

// NewNotifier returns a notifier publishing into h.
func NewNotifier(h *Hub) *Notifier { return &Notifier{hub: h} }

// Channel returns "console".
func (n *Notifier) Channel() string { return Channel }

// Notify publishes m to the organisation to.Address. Receipt.ProviderID is
// the event's id. A target for another organisation than m.OrgID is
// refused (permanently): one organisation's console never sees another's
// alert.
func (n *Notifier) Notify(ctx context.Context, to notify.Target, m notify.Message) (notify.Receipt, error) {
	if err := ctx.Err(); err != nil {
		return notify.Receipt{}, fmt.Errorf("console: notify: %w", err)
	}
	if to.Channel != "" && to.Channel != Channel {
		return notify.Receipt{}, notify.Permanent(fmt.Errorf("console: notify: target channel is not console: %w", ErrInvalid))
	}
	org := to.Address
	if org == "" {
		return notify.Receipt{}, notify.Permanent(fmt.Errorf("console: notify: no organisation: %w", ErrInvalid))
	}
	if m.OrgID != "" && m.OrgID != org {
		return notify.Receipt{}, notify.Permanent(fmt.Errorf("console: notify: %w", ErrOrgMismatch))
	}
	data, err := json.Marshal(alertData(m))
	if err != nil {
		return notify.Receipt{}, notify.Permanent(fmt.Errorf("console: notify: encode: %w", err))
	}
	id, err := n.hub.Publish(org, string(m.Event), data)
	if err != nil {
		if !isToken(string(m.Event)) {
			return notify.Receipt{}, notify.Permanent(fmt.Errorf("console: notify: %w", err))
		}
		return notify.Receipt{}, fmt.Errorf("console: notify: %w", err)
	}
	return notify.Receipt{ProviderID: id, Attempts: 1}, nil
}

// Alert is the JSON of an alert event's data line.
type Alert struct {
	AlertID    string    `json:"alert_id"`
	OrgID      string    `json:"org_id"`
	Event      string    `json:"event"`
	Kind       string    `json:"kind"`
	Severity   string    `json:"severity"`
	State      string    `json:"state"`
	RaisedAt   time.Time `json:"raised_at,omitzero"`
	Step       int       `json:"step"`
	Attempt    int       `json:"attempt"`
	PersonName string    `json:"person_name,omitempty"`
	Note       string    `json:"note,omitempty"`
	Detail     string    `json:"detail,omitempty"`
	Position   *Position `json:"position,omitempty"`
	ConsoleURL string    `json:"console_url,omitempty"`
	MapURL     string    `json:"map_url,omitempty"`
	AckedBy    string    `json:"acked_by,omitempty"`
}

// Position is where the person was.
type Position struct {
	Lat       float64   `json:"lat"`
	Lon       float64   `json:"lon"`
	AccuracyM float64   `json:"accuracy_m,omitempty"`
	At        time.Time `json:"at,omitzero"`
}

// alertData is what a console needs of m. The acknowledge link is left
// out: it is a bearer token for e-mail and SMS, and the console
// acknowledges through its own authenticated API.
func alertData(m notify.Message) Alert {
	a := Alert{
		AlertID: m.AlertID, OrgID: m.OrgID, Event: string(m.Event), Kind: m.Kind,
		Severity: m.Severity, State: m.State, Step: m.Step, Attempt: m.Attempt,
		PersonName: m.PersonName, Note: m.Note, Detail: m.Detail,
		ConsoleURL: m.ConsoleURL, MapURL: m.MapURL, AckedBy: m.AckedBy,
	}
	if !m.RaisedAt.IsZero() {
		a.RaisedAt = m.RaisedAt.UTC()
	}
	if p := m.Position; p != nil && finite(p.Lat, p.Lon, p.AccuracyM) {
		a.Position = &Position{Lat: p.Lat, Lon: p.Lon, AccuracyM: p.AccuracyM}
		if !p.At.IsZero() {
			a.Position.At = p.At.UTC()
		}
	}
	return a
}

func finite(fs ...float64) bool {
	for _, f := range fs {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return false
		}
	}
	return true
}
