package event_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/event"
)

// The seed corpora live in testdata/fuzz/FuzzDecode and
// testdata/fuzz/FuzzDecodeBatch: a valid example of every type and hostile
// payloads (wrong types, huge numbers, deep nesting, bad UTF-8, trailing
// data, duplicate ids). The fixed `now` keeps every run reproducible.

// FuzzDecode: Decode never panics; what it refuses is a FieldError wrapping
// ErrInvalid or ErrTooLarge; what it accepts is within range and survives
// the bus round trip and a second validation unchanged.
func FuzzDecode(f *testing.F) {
	dec := event.NewDecoder(event.Limits{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := dec.Decode(payload, origin, now)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		checkAccepted(t, dec, ev)
	})
}

// FuzzDecodeBatch: the same for HTTP batches, plus all or nothing and
// unique ids within a batch.
func FuzzDecodeBatch(f *testing.F) {
	dec := event.NewDecoder(event.Limits{MaxBatch: 50})
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := dec.DecodeBatch(body, origin, now)
		if err != nil {
			if evs != nil {
				t.Fatalf("got %d events and error %v, want nothing accepted", len(evs), err)
			}
			checkRefusal(t, err)
			var fe *event.FieldError
			if errors.As(err, &fe) && fe.Field != "" && !strings.HasPrefix(fe.Field, "events") {
				t.Fatalf("got field %q, want one under events", fe.Field)
			}
			return
		}
		if len(evs) == 0 || len(evs) > 50 {
			t.Fatalf("got %d events, want 1..50", len(evs))
		}
		seen := map[string]bool{}
		for _, ev := range evs {
			if seen[ev.MsgID] {
				t.Fatalf("accepted id %q twice in one batch", ev.MsgID)
			}
			seen[ev.MsgID] = true
			checkAccepted(t, dec, ev)
		}
	})
}

func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var fe *event.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("got %T %v, want *event.FieldError", err, err)
	}
	if !errors.Is(err, event.ErrInvalid) && !errors.Is(err, event.ErrTooLarge) {
		t.Fatalf("got %v, want ErrInvalid or ErrTooLarge", err)
	}
	if len(err.Error()) > 300 {
		t.Fatalf("got a %d-byte error, want a short one", len(err.Error()))
	}
}

// checkAccepted checks an accepted event against the schema's ranges
// independently of event.go, then round-trips it.
func checkAccepted(t *testing.T, dec *event.Decoder, ev event.Event) {
	t.Helper()
	l := dec.Limits()
	if ev.V != event.SchemaVersion || ev.DeviceID != origin.DeviceID || ev.OrgID != origin.OrgID || ev.Source != origin.Source {
		t.Fatalf("got envelope %d %s/%s %s, want it from the origin", ev.V, ev.OrgID, ev.DeviceID, ev.Source)
	}
	if ev.MsgID == "" || len(ev.MsgID) > 64 || strings.Trim(ev.MsgID, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:") != "" {
		t.Fatalf("accepted id %q", ev.MsgID)
	}
	if ev.DeviceTime.Year() < 2020 || ev.DeviceTime.After(now.Add(l.MaxFuture)) {
		t.Fatalf("accepted ts %v", ev.DeviceTime)
	}
	if ev.Late != (now.Sub(ev.DeviceTime) > l.LateAfter) {
		t.Fatalf("got Late %v for ts %v", ev.Late, ev.DeviceTime)
	}
	if !ev.ReceivedAt.Equal(now) {
		t.Fatalf("got received_at %v, want now", ev.ReceivedAt)
	}
	bodies := 0
	for _, present := range []bool{ev.Heartbeat != nil, ev.Battery != nil, ev.Button != nil, ev.Motion != nil, ev.Fall != nil} {
		if present {
			bodies++
		}
	}
	if bodies > 1 {
		t.Fatalf("accepted %d bodies on one %s event", bodies, ev.Type)
	}
	inRange := func(name string, v, lo, hi float64) {
		if math.IsNaN(v) || v < lo || v > hi {
			t.Fatalf("accepted %s outside %g..%g", name, lo, hi)
		}
	}
	if p := ev.Position; p != nil {
		if ev.Type == event.TypeMotion {
			t.Fatal("accepted a position on a motion event")
		}
		inRange("lat", p.Lat, -90, 90)
		inRange("lon", p.Lon, -180, 180)
		if p.Lat == 0 && p.Lon == 0 {
			t.Fatal("accepted null island")
		}
		if !(p.AccuracyM > 0) {
			t.Fatal("accepted accuracy_m <= 0")
		}
		inRange("accuracy_m", p.AccuracyM, 0, 100_000)
		if p.SpeedMPS != nil {
			inRange("speed_mps", *p.SpeedMPS, 0, 350)
		}
		if p.HeadingDeg != nil {
			inRange("heading_deg", *p.HeadingDeg, 0, math.Nextafter(360, 0))
		}
		if p.AltitudeM != nil {
			inRange("altitude_m", *p.AltitudeM, -1000, 20_000)
		}
	}
	switch ev.Type {
	case event.TypePosition:
		if ev.Position == nil {
			t.Fatal("accepted a position event without a position")
		}
	case event.TypeHeartbeat:
		if h := ev.Heartbeat; h != nil && h.SignalDBm != nil {
			inRange("signal_dbm", float64(*h.SignalDBm), -150, 0)
		}
	case event.TypeBattery:
		if ev.Battery == nil {
			t.Fatal("accepted a battery event without a battery")
		}
		inRange("percent", float64(ev.Battery.Percent), 0, 100)
	case event.TypeButton:
		b := ev.Button
		if b == nil {
			t.Fatal("accepted a button event without a button")
		}
		switch b.Kind {
		case event.ButtonSOS, event.ButtonCancel, event.ButtonCheckIn, event.ButtonDuress:
		default:
			t.Fatalf("accepted button kind %q", b.Kind)
		}
		if len(b.Code) > 16 || (b.Code != "" && b.Kind != event.ButtonCancel) {
			t.Fatal("accepted a bad button code")
		}
	case event.TypeMotion:
		m := ev.Motion
		if m == nil {
			t.Fatal("accepted a motion event without motion")
		}
		inRange("rate_hz", m.RateHz, 1, 1000)
		if len(m.Accel) == 0 || len(m.Accel) > l.MaxSamples || (m.Gyro != nil && len(m.Gyro) != len(m.Accel)) {
			t.Fatalf("accepted %d accel and %d gyro samples", len(m.Accel), len(m.Gyro))
		}
		for _, s := range m.Accel {
			if len(s) != 3 {
				t.Fatal("accepted an accel sample that is not [x, y, z]")
			}
			for _, v := range s {
				inRange("accel", v, -64, 64)
			}
		}
		for _, s := range m.Gyro {
			if len(s) != 3 {
				t.Fatal("accepted a gyro sample that is not [x, y, z]")
			}
			for _, v := range s {
				inRange("gyro", v, -5000, 5000)
			}
		}
	case event.TypeFall:
		if ev.Fall == nil {
			t.Fatal("accepted a fall event without a fall")
		}
		inRange("confidence", ev.Fall.Confidence, 0, 1)
	case event.TypeAlarm:
		if ev.Alarm == nil || (ev.Alarm.Kind != event.AlarmManDown && ev.Alarm.Kind != event.AlarmNoMotion) {
			t.Fatalf("accepted an alarm event with %+v", ev.Alarm)
		}
	default:
		t.Fatalf("accepted type %q", ev.Type)
	}

	// The bus round trip keeps the event exactly.
	b, err := event.Marshal(&ev)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	back, err := event.Unmarshal(b)
	if err != nil {
		t.Fatalf("accepted event does not round-trip: %v\n%s", err, b)
	}
	if diff := cmp.Diff(ev, back); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}

	// Sent again as a device message, it validates to the same event.
	msg := event.Message{
		V: back.V, ID: back.MsgID, TS: back.DeviceTime, Type: back.Type,
		Position: back.Position, Heartbeat: back.Heartbeat, Battery: back.Battery,
		Button: back.Button, Motion: back.Motion, Fall: back.Fall, Alarm: back.Alarm,
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	// Re-encoding can lengthen a number ("1e1" becomes "10"), so the
	// payload limit is relaxed for this second pass only.
	l.MaxPayload *= 4
	again, err := event.NewDecoder(l).Decode(raw, origin, now)
	if err != nil {
		t.Fatalf("re-encoded message refused: %v\n%s", err, raw)
	}
	if diff := cmp.Diff(ev, again); diff != "" {
		t.Fatalf("re-validation (-want +got):\n%s", diff)
	}
}
