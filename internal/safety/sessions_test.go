package safety_test

import (
	"testing"
	"time"

	"vigil/internal/safety"
	"vigil/internal/store"
)

func TestSessionDeadlines(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	base := store.Session{State: store.SessionActive, StartedAt: t0, LastCheckin: t0, ExpectedEnd: m(120), Grace: 5 * time.Minute}
	with := func(f func(s *store.Session)) store.Session { s := base; f(&s); return s }
	for _, tc := range []struct {
		name string
		s    store.Session
		want safety.Deadlines
	}{
		{"no check-ins", base, safety.Deadlines{Overrun: m(125)}},
		{"every 30m", with(func(s *store.Session) { s.CheckinInterval = 30 * time.Minute }),
			safety.Deadlines{Reminder: m(25), CheckinDue: m(30), Missed: m(35), Overrun: m(125)}},
		{"after a check-in at 50m", with(func(s *store.Session) { s.CheckinInterval = 30 * time.Minute; s.LastCheckin = m(50) }),
			safety.Deadlines{Reminder: m(75), CheckinDue: m(80), Missed: m(85), Overrun: m(125)}},
		{"next due at or after the end: only the end", with(func(s *store.Session) { s.CheckinInterval = 30 * time.Minute; s.LastCheckin = m(90) }),
			safety.Deadlines{Overrun: m(125)}},
		{"interval shorter than the reminder: no reminder", with(func(s *store.Session) { s.CheckinInterval = 3 * time.Minute }),
			safety.Deadlines{CheckinDue: m(3), Missed: m(8), Overrun: m(125)}},
		{"zero last check-in counts from the start", with(func(s *store.Session) { s.CheckinInterval = 30 * time.Minute; s.LastCheckin = time.Time{} }),
			safety.Deadlines{Reminder: m(25), CheckinDue: m(30), Missed: m(35), Overrun: m(125)}},
		{"ended", with(func(s *store.Session) { s.State = store.SessionEnded }), safety.Deadlines{}},
	} {
		if got := safety.SessionDeadlines(tc.s, 5*time.Minute); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
