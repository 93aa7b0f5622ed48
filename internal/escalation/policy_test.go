package escalation_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/internal/alert"
	"vigil/internal/escalation"
)

func TestParsePolicyNamesTheField(t *testing.T) {
	step := func(recipients string) string {
		return `{"steps":[{"recipients":[` + recipients + `],"wait":"1m"}]}`
	}
	cases := []struct{ name, in, field string }{
		{"empty", `{}`, "steps"},
		{"not json", `{"steps":`, "policy"},
		{"unknown field", `{"steps":[],"colour":"red"}`, "policy"},
		{"two objects", step(`{"channel":"console"}`) + `{}`, "policy"},
		{"bad wait", `{"steps":[{"recipients":[{"channel":"console"}],"wait":"soon"}]}`, "policy"},
		{"short wait", `{"steps":[{"recipients":[{"channel":"console"}],"wait":"1s"}]}`, "steps[0].wait"},
		{"repeat not below wait", `{"steps":[{"recipients":[{"channel":"console"}],"wait":"1m","repeat":"1m"}]}`, "steps[0].repeat"},
		{"no recipients", step(``), "steps[0].recipients"},
		{"unknown channel", step(`{"channel":"pager","address":"x"}`), "steps[0].recipients[0].channel"},
		{"console with address", step(`{"channel":"console","address":"x"}`), "steps[0].recipients[0].address"},
		{"bad email", step(`{"channel":"email","address":"Ann <ann@example.org>"}`), "steps[0].recipients[0].address"},
		{"bad phone", step(`{"channel":"sms","address":"07700 900123"}`), "steps[0].recipients[0].address"},
		{"http webhook", step(`{"channel":"webhook","address":"http://example.org/hook"}`), "steps[0].recipients[0].address"},
		{"webhook with credentials", step(`{"channel":"webhook","address":"https://u:p@example.org/hook"}`), "steps[0].recipients[0].address"},
		{"bad admin", `{"steps":[{"recipients":[{"channel":"console"}],"wait":"1m"}],"admins":[{"channel":"sms","address":"1"}]}`, "admins[0].address"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := escalation.ParsePolicy([]byte(c.in))
			var fe *escalation.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Errorf("ParsePolicy(%s) = %v, want an error naming %s", c.in, err, c.field)
			}
		})
	}
	p, err := escalation.ParsePolicy([]byte(ladder))
	if err != nil {
		t.Fatalf("the test ladder: %v", err)
	}
	if len(p.Steps) != 2 || time.Duration(p.Steps[0].Repeat) != 20*time.Second || p.Admins[0].Name != "Boss" {
		t.Errorf("parsed %+v", p)
	}
}

func TestDefaultPoliciesAreValid(t *testing.T) {
	for _, k := range append(alert.Kinds(), escalation.DefaultKind) {
		if err := escalation.DefaultPolicy(k).Validate(); err != nil {
			t.Errorf("default policy for %s: %v", k, err)
		}
		if !escalation.ValidKind(k) {
			t.Errorf("%s is not a valid kind", k)
		}
	}
	if escalation.ValidKind("tea") {
		t.Error("tea is a kind")
	}
}

// TestNext walks a ladder (step 1: wait 60 s, repeat 20 s; step 2: wait
// 2 min, no repeat) from each moment, on time and after downtime.
func TestNext(t *testing.T) {
	p, err := escalation.ParsePolicy([]byte(ladder))
	if err != nil {
		t.Fatal(err)
	}
	o := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	s := func(d time.Duration) time.Time { return o.Add(d) }
	cases := []struct {
		name     string
		from     escalation.Point
		now      time.Time
		want     escalation.Point
		exhausts bool
	}{
		{"first repeat", escalation.Point{0, 0, s(0)}, s(0), escalation.Point{0, 1, s(20 * time.Second)}, false},
		{"second repeat", escalation.Point{0, 1, s(20 * time.Second)}, s(20 * time.Second), escalation.Point{0, 2, s(40 * time.Second)}, false},
		{"repeat would reach the wait: next step", escalation.Point{0, 2, s(40 * time.Second)}, s(40 * time.Second), escalation.Point{1, 0, s(time.Minute)}, false},
		{"a step without repeats waits it out", escalation.Point{1, 0, s(time.Minute)}, s(time.Minute), escalation.Point{2, 0, s(3 * time.Minute)}, true},
		{"down 30 s: missed repeats collapse", escalation.Point{0, 0, s(0)}, s(45 * time.Second), escalation.Point{0, 2, s(40 * time.Second)}, false},
		{"down past the step: the next step, not skipped", escalation.Point{0, 0, s(0)}, s(10 * time.Minute), escalation.Point{1, 0, s(time.Minute)}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := p.Next(c.from, o, c.now)
			if got.Step != c.want.Step || got.Attempt != c.want.Attempt || !got.At.Equal(c.want.At) || p.Exhausted(got) != c.exhausts {
				t.Errorf("Next(%+v, now %v) = %+v (exhausted %v), want %+v (%v)", c.from, c.now.Sub(o), got, p.Exhausted(got), c.want, c.exhausts)
			}
		})
	}
	end := escalation.Point{2, 0, s(3 * time.Minute)}
	if got := p.Next(end, o, s(time.Hour)); got != end {
		t.Errorf("Next after the end = %+v, want the end", got)
	}
}

func FuzzParsePolicy(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/policies/*.json")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(ladder))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := escalation.ParsePolicy(b)
		if err != nil {
			var fe *escalation.FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed policy does not validate: %v", err)
		}
		// A valid ladder always ends, and Next never goes back.
		o := time.Unix(0, 0)
		pt := p.First(o)
		for i := 0; !p.Exhausted(pt); i++ {
			next := p.Next(pt, o, pt.At)
			if next.At.Before(pt.At) || i > 100000 {
				t.Fatalf("ladder goes back or never ends at %+v → %+v", pt, next)
			}
			pt = next
		}
	})
}

func TestLinks(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	l, err := escalation.NewLinks(key, "https://vigil.example.org/", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	tok := l.Token("a1", "sue@example.org", now)
	if u := l.URL(tok); u != "https://vigil.example.org/ack/"+tok {
		t.Errorf("URL %s", u)
	}
	id, rcpt, err := l.Verify(tok, now.Add(59*time.Minute))
	if err != nil || id != "a1" || len(rcpt) != 16 {
		t.Errorf("Verify = %q %q %v", id, rcpt, err)
	}
	if _, _, err := l.Verify(tok, now.Add(61*time.Minute)); !errors.Is(err, escalation.ErrBadLink) {
		t.Errorf("expired link: %v", err)
	}
	b := []byte(tok)
	b[len(b)/2] ^= 1
	for _, bad := range []string{string(b), tok[:len(tok)-2], "", "!!", strings.Repeat("A", 600)} {
		if _, _, err := l.Verify(bad, now); !errors.Is(err, escalation.ErrBadLink) {
			t.Errorf("Verify(%q) = %v, want ErrBadLink", bad, err)
		}
	}
	other, _ := escalation.NewLinks([]byte("another key, another server.....x"), "", time.Hour)
	if _, _, err := other.Verify(tok, now); !errors.Is(err, escalation.ErrBadLink) {
		t.Errorf("a token from another key verified: %v", err)
	}
	if other.URL(tok) != "" {
		t.Error("a link without a base URL")
	}
	c1, c2 := l.ReplyCode("a1", "+447700900123"), l.ReplyCode("a1", "+447700900124")
	if len(c1) != 6 || c1 == c2 || c1 != l.ReplyCode("a1", "+447700900123") || strings.ContainsAny(c1, "01OI") {
		t.Errorf("reply codes %q %q", c1, c2)
	}
	if _, err := escalation.NewLinks([]byte("short"), "", 0); err == nil {
		t.Error("a short key was accepted")
	}
}
