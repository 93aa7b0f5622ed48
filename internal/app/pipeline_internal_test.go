package app

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"vigil/internal/bus"
	"vigil/internal/event"
)

type recordingWriter struct{ got []event.Event }

func (w *recordingWriter) ApplyEvents(_ context.Context, evs []event.Event) (int, error) {
	w.got = append(w.got, evs...)
	return len(evs), nil
}

func (w *recordingWriter) OffDutyDevices(context.Context, []string) (map[string]bool, error) {
	return nil, nil
}

// TestLocationPolicyFilter: an off-duty worker's position reports are
// dropped, other events lose their position, alarms keep theirs, and
// other devices are untouched.
func TestLocationPolicyFilter(t *testing.T) {
	pos := &event.Position{Lat: 51.5, Lon: -0.1, AccuracyM: 5}
	evs := []event.Event{
		{DeviceID: "off", MsgID: "1", Type: event.TypePosition, Position: pos},
		{DeviceID: "off", MsgID: "2", Type: event.TypeHeartbeat, Position: pos},
		{DeviceID: "off", MsgID: "3", Type: event.TypeButton, Button: &event.Button{Kind: event.ButtonSOS}, Position: pos},
		{DeviceID: "off", MsgID: "4", Type: event.TypeButton, Button: &event.Button{Kind: event.ButtonCheckIn}, Position: pos},
		{DeviceID: "on", MsgID: "5", Type: event.TypePosition, Position: pos},
	}
	kept, dropped := applyLocationPolicy(evs, map[string]bool{"off": true})
	if dropped != 1 || len(kept) != 4 {
		t.Fatalf("dropped %d, kept %d; want 1 and 4", dropped, len(kept))
	}
	for _, e := range kept {
		wantPos := e.MsgID == "3" || e.MsgID == "5"
		if (e.Position != nil) != wantPos {
			t.Errorf("event %s: position kept %v, want %v", e.MsgID, e.Position != nil, wantPos)
		}
	}
	if evs[1].Position == nil {
		t.Error("the filter changed the caller's events")
	}
}

// A bus message in an encoding this version cannot read (a newer version
// wrote it during a rolling upgrade) is left for redelivery, never dropped;
// a corrupt one of our own encoding is terminated; the rest are stored.
func TestProjectorEncodings(t *testing.T) {
	w := &recordingWriter{}
	p := newProjector(w, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	ev := event.Event{V: 1, OrgID: "acme", DeviceID: "da", MsgID: "m1", Type: event.TypeHeartbeat,
		DeviceTime: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), ReceivedAt: time.Date(2026, 11, 29, 12, 0, 1, 0, time.UTC), Source: event.SourceMQTT}
	good := encodeBatch([]pubReq{{data: mustMarshal(t, &ev)}}, 0)
	msgs := []bus.Msg{
		{Subject: "vigil.events.p1", Encoding: "events-json-v2", Data: []byte(`{"future":true}`)},
		{Subject: "vigil.events.p1", Encoding: busEncoding, Data: []byte(`not json`)},
		{Subject: "vigil.events.p1", Encoding: busEncoding, Data: good},
	}
	poison, err := p.handle(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(poison) != 1 || poison[0] != 1 {
		t.Fatalf("poison %v, want [1] (the corrupt message only)", poison)
	}
	if got := testutil.ToFloat64(p.deferred); got != 1 {
		t.Fatalf("deferred %v, want 1 (the newer encoding)", got)
	}
	if len(w.got) != 1 || w.got[0].MsgID != "m1" {
		t.Fatalf("stored %+v, want only m1", w.got)
	}
}

func mustMarshal(t *testing.T, ev *event.Event) []byte {
	t.Helper()
	b, err := event.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
