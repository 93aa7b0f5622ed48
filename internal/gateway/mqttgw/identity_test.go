package mqttgw

import (
	"slices"
	"testing"
	"time"
)

func TestIdentityWatch(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	w := newIdentityWatch()
	step := func(id, ip string, at time.Duration) (bool, []string) { return w.connect(id, ip, t0.Add(at)) }

	// One network change: never flagged.
	if s, r := step("phone", "10.0.0.1", 0); s || r != nil {
		t.Fatal("first connection flagged")
	}
	if s, r := step("phone", "10.0.0.2", 5*time.Second); s || r != nil {
		t.Fatal("one network change flagged")
	}
	// Changes further apart than the window: not flagged.
	if s, r := step("phone", "10.0.0.1", 2*time.Minute); s || r != nil {
		t.Fatal("a change two minutes later flagged")
	}

	// A→B→A within the window: flagged once, with both sources.
	step("clone", "10.0.0.3", 0)
	step("clone", "10.0.0.4", time.Second)
	s, r := step("clone", "10.0.0.3", 2*time.Second)
	if !s || !slices.Equal(r, []string{"10.0.0.3", "10.0.0.4"}) {
		t.Fatalf("A→B→A: shared %v raise %v", s, r)
	}
	// Still shared, but no second event within the quiet period.
	for i := range 20 {
		if s, r := step("clone", []string{"10.0.0.4", "10.0.0.3"}[i%2], 3*time.Second+time.Duration(i)*time.Second); !s || r != nil {
			t.Fatalf("step %d: shared %v raise %v", i, s, r)
		}
	}
	// After the quiet period a new episode raises again.
	step("clone", "10.0.0.3", 20*time.Minute)
	step("clone", "10.0.0.4", 20*time.Minute+time.Second)
	if s, r := step("clone", "10.0.0.3", 20*time.Minute+2*time.Second); !s || r == nil {
		t.Fatalf("new episode: shared %v raise %v", s, r)
	}
	// Prune forgets idle devices.
	w.prune(t0.Add(time.Hour))
	if len(w.recent) != 0 || len(w.flagged) != 0 {
		t.Errorf("after prune: %d recent, %d flagged", len(w.recent), len(w.flagged))
	}
}
