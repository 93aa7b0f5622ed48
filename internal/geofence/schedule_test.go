package geofence_test

import (
	"testing"
	"time"

	"vigil/internal/geofence"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load zone %s: %v", name, err)
	}
	return loc
}

func days(ds ...time.Weekday) [7]bool {
	var out [7]bool
	for _, d := range ds {
		out[d] = true
	}
	return out
}

func TestScheduleActiveAt(t *testing.T) {
	london := mustZone(t, "Europe/London")
	newYork := mustZone(t, "America/New_York")
	weekdays := days(time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday)
	office := &geofence.Schedule{Days: weekdays, Start: 8 * time.Hour, End: 18 * time.Hour, Location: london}
	night := &geofence.Schedule{Days: days(time.Friday), Start: 22 * time.Hour, End: 6 * time.Hour, Location: london}
	toMidnight := &geofence.Schedule{Days: days(time.Sunday), Start: 20 * time.Hour, End: 24 * time.Hour, Location: london}
	ny := &geofence.Schedule{Days: weekdays, Start: 9 * time.Hour, End: 17 * time.Hour, Location: newYork}
	// 2026-06-01 and 2026-12-07 are Mondays; London is on BST (UTC+1) in
	// June, GMT in December; New York on EDT (UTC-4) in June.
	utc := func(s string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name string
		s    *geofence.Schedule
		at   time.Time
		want bool
	}{
		{"no schedule", nil, utc("2026-06-06 03:00"), true},
		{"office: Monday 07:59 BST", office, utc("2026-06-01 06:59"), false},
		{"office: Monday 08:00 BST", office, utc("2026-06-01 07:00"), true},
		{"office: Monday 17:59 BST", office, utc("2026-06-01 16:59"), true},
		{"office: Monday 18:00 BST is closed", office, utc("2026-06-01 17:00"), false},
		{"office: Saturday noon", office, utc("2026-06-06 11:00"), false},
		{"office: 07:30 UTC in summer is 08:30 BST", office, utc("2026-06-01 07:30"), true},
		{"office: 07:30 UTC in winter is 07:30 GMT", office, utc("2026-12-07 07:30"), false},
		{"office: 17:30 UTC in winter is 17:30 GMT", office, utc("2026-12-07 17:30"), true},
		{"office: 17:30 UTC in summer is 18:30 BST", office, utc("2026-06-01 17:30"), false},
		{"office: a time given in another zone", office, utc("2026-06-01 07:00").In(newYork), true},
		{"night: Friday 21:59", night, utc("2026-06-05 20:59"), false},
		{"night: Friday 22:00", night, utc("2026-06-05 21:00"), true},
		{"night: Friday 23:30", night, utc("2026-06-05 22:30"), true},
		{"night: Saturday 00:00 (wrapped)", night, utc("2026-06-05 23:00"), true},
		{"night: Saturday 05:59 (wrapped)", night, utc("2026-06-06 04:59"), true},
		{"night: Saturday 06:00 closes", night, utc("2026-06-06 05:00"), false},
		{"night: Saturday 23:00 (Saturday is not a day)", night, utc("2026-06-06 22:00"), false},
		{"night: Friday 03:00 (Thursday is not a day)", night, utc("2026-06-05 02:00"), false},
		{"to midnight: Sunday 23:59", toMidnight, utc("2026-06-07 22:59"), true},
		{"to midnight: Monday 00:00", toMidnight, utc("2026-06-07 23:00"), false},
		{"NY: Monday 09:00 EDT", ny, utc("2026-06-01 13:00"), true},
		{"NY: Monday 08:59 EDT", ny, utc("2026-06-01 12:59"), false},
		{"NY: Monday 02:00 UTC is Sunday 22:00 EDT", ny, utc("2026-06-01 02:00"), false},
		{"NY: Saturday 01:00 UTC is Friday 21:00 EDT", ny, utc("2026-06-06 01:00"), false},
		{"NY: Saturday 20:00 UTC is Friday 16:00 EDT", ny, utc("2026-06-05 20:00"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &geofence.Fence{Schedule: tt.s}
			if got := f.ActiveAt(tt.at); got != tt.want {
				t.Errorf("ActiveAt(%s) = %v, want %v", tt.at.In(london).Format("Mon 2006-01-02 15:04 MST"), got, tt.want)
			}
		})
	}
}

// TestScheduleDST: across the spring-forward hour (London, 29 March 2026,
// 01:00 GMT becomes 02:00 BST) a 01:00–03:00 window keeps its wall-clock
// hours, so it lasts one real hour that night.
func TestScheduleDST(t *testing.T) {
	s := &geofence.Schedule{Days: days(time.Sunday), Start: time.Hour, End: 3 * time.Hour, Location: mustZone(t, "Europe/London")}
	for _, tt := range []struct {
		utc  string
		want bool
	}{
		{"2026-03-29T00:59:00Z", false}, // 00:59 GMT
		{"2026-03-29T01:00:00Z", true},  // 02:00 BST
		{"2026-03-29T01:59:00Z", true},  // 02:59 BST
		{"2026-03-29T02:00:00Z", false}, // 03:00 BST
	} {
		at, _ := time.Parse(time.RFC3339, tt.utc)
		if got := s.ActiveAt(at); got != tt.want {
			t.Errorf("ActiveAt(%s) = %v, want %v", tt.utc, got, tt.want)
		}
	}
}
