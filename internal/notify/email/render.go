package email

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"vigil/internal/notify"
)

// view is what the templates see. Every string is plain text: the HTML
// template escapes it, the text template prints it as is.
type view struct {
	Subject  string
	Headline string // e.g. "REMINDER 2: SOS for Ann Example"
	Event    string // the event's label: "Raised", "Reminder 2", "Cancelled", …
	Kind     string // "SOS", "Fall", "Missed check-in", …
	Severity string
	State    string
	Person   string
	Note     string
	Detail   string
	AckedBy  string
	Step     int // 1-based for people
	Attempt  int

	RaisedUTC   string // "2026-01-02 10:02:03 UTC"
	RaisedLocal string // "11:02:03 CET (Europe/Berlin)", "" without a zone

	Position *positionView

	ConsoleURL, MapURL, AckURL string // "" when absent or not http(s)

	Urgent bool // raised, reminder, exhausted
}

type positionView struct {
	LatLon   string // "51.507350, -0.127760"
	Accuracy string // "±12 m", "" when unknown
	FixUTC   string // "10:01:40 UTC", "" when unknown
	FixAge   string // "2m05s", "" when unknown
}

func (n *Notifier) view(m notify.Message, now time.Time) view {
	v := view{
		Kind:     kindLabel(m.Kind),
		Severity: oneLine(m.Severity, 40),
		State:    oneLine(m.State, 40),
		Person:   oneLine(m.PersonName, 120),
		Note:     strings.TrimSpace(m.Note),
		Detail:   strings.TrimSpace(m.Detail),
		AckedBy:  oneLine(m.AckedBy, 120),
		Step:     m.Step + 1,
		Attempt:  m.Attempt,

		ConsoleURL: linkOrEmpty(m.ConsoleURL),
		MapURL:     linkOrEmpty(m.MapURL),
		AckURL:     linkOrEmpty(m.AckURL),
	}
	if v.Person == "" {
		v.Person = "unknown person"
	}
	prefix, label := eventLabels(m.Event, m.Attempt)
	v.Event = label
	switch m.Event {
	case notify.EventRaised, notify.EventReminder, notify.EventExhausted:
		v.Urgent = true
	}
	raised := "raised time unknown"
	if !m.RaisedAt.IsZero() {
		utc := m.RaisedAt.UTC()
		raised = "raised " + utc.Format("15:04:05") + " UTC"
		v.RaisedUTC = utc.Format("Mon 2 Jan 2006 15:04:05") + " UTC"
		if loc := n.cfg.Location; loc != nil && loc != time.UTC {
			l := m.RaisedAt.In(loc)
			v.RaisedLocal = fmt.Sprintf("%s %s (%s)", l.Format("Mon 2 Jan 2006 15:04:05"), l.Format("MST"), loc.String())
		}
	}
	subjectPerson := oneLine(m.PersonName, 60)
	if subjectPerson == "" {
		subjectPerson = "unknown person"
	}
	parts := []string{"[Vigil]"}
	if prefix != "" {
		parts = append(parts, prefix, "—")
	}
	parts = append(parts, v.Kind, "—", subjectPerson, "—", raised)
	v.Subject = strings.Join(parts, " ")
	if prefix != "" {
		v.Headline = prefix + ": " + v.Kind + " for " + v.Person
	} else {
		v.Headline = v.Kind + " for " + v.Person
	}
	if p := m.Position; p != nil && validCoord(p.Lat, 90) && validCoord(p.Lon, 180) {
		pv := &positionView{LatLon: strconv.FormatFloat(p.Lat, 'f', 6, 64) + ", " + strconv.FormatFloat(p.Lon, 'f', 6, 64)}
		if p.AccuracyM > 0 && !math.IsInf(p.AccuracyM, 0) && !math.IsNaN(p.AccuracyM) {
			pv.Accuracy = "±" + strconv.FormatFloat(math.Round(p.AccuracyM), 'f', 0, 64) + " m"
		}
		if !p.At.IsZero() {
			pv.FixUTC = p.At.UTC().Format("15:04:05") + " UTC"
			age := now.Sub(p.At)
			if age < 0 {
				age = 0
			}
			pv.FixAge = age.Round(time.Second).String()
		}
		v.Position = pv
	}
	return v
}

func validCoord(f, limit float64) bool {
	return !math.IsNaN(f) && f >= -limit && f <= limit
}

// eventLabels gives the subject prefix ("" for a first alarm) and the
// body's label of an event.
func eventLabels(e notify.Event, attempt int) (prefix, label string) {
	switch e {
	case notify.EventRaised:
		return "", "Raised"
	case notify.EventReminder:
		// Attempt 0 is the first call of a step, so attempt n is reminder n.
		if attempt > 0 {
			return "REMINDER " + strconv.Itoa(attempt), "Reminder " + strconv.Itoa(attempt)
		}
		return "REMINDER", "Reminder"
	case notify.EventCancelled:
		return "CANCELLED", "Cancelled by the wearer: stand down"
	case notify.EventAcked:
		return "ACKNOWLEDGED", "Acknowledged"
	case notify.EventResolved:
		return "RESOLVED", "Resolved"
	case notify.EventExhausted:
		return "UNANSWERED", "Nobody acknowledged: the escalation ladder ran out"
	}
	s := strings.ToUpper(safeToken(string(e)))
	return s, s
}

// kindLabel names an alert kind for people.
func kindLabel(kind string) string {
	switch kind {
	case "sos":
		return "SOS"
	case "fall":
		return "Fall"
	case "missed_checkin":
		return "Missed check-in"
	case "":
		return "Alert"
	}
	s := strings.ReplaceAll(oneLine(kind, 40), "_", " ")
	r, size := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[size:]
}

// oneLine collapses control characters and runs of spaces (no header or
// subject injection, no fake lines) and cuts s to max runes.
func oneLine(s string, max int) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range strings.TrimSpace(s) {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == utf8.RuneError {
			space = true
			continue
		}
		if n >= max {
			b.WriteString("…")
			break
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
			n++
		}
		space = false
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// linkOrEmpty passes an absolute http(s) URL through unchanged and drops
// anything else. It never rewrites a link.
func linkOrEmpty(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\r\n\"'<>\\") {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
		return ""
	}
	return s
}
