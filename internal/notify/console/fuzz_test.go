package console

import (
	"strings"
	"testing"
)

// FuzzParseEventID feeds the Last-Event-ID header (outside bytes) to the
// parser and to Subscribe: no panic, and a replay never holds more than
// the ring or another organisation's events.
func FuzzParseEventID(f *testing.F) {
	for _, s := range []string{"", "a1b2c3d4-1", "a1b2c3d4-18446744073709551615", "-1", "x-0", "x--1", "x-+1", "x-1-2", strings.Repeat("9", 80)} {
		f.Add(s)
	}
	h := NewHub(Config{Replay: 4}, nil)
	for range 6 {
		if _, err := h.Publish("org_a", "raised", []byte(`{}`)); err != nil {
			f.Fatal(err)
		}
	}
	if _, err := h.Publish("org_b", "raised", []byte(`{"b":1}`)); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id string) {
		epoch, seq, ok := parseEventID(id)
		if ok {
			if epoch == "" || seq == 0 || len(id) > 64 || !strings.HasPrefix(id, epoch+"-") {
				t.Errorf("parseEventID(%q) = %q, %d, true", id, epoch, seq)
			}
		}
		s, err := h.Subscribe("org_a", id)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if len(s.Backlog()) > 5 {
			t.Errorf("backlog of %d events for %q", len(s.Backlog()), id)
		}
		for _, ev := range s.Backlog() {
			if string(ev.Data) == `{"b":1}` {
				t.Errorf("org_b's event replayed to org_a for %q", id)
			}
		}
	})
}
