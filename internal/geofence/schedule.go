package geofence

import (
	"fmt"
	"time"
)

// Schedule limits a fence to a daily window of local wall-clock time on
// some days of the week, in an IANA time zone.
//
// The window opens at Start and closes at End (exclusive). When End is
// before Start the window wraps past midnight and belongs to the day it
// opens on: Days {Friday}, 22:00–06:00 is active from Friday 22:00 to
// Saturday 06:00. Times are wall-clock times in Location, so across a
// daylight-saving change the window keeps its local hours (and a
// fall-back hour inside the window is covered twice).
type Schedule struct {
	// Days are the days a window opens on, indexed by time.Weekday
	// (Sunday = 0).
	Days [7]bool
	// Start is the local time of day the window opens: whole minutes in
	// [0, 24h).
	Start time.Duration
	// End is the local time of day it closes: whole minutes in (0, 24h],
	// different from Start. 24h is midnight at the end of the day.
	End time.Duration
	// Location is the time zone of Start and End; required.
	Location *time.Location
}

// ActiveAt reports whether t falls in one of the schedule's windows. A nil
// schedule is always active.
func (s *Schedule) ActiveAt(t time.Time) bool {
	if s == nil {
		return true
	}
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	tod := time.Duration(lt.Hour())*time.Hour + time.Duration(lt.Minute())*time.Minute +
		time.Duration(lt.Second())*time.Second + time.Duration(lt.Nanosecond())
	wd := lt.Weekday()
	if s.Start < s.End {
		return s.Days[wd] && tod >= s.Start && tod < s.End
	}
	// Wraps midnight: the evening part of today's window, or the morning
	// part of yesterday's.
	return (s.Days[wd] && tod >= s.Start) || (s.Days[(wd+6)%7] && tod < s.End)
}

func (s *Schedule) validate() *Error {
	some := false
	for _, d := range s.Days {
		some = some || d
	}
	switch {
	case !some:
		return &Error{Feature: -1, Field: "properties.schedule.days", Msg: "no day is active"}
	case s.Start < 0 || s.Start >= 24*time.Hour || s.Start%time.Minute != 0:
		return &Error{Feature: -1, Field: "properties.schedule.start", Msg: `must be a time "HH:MM" from 00:00 to 23:59`}
	case s.End <= 0 || s.End > 24*time.Hour || s.End%time.Minute != 0:
		return &Error{Feature: -1, Field: "properties.schedule.end", Msg: `must be a time "HH:MM" from 00:01 to 24:00`}
	case s.Start == s.End:
		return &Error{Feature: -1, Field: "properties.schedule.end", Msg: "must differ from start (00:00 to 24:00 is the whole day)"}
	case s.Location == nil:
		return &Error{Feature: -1, Field: "properties.schedule.tz", Msg: "required"}
	}
	if n := s.Location.String(); n == "Local" || n == "" {
		return &Error{Feature: -1, Field: "properties.schedule.tz", Msg: "must be an IANA time zone name"}
	}
	return nil
}

var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// marshalOrder lists days Monday first, as people write them.
var marshalOrder = [7]time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}

func parseDay(s string) (time.Weekday, bool) {
	for i, n := range dayNames {
		if s == n {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// parseClock parses "HH:MM"; "24:00" only if allow24.
func parseClock(s string, allow24 bool) (time.Duration, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if m > 59 || h > 24 || (h == 24 && (m != 0 || !allow24)) {
		return 0, false
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, true
}

func formatClock(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
}
