package escalation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"vigil/internal/store"
)

// Limits on a rota.
const (
	MaxShifts     = 50
	MaxShiftUsers = 20
)

// rotaName is a rota's name: a slug, safe in a URL and a log line.
var rotaName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidRotaName reports whether name can name a rota.
func ValidRotaName(name string) bool { return rotaName.MatchString(name) }

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"} // by time.Weekday

// RotaDoc is a rota as the API reads and writes it: shifts on the wall
// clock of TimeZone, days as "mon" … "sun", times as "HH:MM". An end at or
// before the start ends the next day.
type RotaDoc struct {
	TimeZone string     `json:"time_zone"`
	Shifts   []ShiftDoc `json:"shifts"`
}

// ShiftDoc is one shift of a RotaDoc.
type ShiftDoc struct {
	Days  []string `json:"days"`
	Start string   `json:"start"`
	End   string   `json:"end"`
	Users []string `json:"users"`
}

// DocOf writes a stored rota's pattern as the API shows it.
func DocOf(r store.Rota) RotaDoc {
	d := RotaDoc{TimeZone: r.TimeZone, Shifts: make([]ShiftDoc, 0, len(r.Shifts))}
	for _, s := range r.Shifts {
		sd := ShiftDoc{Start: clockOf(s.Start), End: clockOf(s.End), Users: s.Users}
		for _, w := range s.Days {
			sd.Days = append(sd.Days, dayNames[w])
		}
		d.Shifts = append(d.Shifts, sd)
	}
	return d
}

func clockOf(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// ParseRota reads a rota's time zone and weekly pattern (strict: unknown
// fields are errors) into r's TimeZone and Shifts. Errors are *FieldError;
// whether the users exist is the caller's to check.
func ParseRota(b []byte) (store.Rota, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d RotaDoc
	if err := dec.Decode(&d); err != nil {
		field := "rota"
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			field = ute.Field
		}
		return store.Rota{}, &FieldError{Field: field, Msg: strings.TrimPrefix(err.Error(), "json: ")}
	}
	if dec.More() {
		return store.Rota{}, &FieldError{Field: "rota", Msg: "one JSON object expected"}
	}
	if _, err := loadZone(d.TimeZone); err != nil {
		return store.Rota{}, &FieldError{"time_zone", "want an IANA time zone such as Europe/London"}
	}
	if len(d.Shifts) > MaxShifts {
		return store.Rota{}, &FieldError{"shifts", fmt.Sprintf("want at most %d shifts", MaxShifts)}
	}
	r := store.Rota{TimeZone: d.TimeZone, Shifts: make([]store.RotaShift, 0, len(d.Shifts))}
	for i, sd := range d.Shifts {
		f := fmt.Sprintf("shifts[%d]", i)
		var s store.RotaShift
		if len(sd.Days) == 0 || len(sd.Days) > 7 {
			return store.Rota{}, &FieldError{f + ".days", "want 1 to 7 days such as \"mon\""}
		}
		for j, name := range sd.Days {
			w := slices.Index(dayNames, name)
			if w < 0 {
				return store.Rota{}, &FieldError{fmt.Sprintf("%s.days[%d]", f, j), "want one of " + strings.Join(dayNames, ", ")}
			}
			if slices.Contains(s.Days, time.Weekday(w)) {
				return store.Rota{}, &FieldError{fmt.Sprintf("%s.days[%d]", f, j), "day given twice"}
			}
			s.Days = append(s.Days, time.Weekday(w))
		}
		var ok bool
		if s.Start, ok = parseClock(sd.Start); !ok {
			return store.Rota{}, &FieldError{f + ".start", "want a time of day such as \"08:00\""}
		}
		if s.End, ok = parseClock(sd.End); !ok {
			return store.Rota{}, &FieldError{f + ".end", "want a time of day such as \"20:00\""}
		}
		if s.Start == s.End {
			return store.Rota{}, &FieldError{f + ".end", "must differ from the start (a 24-hour cover is two shifts)"}
		}
		if len(sd.Users) == 0 || len(sd.Users) > MaxShiftUsers {
			return store.Rota{}, &FieldError{f + ".users", fmt.Sprintf("want 1 to %d user ids", MaxShiftUsers)}
		}
		for j, u := range sd.Users {
			if u == "" || len(u) > 100 {
				return store.Rota{}, &FieldError{fmt.Sprintf("%s.users[%d]", f, j), "want a user id"}
			}
			if slices.Contains(sd.Users[:j], u) {
				return store.Rota{}, &FieldError{fmt.Sprintf("%s.users[%d]", f, j), "user given twice"}
			}
		}
		s.Users = slices.Clone(sd.Users)
		r.Shifts = append(r.Shifts, s)
	}
	return r, nil
}

// parseClock reads "HH:MM" (00:00 to 23:59) as minutes after midnight.
func parseClock(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

func loadZone(name string) (*time.Location, error) {
	// "" and "Local" would mean UTC or the server's zone: a rota names
	// its zone.
	if name == "" || name == "Local" || len(name) > 64 {
		return nil, fmt.Errorf("time zone %q not allowed", name)
	}
	return time.LoadLocation(name)
}

// OnCall returns the users on call on rota r at instant t, in order, each
// once. An override covering t (From ≤ t < To) replaces the weekly
// pattern: the users of every override covering t, by start. Otherwise it
// is the users of every shift covering t on the wall clock of r's zone:
// a shift covers the minutes from its start to its end on each of its
// days, and when it ends at or before its start, up to its end the next
// day. Across a DST change the wall clock rules: a night shift is an hour
// shorter in spring and longer in autumn, and a shift inside the skipped
// hour never covers. Nobody on call is a valid answer (empty, no error).
func OnCall(r store.Rota, t time.Time) ([]string, error) {
	var out []string
	add := func(u string) {
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	for _, o := range r.Overrides {
		if !t.Before(o.From) && t.Before(o.To) {
			add(o.UserID)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	loc, err := loadZone(r.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("rota %s: %w", r.Name, err)
	}
	lt := t.In(loc)
	day, prev := lt.Weekday(), (lt.Weekday()+6)%7
	m := lt.Hour()*60 + lt.Minute()
	for _, s := range r.Shifts {
		var on bool
		if s.End > s.Start {
			on = slices.Contains(s.Days, day) && m >= s.Start && m < s.End
		} else {
			on = (slices.Contains(s.Days, day) && m >= s.Start) || (slices.Contains(s.Days, prev) && m < s.End)
		}
		if on {
			for _, u := range s.Users {
				add(u)
			}
		}
	}
	return out, nil
}
