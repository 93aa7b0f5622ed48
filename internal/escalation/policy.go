package escalation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"vigil/internal/alert"
)

// Channels a recipient can be reached on.
const (
	ChannelConsole = "console" // the organisation's live console feed
	ChannelEmail   = "email"
	ChannelSMS     = "sms"
	ChannelWebhook = "webhook"
)

// DefaultKind names the policy for every alert kind without its own.
const DefaultKind = "*"

// Limits on a policy.
const (
	MaxSteps      = 10
	MaxRecipients = 50
	MinWait       = 10 * time.Second
	MaxWait       = 24 * time.Hour
	MinRepeat     = 10 * time.Second
)

// Policy is an organisation's escalation ladder for one alert kind: steps
// fired in order until someone acknowledges. Each step tells its
// recipients at once, tells them again every Repeat while it waits, and
// after Wait hands on to the next step. When the last step's wait has
// passed the ladder is exhausted: the organisation's console and every
// admin recipient are told, whatever the policy says (an alarm never ends
// silently).
type Policy struct {
	Steps []Step `json:"steps"`
	// Admins are told when the ladder runs out, besides the console.
	Admins []Recipient `json:"admins,omitempty"`
}

// Step is one rung of a ladder.
type Step struct {
	Name       string      `json:"name,omitempty"`
	Recipients []Recipient `json:"recipients"`
	Wait       Duration    `json:"wait"`
	Repeat     Duration    `json:"repeat,omitempty"` // 0: tell once
}

// Recipient is whom to tell and how: an e-mail address, a phone number in
// E.164 form, an https webhook URL, or (console) the organisation's live
// feed, which needs no address. Addresses are personal data.
type Recipient struct {
	Channel string `json:"channel"`
	Address string `json:"address,omitempty"`
	Name    string `json:"name,omitempty"`

	// Instead of an address, whom to reach; resolved to addresses when the
	// step fires, so a policy follows staff changes. Users are reached by
	// e-mail (their sign-in address); contacts by e-mail or SMS.
	User     string `json:"user,omitempty"`     // one user of the organisation, by id
	Role     string `json:"role,omitempty"`     // every enabled member with this role ("supervisor", "admin", …)
	Team     string `json:"team,omitempty"`     // every member of one of the organisation's teams, by id
	Contacts bool   `json:"contacts,omitempty"` // the alert's person's emergency contacts, by priority
	Carers   bool   `json:"carers,omitempty"`   // the carers linked to the alert's person
	Rota     string `json:"rota,omitempty"`     // whoever is on call on the organisation's rota of this name when the step fires
}

// selector reports whether r names people rather than an address.
func (r Recipient) selector() bool {
	return r.User != "" || r.Role != "" || r.Team != "" || r.Contacts || r.Carers || r.Rota != ""
}

// Duration is a time.Duration written as "90s" or "2m" in JSON.
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"90s\" or \"2m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"90s\" or \"2m\"")
	}
	*d = Duration(v)
	return nil
}

// FieldError is a policy error that names the field, e.g.
// "steps[1].recipients[0].address".
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ParsePolicy reads and validates a policy (strict: unknown fields are
// errors). Errors are *FieldError.
func ParsePolicy(b []byte) (Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		field := "policy"
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			field = ute.Field
		}
		return Policy{}, &FieldError{Field: field, Msg: strings.TrimPrefix(err.Error(), "json: ")}
	}
	if dec.More() {
		return Policy{}, &FieldError{Field: "policy", Msg: "one JSON object expected"}
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// Validate checks a policy's limits and every recipient's address.
func (p Policy) Validate() error {
	if len(p.Steps) == 0 || len(p.Steps) > MaxSteps {
		return &FieldError{"steps", fmt.Sprintf("want 1 to %d steps", MaxSteps)}
	}
	for i, s := range p.Steps {
		f := fmt.Sprintf("steps[%d]", i)
		w, r := time.Duration(s.Wait), time.Duration(s.Repeat)
		if w < MinWait || w > MaxWait {
			return &FieldError{f + ".wait", fmt.Sprintf("%s: want %s to %s", w, MinWait, MaxWait)}
		}
		if r != 0 && (r < MinRepeat || r >= w) {
			return &FieldError{f + ".repeat", fmt.Sprintf("%s: want 0 (once) or %s up to less than the wait", r, MinRepeat)}
		}
		if len(s.Recipients) == 0 || len(s.Recipients) > MaxRecipients {
			return &FieldError{f + ".recipients", fmt.Sprintf("want 1 to %d recipients", MaxRecipients)}
		}
		if err := validRecipients(f+".recipients", s.Recipients); err != nil {
			return err
		}
	}
	if len(p.Admins) > MaxRecipients {
		return &FieldError{"admins", fmt.Sprintf("want at most %d recipients", MaxRecipients)}
	}
	return validRecipients("admins", p.Admins)
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// roles a Role recipient may name (the roles of internal/auth).
var recipientRoles = []string{"admin", "provider", "supervisor", "responder", "auditor", "worker", "carer"}

func validRecipients(field string, rs []Recipient) error {
	for i, r := range rs {
		f := fmt.Sprintf("%s[%d]", field, i)
		if r.selector() {
			n := 0
			for _, set := range []bool{r.User != "", r.Role != "", r.Team != "", r.Contacts, r.Carers, r.Rota != ""} {
				if set {
					n++
				}
			}
			switch {
			case n > 1:
				return &FieldError{f, "name one of user, role, team, rota, contacts or carers"}
			case r.Address != "":
				return &FieldError{f + ".address", "give an address or whom to reach (user, role, team, rota, contacts, carers), not both"}
			case r.Rota != "" && !ValidRotaName(r.Rota):
				return &FieldError{f + ".rota", "want a rota name (lower-case letters, digits, - and _)"}
			case r.Rota != "" && r.Channel != ChannelEmail && r.Channel != "":
				return &FieldError{f + ".channel", "whoever is on call is reached by email (their sign-in address)"}
			case r.Rota != "":
				// Valid; whether the rota exists is asked when the step fires.
			case r.Role != "" && !slices.Contains(recipientRoles, r.Role):
				return &FieldError{f + ".role", "want one of " + strings.Join(recipientRoles, ", ")}
			case len(r.User) > 100 || len(r.Team) > 100:
				return &FieldError{f, "id too long"}
			case r.Contacts && r.Channel != ChannelEmail && r.Channel != ChannelSMS:
				return &FieldError{f + ".channel", "contacts are reached by email or sms"}
			case !r.Contacts && r.Channel != ChannelEmail:
				return &FieldError{f + ".channel", "users are reached by email (their sign-in address)"}
			}
			continue
		}
		switch r.Channel {
		case ChannelConsole:
			if r.Address != "" {
				return &FieldError{f + ".address", "the console needs no address (it is the organisation's feed)"}
			}
		case ChannelEmail:
			a, err := mail.ParseAddress(r.Address)
			if err != nil || a.Address != r.Address {
				return &FieldError{f + ".address", "want a plain e-mail address such as ann@example.org"}
			}
		case ChannelSMS:
			if !e164.MatchString(r.Address) {
				return &FieldError{f + ".address", "want a phone number in E.164 form such as +447700900123"}
			}
		case ChannelWebhook:
			u, err := url.Parse(r.Address)
			if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
				return &FieldError{f + ".address", "want an https URL without credentials or fragment"}
			}
		default:
			return &FieldError{f + ".channel", fmt.Sprintf("%q: want one of console, email, sms, webhook", r.Channel)}
		}
		if len(r.Name) > 200 {
			return &FieldError{f + ".name", "at most 200 characters"}
		}
	}
	return nil
}

// ValidKind reports whether kind names an alert kind or DefaultKind.
func ValidKind(kind string) bool {
	return kind == DefaultKind || slices.Contains(alert.Kinds(), kind)
}

// DefaultPolicy is the ladder of an organisation that configured none for
// kind: the console feed, repeated until someone acknowledges, then the
// console again as escalated. Life-threatening kinds repeat faster.
// Organisations add e-mail, SMS and webhook recipients with their own
// policies.
func DefaultPolicy(kind string) Policy {
	console := []Recipient{{Channel: ChannelConsole}}
	switch kind {
	case alert.KindSOS, alert.KindDuress, alert.KindFall, alert.KindManDown:
		return Policy{Steps: []Step{
			{Name: "supervisors", Recipients: console, Wait: Duration(time.Minute), Repeat: Duration(20 * time.Second)},
			{Name: "escalated", Recipients: console, Wait: Duration(2 * time.Minute), Repeat: Duration(30 * time.Second)},
		}}
	default:
		return Policy{Steps: []Step{
			{Name: "supervisors", Recipients: console, Wait: Duration(5 * time.Minute), Repeat: Duration(time.Minute)},
			{Name: "escalated", Recipients: console, Wait: Duration(10 * time.Minute), Repeat: Duration(2 * time.Minute)},
		}}
	}
}

// Point is one moment of a ladder: step Step's repeat Attempt, at At.
// Step == len(Steps) is the moment the ladder runs out.
type Point struct {
	Step, Attempt int
	At            time.Time
}

// Exhausted reports whether pt is the end of p's ladder.
func (p Policy) Exhausted(pt Point) bool { return pt.Step >= len(p.Steps) }

// First is the ladder's first moment for an alert raised at origin.
func (p Policy) First(origin time.Time) Point { return Point{At: origin} }

// Next is the moment after pt. When several moments have passed by now
// (the server was down), the repeats of one step collapse into the latest
// that has passed, but a step is never skipped: every step's recipients
// are told, late.
func (p Policy) Next(pt Point, origin, now time.Time) Point {
	if p.Exhausted(pt) {
		return pt
	}
	start := origin
	for i := 0; i < pt.Step; i++ {
		start = start.Add(time.Duration(p.Steps[i].Wait))
	}
	s := p.Steps[pt.Step]
	end := start.Add(time.Duration(s.Wait))
	if r := time.Duration(s.Repeat); r > 0 {
		k := pt.Attempt + 1
		if passed := int(now.Sub(start) / r); passed > k {
			k = passed // collapse repeats missed while down
		}
		if at := start.Add(time.Duration(k) * r); at.Before(end) {
			return Point{Step: pt.Step, Attempt: k, At: at}
		}
	}
	return Point{Step: pt.Step + 1, At: end}
}
