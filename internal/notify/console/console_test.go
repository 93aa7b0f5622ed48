package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"vigil/internal/notify"
	"vigil/internal/notify/console"
)

// recv takes the next live event or fails if none is queued.
func recv(t *testing.T, s *console.Subscription) console.Event {
	t.Helper()
	select {
	case ev := <-s.Events():
		return ev
	default:
		t.Fatal("no event queued")
		return console.Event{}
	}
}

func none(t *testing.T, s *console.Subscription) {
	t.Helper()
	select {
	case ev := <-s.Events():
		t.Fatalf("unexpected event %s %s", ev.Name, ev.Data)
	default:
	}
}

func subscribe(t *testing.T, h *console.Hub, org, last string) *console.Subscription {
	t.Helper()
	s, err := h.Subscribe(org, last)
	if err != nil {
		t.Fatalf("Subscribe(%q, %q): %v", org, last, err)
	}
	t.Cleanup(s.Close)
	return s
}

func publish(t *testing.T, h *console.Hub, org, name, data string) string {
	t.Helper()
	id, err := h.Publish(org, name, []byte(data))
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return id
}

func TestEachOrgSeesOnlyItsEvents(t *testing.T) {
	h := console.NewHub(console.Config{}, nil)
	defer h.Close()
	a1, a2 := subscribe(t, h, "org_a", ""), subscribe(t, h, "org_a", "")
	b := subscribe(t, h, "org_b", "")
	n := console.NewNotifier(h)
	ctx := context.Background()
	for i, org := range []string{"org_a", "org_b", "org_a"} {
		m := notify.Message{Event: notify.EventRaised, AlertID: fmt.Sprintf("al_%d", i), OrgID: org, PersonName: "P " + org}
		if _, err := n.Notify(ctx, notify.Target{Channel: "console", Address: org}, m); err != nil {
			t.Fatalf("Notify: %v", err)
		}
	}
	for _, s := range []*console.Subscription{a1, a2} {
		for _, want := range []string{"al_0", "al_2"} {
			var got console.Alert
			if err := json.Unmarshal(recv(t, s).Data, &got); err != nil {
				t.Fatal(err)
			}
			if got.AlertID != want || got.OrgID != "org_a" {
				t.Errorf("org_a subscriber got %+v, want alert %s", got, want)
			}
		}
		none(t, s)
	}
	var got console.Alert
	if err := json.Unmarshal(recv(t, b).Data, &got); err != nil || got.AlertID != "al_1" {
		t.Errorf("org_b got %+v (%v), want al_1", got, err)
	}
	none(t, b)

	// A target naming another organisation than the alert's is refused.
	_, err := n.Notify(ctx, notify.Target{Address: "org_b"}, notify.Message{Event: notify.EventRaised, OrgID: "org_a"})
	if !errors.Is(err, console.ErrOrgMismatch) || !notify.IsPermanent(err) {
		t.Errorf("cross-org Notify: err = %v, want permanent ErrOrgMismatch", err)
	}
	none(t, b)
}

// A subscriber that never reads is disconnected once its buffer is full;
// the others get every event and Publish never blocks. It runs in a
// synctest bubble: a Publish blocked on a channel would be reported as a
// deadlock instead of hanging.
func TestSlowSubscriberIsDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const buffer, total = 4, 50
		h := console.NewHub(console.Config{Buffer: buffer}, nil)
		defer h.Close()
		stuck := subscribe(t, h, "org_a", "")
		fast := subscribe(t, h, "org_a", "")
		other := subscribe(t, h, "org_b", "")
		var ids []string
		for i := range total {
			ids = append(ids, publish(t, h, "org_a", "raised", fmt.Sprintf(`{"n":%d}`, i)))
			if got := recv(t, fast); got.ID != ids[i] {
				t.Fatalf("fast subscriber got %s, want %s", got.ID, ids[i])
			}
			select {
			case <-stuck.Done():
				if i < buffer {
					t.Fatalf("stuck subscriber dropped after %d events with a buffer of %d", i+1, buffer)
				}
			default:
				if i >= buffer {
					t.Fatalf("stuck subscriber still connected after %d events", i+1)
				}
			}
		}
		if !errors.Is(stuck.Err(), console.ErrSlow) {
			t.Errorf("stuck.Err() = %v, want ErrSlow", stuck.Err())
		}
		if got := h.Dropped(); got != 1 {
			t.Errorf("Dropped() = %d, want 1", got)
		}
		if got := h.Subscribers(); got != 2 {
			t.Errorf("Subscribers() = %d, want 2", got)
		}
		select {
		case <-fast.Done():
			t.Error("fast subscriber was dropped")
		case <-other.Done():
			t.Error("other org's subscriber was dropped")
		default:
		}
		none(t, other)
		// What the stuck one had queued is still there, in order.
		for i := range buffer {
			if got := recv(t, stuck); got.ID != ids[i] {
				t.Errorf("stuck event %d = %s, want %s", i, got.ID, ids[i])
			}
		}
	})
}

func TestLastEventIDReplay(t *testing.T) {
	h := console.NewHub(console.Config{Replay: 4}, nil)
	defer h.Close()
	var ids []string
	for i := range 3 {
		ids = append(ids, publish(t, h, "org_a", "raised", fmt.Sprintf(`{"n":%d}`, i)))
		publish(t, h, "org_b", "raised", `{"other":true}`)
	}
	// Ids increase by one across the hub.
	seq := func(id string) int {
		var n int
		fmt.Sscanf(id[strings.LastIndexByte(id, '-')+1:], "%d", &n)
		return n
	}
	if seq(ids[1]) != seq(ids[0])+2 || seq(ids[2]) != seq(ids[1])+2 {
		t.Errorf("ids %v do not follow the hub's sequence", ids)
	}
	names := func(evs []console.Event) (out []string) {
		for _, ev := range evs {
			out = append(out, ev.Name+":"+ev.ID+":"+string(ev.Data))
		}
		return out
	}

	s := subscribe(t, h, "org_a", ids[0])
	want := []string{"raised:" + ids[1] + `:{"n":1}`, "raised:" + ids[2] + `:{"n":2}`}
	if got := names(s.Backlog()); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("replay after %s = %v, want %v", ids[0], got, want)
	}
	if got := subscribe(t, h, "org_a", ids[2]).Backlog(); len(got) != 0 {
		t.Errorf("replay after the newest id = %v, want none", names(got))
	}
	if got := subscribe(t, h, "org_a", "").Backlog(); len(got) != 0 {
		t.Errorf("fresh subscription replayed %v", names(got))
	}

	// Three more events push ids[0] and ids[1] out of the ring of 4.
	for i := 3; i < 6; i++ {
		ids = append(ids, publish(t, h, "org_a", "raised", fmt.Sprintf(`{"n":%d}`, i)))
	}
	for _, last := range []string{ids[0], "deadbeef-1", "garbage", ids[0] + "x", "-5", "x-0"} {
		got := subscribe(t, h, "org_a", last).Backlog()
		if len(got) != 5 || got[0].Name != console.EventResync || got[0].ID != "" || got[1].ID != ids[2] || got[4].ID != ids[5] {
			t.Errorf("replay after %q = %v, want resync then the 4 kept events", last, names(got))
		}
	}
	// ids[1] is the newest evicted: nothing is missing after it.
	if got := subscribe(t, h, "org_a", ids[1]).Backlog(); len(got) != 4 || got[0].ID != ids[2] {
		t.Errorf("replay after the newest evicted id = %v", names(got))
	}
}

func TestDegradedIsBroadcast(t *testing.T) {
	h := console.NewHub(console.Config{}, nil)
	defer h.Close()
	a, b := subscribe(t, h, "org_a", ""), subscribe(t, h, "org_b", "")
	h.Degraded("sms", true)
	h.Degraded("sms", true) // no change, no event
	for _, s := range []*console.Subscription{a, b} {
		ev := recv(t, s)
		if ev.Name != console.EventChannel || string(ev.Data) != `{"channel":"sms","degraded":true}` || ev.ID == "" {
			t.Errorf("got %+v, want a channel event", ev)
		}
		none(t, s)
	}
	// A console connecting later learns it at once.
	c := subscribe(t, h, "org_c", "")
	if bl := c.Backlog(); len(bl) != 1 || string(bl[0].Data) != `{"channel":"sms","degraded":true}` {
		t.Errorf("new subscriber's backlog = %+v", bl)
	}
	h.Degraded("sms", false)
	if ev := recv(t, c); string(ev.Data) != `{"channel":"sms","degraded":false}` {
		t.Errorf("recovery event = %s", ev.Data)
	}
	if bl := subscribe(t, h, "org_d", "").Backlog(); len(bl) != 0 {
		t.Errorf("backlog after recovery = %+v", bl)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	h := console.NewHub(console.Config{}, nil)
	s := subscribe(t, h, "org_a", "")
	h.Close()
	h.Close()
	select {
	case <-s.Done():
	default:
		t.Fatal("subscription still open after Close")
	}
	if !errors.Is(s.Err(), console.ErrClosed) {
		t.Errorf("Err() = %v, want ErrClosed", s.Err())
	}
	if _, err := h.Publish("org_a", "raised", []byte(`{}`)); !errors.Is(err, console.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if _, err := h.Subscribe("org_a", ""); !errors.Is(err, console.ErrClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
	_, err := console.NewNotifier(h).Notify(context.Background(), notify.Target{Address: "org_a"}, notify.Message{Event: notify.EventRaised})
	if !errors.Is(err, console.ErrClosed) || notify.IsPermanent(err) {
		t.Errorf("Notify after Close: %v, want temporary ErrClosed", err)
	}
	if h.Subscribers() != 0 {
		t.Errorf("Subscribers() = %d after Close", h.Subscribers())
	}
}

func TestPublishRefusesWhatWouldBreakTheStream(t *testing.T) {
	h := console.NewHub(console.Config{MaxSubscribers: 1}, nil)
	defer h.Close()
	for _, tc := range []struct{ org, name, data string }{
		{"", "raised", "{}"},
		{"org_a", "", "{}"},
		{"org_a", "raised\ndata: x", "{}"},
		{"org_a", "Raised", "{}"},
		{"org_a", "raised", "{\n}"},
		{"org_a", "raised", "{\r}"},
	} {
		if _, err := h.Publish(tc.org, tc.name, []byte(tc.data)); !errors.Is(err, console.ErrInvalid) {
			t.Errorf("Publish(%q, %q, %q) = %v, want ErrInvalid", tc.org, tc.name, tc.data, err)
		}
	}
	subscribe(t, h, "org_a", "")
	if _, err := h.Subscribe("org_a", ""); !errors.Is(err, console.ErrTooMany) {
		t.Errorf("second subscriber over the limit: %v", err)
	}
}

func TestNotifierData(t *testing.T) {
	h := console.NewHub(console.Config{}, nil)
	defer h.Close()
	s := subscribe(t, h, "org_a", "")
	raised := time.Date(2026, 3, 14, 11, 2, 3, 0, time.FixedZone("CET", 3600))
	m := notify.Message{
		Event: notify.EventReminder, AlertID: "al_1", OrgID: "org_a", Kind: "fall", Severity: "high", State: "open",
		RaisedAt: raised, Step: 1, Attempt: 2, PersonName: "Bea <b>Worker</b>", Note: "line one\nline two",
		Position:   &notify.Position{Lat: 51.5, Lon: -0.12, AccuracyM: 9, At: raised.Add(-time.Minute)},
		ConsoleURL: "https://vigil.example.org/console/alerts/al_1", AckURL: "https://vigil.example.org/ack/al_1?t=secret-token",
	}
	rc, err := console.NewNotifier(h).Notify(context.Background(), notify.Target{Channel: "console", Address: "org_a"}, m)
	if err != nil {
		t.Fatal(err)
	}
	ev := recv(t, s)
	if rc.ProviderID != ev.ID || ev.Name != "reminder" {
		t.Errorf("receipt %q, event %q %q", rc.ProviderID, ev.ID, ev.Name)
	}
	if strings.ContainsAny(string(ev.Data), "\r\n") || strings.Contains(string(ev.Data), "secret-token") || strings.Contains(string(ev.Data), "<b>") {
		t.Errorf("data %s is not one escaped line without the ack link", ev.Data)
	}
	var got map[string]any
	if err := json.Unmarshal(ev.Data, &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"alert_id": "al_1", "org_id": "org_a", "event": "reminder", "kind": "fall", "severity": "high", "state": "open",
		"raised_at": "2026-03-14T10:02:03Z", "step": 1.0, "attempt": 2.0, "person_name": "Bea <b>Worker</b>",
		"note": "line one\nline two", "console_url": "https://vigil.example.org/console/alerts/al_1",
	} {
		if got[k] != want {
			t.Errorf("%s = %#v, want %#v", k, got[k], want)
		}
	}
	pos, _ := got["position"].(map[string]any)
	if pos["lat"] != 51.5 || pos["lon"] != -0.12 || pos["accuracy_m"] != 9.0 || pos["at"] != "2026-03-14T10:01:03Z" {
		t.Errorf("position = %#v", pos)
	}
	for _, to := range []notify.Target{{Address: ""}, {Channel: "sms", Address: "org_a"}} {
		if _, err := console.NewNotifier(h).Notify(context.Background(), to, m); !notify.IsPermanent(err) {
			t.Errorf("target %+v: err = %v, want permanent", to, err)
		}
	}
}
