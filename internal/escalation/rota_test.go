package escalation_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // Europe/London on machines without a zone database

	"vigil/internal/escalation"
	"vigil/internal/store"
)

func mustParseRota(t *testing.T, doc string) store.Rota {
	t.Helper()
	r, err := escalation.ParseRota([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestOnCall: who is on call is read on the rota's wall clock, through
// both of Europe/London's DST changes, across midnight and the week's
// end, with overrides replacing the pattern while they last.
func TestOnCall(t *testing.T) {
	r := mustParseRota(t, `{"time_zone": "Europe/London", "shifts": [
	  {"days": ["sat"], "start": "22:00", "end": "06:00", "users": ["night"]},
	  {"days": ["sun"], "start": "01:00", "end": "02:00", "users": ["gap"]},
	  {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00", "users": ["day", "deputy"]},
	  {"days": ["sun"], "start": "23:00", "end": "01:00", "users": ["late", "day"]}
	]}`)
	r.Name = "main"
	r.Overrides = []store.RotaOverride{ // as the store gives them: by start
		{ID: "o1", UserID: "cover", From: utc("2026-12-01T08:00:00Z"), To: utc("2026-12-01T10:00:00Z")},
		{ID: "o2", UserID: "swap", From: utc("2026-12-01T09:30:00Z"), To: utc("2026-12-01T11:00:00Z")},
	}
	cases := []struct {
		at   string
		want []string
	}{
		// Spring forward, Sunday 28 March 2027: 01:00 GMT becomes 02:00 BST.
		{"2027-03-27T21:59:00Z", nil},
		{"2027-03-27T22:00:00Z", []string{"night"}},
		{"2027-03-28T00:59:00Z", []string{"night"}}, // 00:59 GMT, Sunday
		{"2027-03-28T01:00:00Z", []string{"night"}}, // 02:00 BST: the gap shift's hour never came
		{"2027-03-28T04:59:00Z", []string{"night"}}, // 05:59 BST
		{"2027-03-28T05:00:00Z", nil},               // 06:00 BST: the night was 7 hours
		// Fall back, Sunday 25 October 2026: 02:00 BST becomes 01:00 GMT.
		{"2026-10-24T20:59:00Z", nil}, // 21:59 BST, Saturday
		{"2026-10-24T21:00:00Z", []string{"night"}},
		{"2026-10-25T00:30:00Z", []string{"night", "gap"}}, // 01:30 BST
		{"2026-10-25T01:30:00Z", []string{"night", "gap"}}, // 01:30 GMT, the second time
		{"2026-10-25T02:00:00Z", []string{"night"}},
		{"2026-10-25T05:59:00Z", []string{"night"}},
		{"2026-10-25T06:00:00Z", nil}, // the night was 9 hours
		// Weekdays, and Sunday night into Monday (the week wraps).
		{"2026-11-30T08:59:59Z", nil},
		{"2026-11-30T09:00:00Z", []string{"day", "deputy"}},
		{"2026-11-30T16:59:59Z", []string{"day", "deputy"}},
		{"2026-11-30T17:00:00Z", nil},
		{"2026-11-29T22:59:00Z", nil},
		{"2026-11-29T23:00:00Z", []string{"late", "day"}},
		{"2026-11-30T00:59:00Z", []string{"late", "day"}},
		{"2026-11-30T01:00:00Z", nil},
		{"2026-12-05T23:30:00Z", []string{"night"}}, // Saturday night, not Sunday's late shift
		// Overrides replace the pattern; overlapping ones, by start.
		{"2026-12-01T07:59:00Z", nil},
		{"2026-12-01T08:00:00Z", []string{"cover"}},
		{"2026-12-01T09:00:00Z", []string{"cover"}},
		{"2026-12-01T09:45:00Z", []string{"cover", "swap"}},
		{"2026-12-01T10:00:00Z", []string{"swap"}},
		{"2026-12-01T11:00:00Z", []string{"day", "deputy"}},
		{"2026-12-01T17:00:00Z", nil},
	}
	for _, c := range cases {
		got, err := escalation.OnCall(r, utc(c.at))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("OnCall(%s) = %q, want %q", c.at, got, c.want)
		}
	}
	// A zone that does not load is an error, not nobody on call.
	r.TimeZone = "Bad/Zone"
	if _, err := escalation.OnCall(r, utc("2026-11-30T09:00:00Z")); err == nil {
		t.Error("OnCall with an unknown zone: no error")
	}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseRotaNamesTheField(t *testing.T) {
	shift := func(s string) string { return `{"time_zone":"Europe/London","shifts":[` + s + `]}` }
	for _, c := range []struct{ name, in, field string }{
		{"not json", `{"time_zone":`, "rota"},
		{"unknown field", `{"time_zone":"UTC","colour":"red"}`, "rota"},
		{"two objects", `{"time_zone":"UTC"}{}`, "rota"},
		{"no zone", `{"shifts":[]}`, "time_zone"},
		{"bad zone", `{"time_zone":"Mars/Olympus"}`, "time_zone"},
		{"local zone", `{"time_zone":"Local"}`, "time_zone"},
		{"no days", shift(`{"days":[],"start":"08:00","end":"09:00","users":["u1"]}`), "shifts[0].days"},
		{"bad day", shift(`{"days":["mon","moon"],"start":"08:00","end":"09:00","users":["u1"]}`), "shifts[0].days[1]"},
		{"day twice", shift(`{"days":["mon","mon"],"start":"08:00","end":"09:00","users":["u1"]}`), "shifts[0].days[1]"},
		{"bad start", shift(`{"days":["mon"],"start":"8am","end":"09:00","users":["u1"]}`), "shifts[0].start"},
		{"24:00", shift(`{"days":["mon"],"start":"08:00","end":"24:00","users":["u1"]}`), "shifts[0].end"},
		{"start is end", shift(`{"days":["mon"],"start":"08:00","end":"08:00","users":["u1"]}`), "shifts[0].end"},
		{"no users", shift(`{"days":["mon"],"start":"08:00","end":"09:00","users":[]}`), "shifts[0].users"},
		{"user twice", shift(`{"days":["mon"],"start":"08:00","end":"09:00","users":["u1","u1"]}`), "shifts[0].users[1]"},
		{"empty user", shift(`{"days":["mon"],"start":"08:00","end":"09:00","users":[""]}`), "shifts[0].users[0]"},
		{"wrong type", `{"time_zone":"UTC","shifts":[{"days":"mon"}]}`, "shifts.days"},
	} {
		_, err := escalation.ParseRota([]byte(c.in))
		var fe *escalation.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: %v, want a field error on %s", c.name, err, c.field)
		}
	}
	// What is parsed is written back the same.
	r := mustParseRota(t, shift(`{"days":["sun","sat"],"start":"22:30","end":"06:15","users":["u2","u1"]}`))
	d := escalation.DocOf(r)
	if d.TimeZone != "Europe/London" || len(d.Shifts) != 1 || !slices.Equal(d.Shifts[0].Days, []string{"sun", "sat"}) ||
		d.Shifts[0].Start != "22:30" || d.Shifts[0].End != "06:15" || !slices.Equal(d.Shifts[0].Users, []string{"u2", "u1"}) {
		t.Errorf("DocOf = %+v", d)
	}
}

func FuzzParseRota(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/rotas/*.json")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := escalation.ParseRota(b)
		if err != nil {
			var fe *escalation.FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		// A parsed rota answers for any instant, and writes back to
		// itself.
		for _, at := range []time.Time{time.Unix(0, 0), time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC)} {
			if _, err := escalation.OnCall(r, at); err != nil {
				t.Fatalf("OnCall: %v", err)
			}
		}
		again, err := escalation.ParseRota(mustJSON(t, escalation.DocOf(r)))
		if err != nil || !slices.EqualFunc(again.Shifts, r.Shifts, func(a, b store.RotaShift) bool {
			return slices.Equal(a.Days, b.Days) && a.Start == b.Start && a.End == b.End && slices.Equal(a.Users, b.Users)
		}) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, r)
		}
	})
}

func TestRotaRecipientValidation(t *testing.T) {
	for _, c := range []struct{ policy, field string }{
		{`{"steps":[{"recipients":[{"rota":"Night Shift"}],"wait":"60s"}]}`, "steps[0].recipients[0].rota"},
		{`{"steps":[{"recipients":[{"channel":"sms","rota":"night"}],"wait":"60s"}]}`, "steps[0].recipients[0].channel"},
		{`{"steps":[{"recipients":[{"rota":"night","role":"admin"}],"wait":"60s"}]}`, "steps[0].recipients[0]"},
		{`{"steps":[{"recipients":[{"rota":"night","address":"a@example.org"}],"wait":"60s"}]}`, "steps[0].recipients[0].address"},
	} {
		_, err := escalation.ParsePolicy([]byte(c.policy))
		var fe *escalation.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: %v, want a field error on %s", c.policy, err, c.field)
		}
	}
	for _, ok := range []string{
		`{"steps":[{"recipients":[{"rota":"night"}],"wait":"60s"}]}`,
		`{"steps":[{"recipients":[{"channel":"email","rota":"night-2"}],"wait":"60s"}]}`,
	} {
		if _, err := escalation.ParsePolicy([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// seedRotas gives acme users and two rotas on London time: "weekend",
// which hands over from Ann, Dan (disabled) and Olu to Lee at 10:01 on
// Sundays, and "weekday", nobody's on a Sunday.
func seedRotas(t *testing.T, w *world) {
	t.Helper()
	ctx := context.Background()
	st := w.st
	for _, u := range []struct{ id, email, person string }{
		{"u-ann", "ann@example.org", "p1"}, // the wearer herself
		{"u-dan", "dan@example.org", ""},
		{"u-on", "on@example.org", ""},
		{"u-later", "later@example.org", ""},
	} {
		if err := st.CreateUser(ctx, store.User{ID: u.id, Email: u.email, Name: u.id, PersonID: u.person, CreatedAt: w.t0}); err != nil {
			t.Fatal(err)
		}
		if err := st.PutMembership(ctx, store.Membership{UserID: u.id, OrgID: "acme", Role: store.RoleResponder, CreatedAt: w.t0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetUserDisabled(ctx, "u-dan", w.t0); err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string]string{
		"weekend": `{"time_zone":"Europe/London","shifts":[
		  {"days":["sun"],"start":"08:00","end":"10:01","users":["u-ann","u-dan","u-on"]},
		  {"days":["sun"],"start":"10:01","end":"20:00","users":["u-later"]}]}`,
		"weekday": `{"time_zone":"Europe/London","shifts":[{"days":["mon","tue","wed","thu","fri"],"start":"09:00","end":"17:00","users":["u-later"]}]}`,
	} {
		r := mustParseRota(t, doc)
		r.OrgID, r.Name = "acme", name
		if err := st.PutRota(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRotaRecipients: a rota step reaches whoever is on call when it
// fires (each reminder asks again, so a handover mid-step is followed),
// leaves out disabled users; a step whose rota has nobody on call, or
// names a rota that does not exist, tells its other recipients and the
// ladder goes on to the end broadcast.
func TestRotaRecipients(t *testing.T) {
	w := newWorld(t) // t0: Sunday 29 November 2026, 10:00 in London
	seedRotas(t, w)
	policy := `{"steps": [
	  {"recipients": [{"rota": "weekend"}], "wait": "2m", "repeat": "30s"},
	  {"recipients": [{"rota": "weekday"}, {"rota": "gone"}, {"channel": "email", "address": "sue@example.org"}], "wait": "60s"}
	], "admins": [{"channel": "email", "address": "boss@example.org"}]}`
	if _, err := escalation.ParsePolicy([]byte(policy)); err != nil {
		t.Fatal(err)
	}
	if err := w.st.PutEscalationPolicy(context.Background(), "acme", "sos", policy, w.t0); err != nil {
		t.Fatal(err)
	}
	w.raise("a1")
	want := []string{"0s email:ann@example.org raised 0/0", "0s email:on@example.org raised 0/0"}
	w.want("those on call at 10:00, not the disabled one", want...)
	w.settled("a1", 0, 1)
	w.at(30 * time.Second)
	want = append(want, "30s email:ann@example.org reminder 0/1", "30s email:on@example.org reminder 0/1")
	w.want("a reminder at 10:00:30", want...)
	w.settled("a1", 0, 2)
	w.at(60 * time.Second)
	want = append(want, "1m0s email:later@example.org reminder 0/2")
	w.want("after the 10:01 handover, the next one", want...)
	w.settled("a1", 0, 3)
	w.at(90 * time.Second)
	w.settled("a1", 1, 0)
	w.at(2 * time.Minute)
	want = append(want, "1m30s email:later@example.org reminder 0/3", "2m0s email:sue@example.org reminder 1/0")
	w.want("step 2: nobody on the weekday rota, no rota 'gone', the address still told", want...)
	w.settled("a1", 2, 0)
	w.at(3 * time.Minute)
	want = append(want, "3m0s console:acme exhausted 2/0", "3m0s email:boss@example.org exhausted 2/0")
	w.want("the ladder's end broadcast", want...)
	a, err := w.st.GetAlert(context.Background(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	var gaps []string
	for _, e := range a.Timeline {
		if e.Action == "nobody_on_call" {
			gaps = append(gaps, e.At.Sub(w.t0).String()+" "+e.Detail)
		}
	}
	if want := []string{"2m0s nobody on call on rota weekday"}; !slices.Equal(gaps, want) {
		t.Errorf("timeline gaps %q, want %q", gaps, want)
	}
}

// TestRotaRecipientsSkipTheWearerOnDuress: whoever holds the wearer's
// phone must not learn of a duress alert, even on call.
func TestRotaRecipientsSkipTheWearerOnDuress(t *testing.T) {
	w := newWorld(t)
	seedRotas(t, w)
	ctx := context.Background()
	if err := w.st.PutEscalationPolicy(ctx, "acme", "duress", `{"steps":[{"recipients":[{"rota":"weekend"}],"wait":"60s"}]}`, w.t0); err != nil {
		t.Fatal(err)
	}
	now := w.clk.Now()
	a, _, err := w.st.RaiseAlert(ctx, store.Alert{ID: "d1", OrgID: "acme", DeviceID: "d1", PersonID: "p1", Kind: "duress", Severity: "critical",
		State: store.AlertRaised, DedupKey: "duress:d1", RaisedAt: now, CauseTime: now, Duress: true},
		store.AlertEntry{At: now, Actor: "device:d1", Action: "raised", Cause: "ev:duress"})
	if err != nil {
		t.Fatal(err)
	}
	w.eng.Observe(a)
	w.want("only the other one on call", "0s email:on@example.org raised 0/0")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
