// Package notify is the contract between escalation and the channels that
// reach people: a Message about an alert, a Target to reach, and the small
// Notifier interface each channel implements in its own subpackage
// (console, email, sms, webhook). Outbound HTTP for the channels goes
// through internal/notify/outbound (SSRF-safe).
//
// A Message carries personal data (the person's name, the note, the
// position): channels put it in the body they deliver and nowhere else —
// never in logs, errors or metric labels. Errors from a channel name the
// channel, the operation and a class (timeout, refused, HTTP status), never
// a secret (token, password, webhook key) or the message's content.
//
// It imports only the standard library; it must not import the store, the
// bus, the safety engine or the app: escalation calls channels, channels
// call no one back except through the callbacks they are given.
package notify

import (
	"context"
	"errors"
	"time"
)

// Event says why a message is sent.
type Event string

// Events.
const (
	EventRaised    Event = "raised"    // an alert was raised: the first call of a step
	EventReminder  Event = "reminder"  // still unacknowledged: a step repeats
	EventCancelled Event = "cancelled" // the wearer cancelled it: stand down
	EventAcked     Event = "acknowledged"
	EventResolved  Event = "resolved"
	EventExhausted Event = "exhausted" // the ladder ran out: broadcast to admins
)

// Position is where the person was.
type Position struct {
	Lat, Lon  float64
	AccuracyM float64
	At        time.Time // when the fix was taken
}

// Message is one notification about one alert.
type Message struct {
	Event    Event
	AlertID  string
	OrgID    string
	Kind     string // sos, fall, missed_checkin, …
	Severity string // critical, high, …
	State    string // the alert's state when sent
	RaisedAt time.Time
	// Step is the escalation step (0-based) and Attempt the repeat within
	// it (0 for the first call), so a receiver can tell a reminder.
	Step, Attempt int
	// Personal data: bodies only.
	PersonName string
	Note       string
	Detail     string
	Position   *Position
	// Links, built by the caller from the configured public base URL only
	// (never from a request's Host): the alert in the console, a map, and
	// a signed one-time acknowledge link ("" when the channel must not
	// carry one).
	ConsoleURL, MapURL, AckURL string
	// AckedBy names who acknowledged (EventAcked).
	AckedBy string
}

// Target is whom to reach and where: an e-mail address, a phone number in
// E.164, a webhook URL, or an organisation for the console feed.
type Target struct {
	Channel string // "console", "email", "sms", "webhook"
	Address string
	Name    string // the recipient's display name, if any
	UserID  string // the recipient's user id, if any (acknowledgements by reply)
}

// Receipt is what a channel learnt from one delivery.
type Receipt struct {
	// ProviderID is the far end's id for the message (an SMS sid, an SMTP
	// queue id), for matching delivery receipts; "" if none.
	ProviderID string
	// Attempts is how many tries the delivery took (webhook retries).
	Attempts int
}

// Notifier delivers messages over one channel. Notify returns when the far
// end has taken the message (or refused it for good, or ctx ended); it
// must be safe for concurrent use and must not block the caller beyond
// ctx. A permanent failure (a 4xx, a malformed address) is wrapped with
// Permanent so the caller does not retry it.
type Notifier interface {
	Channel() string
	Notify(ctx context.Context, to Target, m Message) (Receipt, error)
}

// permanent marks an error not worth retrying.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so IsPermanent reports true.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err, or one it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}
