package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/event"
)

var t0 = time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)

var leeds = [2]float64{53.8, -1.55}

// script drives a model through a working day: every kind of message at
// fixed offsets, so two models with the same seed must say the same.
func script(m *model) []event.Message {
	var out []event.Message
	for i := range 600 {
		now := t0.Add(time.Duration(i) * 5 * time.Second)
		out = append(out, m.position(now))
		if i%12 == 0 {
			out = append(out, m.heartbeat(now))
		}
		if i%60 == 0 {
			out = append(out, m.battery(now))
		}
		if i%100 == 7 {
			out = append(out, m.sos(now))
		}
		if i == 401 {
			out = append(out, m.manDown(now, event.AlarmManDown))
		}
		if i%50 == 3 {
			w, f := m.motion(now, i == 253)
			out = append(out, w)
			if f != nil {
				out = append(out, *f)
			}
		}
	}
	return out
}

func TestModelDeterministic(t *testing.T) {
	// Compared as JSON, the bytes the simulator sends (and much faster
	// than a deep comparison of thousands of motion samples).
	asJSON := func(m *model) []byte {
		b, err := json.Marshal(script(m))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := asJSON(newModel(42, 3, leeds, "b00t", t0))
	b := asJSON(newModel(42, 3, leeds, "b00t", t0))
	if !bytes.Equal(a, b) {
		t.Fatalf("same seed, different messages (-a +b):\n%s", cmp.Diff(string(a), string(b)))
	}
	for name, m := range map[string]*model{
		"other seed":   newModel(43, 3, leeds, "b00t", t0),
		"other device": newModel(42, 4, leeds, "b00t", t0),
	} {
		if bytes.Equal(a, asJSON(m)) {
			t.Errorf("%s: got the same messages, want different ones", name)
		}
	}
}

func TestModelMessageIDs(t *testing.T) {
	msgs := script(newModel(1, 0, leeds, "c0ffee01", t0))
	seen := map[string]bool{}
	for _, m := range msgs {
		if seen[m.ID] {
			t.Fatalf("id %q used twice", m.ID)
		}
		seen[m.ID] = true
	}
	if got, want := msgs[0].ID, "c0ffee01:1"; got != want {
		t.Errorf("got first id %q, want %q", got, want)
	}
}

// TestWalkPlausible checks the route: walking pace, stays near the centre,
// stops now and then, GNSS accuracy 5–30 m.
func TestWalkPlausible(t *testing.T) {
	for seed := range int64(5) {
		m := newModel(seed, 0, leeds, "b", t0)
		var prev *event.Position
		stopped, far := 0, 0.0
		for i := range 8 * 60 * 12 { // 8 hours every 5 s
			msg := m.position(t0.Add(time.Duration(i) * 5 * time.Second))
			p := msg.Position
			if p.AccuracyM < 5 || p.AccuracyM > 30 {
				t.Fatalf("seed %d: accuracy %g outside 5..30", seed, p.AccuracyM)
			}
			if *p.SpeedMPS > 2.5 {
				t.Fatalf("seed %d: speed %g m/s is not walking", seed, *p.SpeedMPS)
			}
			if *p.SpeedMPS == 0 {
				stopped++
				if p.HeadingDeg != nil {
					t.Fatalf("seed %d: heading while stopped", seed)
				}
			}
			far = math.Max(far, metres(leeds[0], leeds[1], p.Lat, p.Lon))
			if prev != nil {
				// Two fixes 5 s apart: at most ~2 m/s of walking plus GNSS noise.
				if d := metres(prev.Lat, prev.Lon, p.Lat, p.Lon); d > 10+3*(prev.AccuracyM+p.AccuracyM) {
					t.Fatalf("seed %d: jumped %.0f m in 5 s", seed, d)
				}
			}
			prev = p
		}
		if far > roamRadius+400 {
			t.Errorf("seed %d: wandered %.0f m from the centre", seed, far)
		}
		if stopped == 0 {
			t.Errorf("seed %d: never stopped at a visit in 8 hours", seed)
		}
		if stopped > 8*60*12*3/4 {
			t.Errorf("seed %d: stopped %d of %d fixes, want mostly walking", seed, stopped, 8*60*12)
		}
	}
}

func TestBatteryDrains(t *testing.T) {
	m := newModel(7, 0, leeds, "b", t0)
	m.batt.percent, m.batt.charging = 90, false
	first := m.battery(t0).Battery.Percent
	after := m.battery(t0.Add(3 * time.Hour)).Battery.Percent
	if !(after < first && after > first-15) {
		t.Errorf("got %d%% then %d%% after 3 h, want a slow drain", first, after)
	}
	// Over days it cycles: drains to low, charges, never leaves 0..100.
	sawCharging := false
	for h := range 24 * 5 {
		b := m.battery(t0.Add(time.Duration(h+4) * time.Hour)).Battery
		if b.Percent < 0 || b.Percent > 100 {
			t.Fatalf("battery %d%%", b.Percent)
		}
		sawCharging = sawCharging || b.Charging
	}
	if !sawCharging {
		t.Error("never charged in five days")
	}
}

// TestPayloadsValidate: every kind of message the simulator makes passes the
// server's decoder, as the JSON it sends.
func TestPayloadsValidate(t *testing.T) {
	dec := event.NewDecoder(event.Limits{})
	types := map[event.Type]int{}
	for seed := range int64(3) {
		for _, msg := range script(newModel(seed, 0, leeds, "b00t", t0)) {
			b, err := json.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := dec.Decode(b, event.Origin{OrgID: "o", DeviceID: "d", Source: event.SourceMQTT}, msg.TS)
			if err != nil {
				t.Fatalf("%s payload refused: %v\n%.300s", msg.Type, err, b)
			}
			if ev.Late {
				t.Errorf("%s: got late at its own ts", msg.Type)
			}
			types[msg.Type]++
			if msg.Type == event.TypeMotion && len(b) > 64<<10 {
				t.Errorf("motion window of %d bytes, want it compact", len(b))
			}
		}
	}
	for _, typ := range event.Types {
		if types[typ] == 0 {
			t.Errorf("no %s event generated", typ)
		}
	}
}

func TestMotionWindow(t *testing.T) {
	m := newModel(9, 0, leeds, "b", t0)
	w, f := m.motion(t0, false)
	if f != nil {
		t.Fatal("seed 9 drew a fall; pick a seed that draws an ordinary window")
	}
	mo := w.Motion
	if mo.RateHz != 50 || len(mo.Accel) < 100 || len(mo.Accel) > 200 || len(mo.Gyro) != len(mo.Accel) {
		t.Fatalf("got %g Hz, %d accel, %d gyro samples; want 50 Hz, 2-4 s", mo.RateHz, len(mo.Accel), len(mo.Gyro))
	}
	var sum float64
	for _, s := range mo.Accel {
		sum += math.Sqrt(s[0]*s[0] + s[1]*s[1] + s[2]*s[2])
	}
	if mean := sum / float64(len(mo.Accel)); mean < 0.85 || mean > 1.15 {
		t.Errorf("mean |a| = %.2f g, want about 1 g", mean)
	}

	w, f = m.motion(t0.Add(time.Minute), true)
	if f == nil || f.Type != event.TypeFall || f.Fall.Confidence < 0.5 || f.Position == nil {
		t.Fatalf("got fall %+v, want a device fall event with a position", f)
	}
	peak := 0.0
	for _, s := range w.Motion.Accel {
		peak = math.Max(peak, math.Sqrt(s[0]*s[0]+s[1]*s[1]+s[2]*s[2]))
	}
	if peak < 2.5 {
		t.Errorf("fall window peak %.1f g, want an impact spike", peak)
	}
}

// TestQueueAlarmsFirst: an SOS jumps the queue (behind earlier alarms); a
// full queue drops the oldest non-alarm event.
func TestQueueAlarmsFirst(t *testing.T) {
	s, err := New(Config{MQTTAddr: "127.0.0.1:9", Devices: []Credential{{"da", "x"}}, QueueMax: 4})
	if err != nil {
		t.Fatal(err)
	}
	d := &device{s: s, cred: s.cfg.Devices[0], model: newModel(1, 0, leeds, "b", t0)}
	d.enqueue(d.model.position(t0))             // :1
	d.enqueue(d.model.heartbeat(t0))            // :2
	d.enqueue(d.model.sos(t0))                  // :3
	d.enqueue(d.model.battery(t0))              // :4
	d.enqueue(d.model.sos(t0.Add(time.Second))) // :5, queue full: drops :1
	var got []string
	for _, p := range d.queue {
		got = append(got, p.id)
	}
	want := []string{"b:3", "b:5", "b:2", "b:4"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("queue (-want +got):\n%s", diff)
	}
	st := s.Stats()
	if st.Dropped != 1 || st.Queued != 4 || st.Generated[event.TypeButton] != 2 {
		t.Errorf("got dropped %d queued %d sos %d, want 1, 4, 2", st.Dropped, st.Queued, st.Generated[event.TypeButton])
	}
}

func TestNewValidates(t *testing.T) {
	dev := []Credential{{"da", "s"}}
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"mqtt only", Config{MQTTAddr: "h:1", Devices: dev}, true},
		{"https only", Config{HTTPSAddr: "h:1", HTTPShare: 1, Devices: dev}, true},
		{"no devices", Config{MQTTAddr: "h:1"}, false},
		{"no secret", Config{MQTTAddr: "h:1", Devices: []Credential{{"da", ""}}}, false},
		{"no mqtt address", Config{HTTPSAddr: "h:1", HTTPShare: 0.5, Devices: dev}, false},
		{"share without https address", Config{HTTPShare: 1, Devices: dev}, false},
		{"share above 1", Config{MQTTAddr: "h:1", HTTPSAddr: "h:2", HTTPShare: 1.5, Devices: dev}, false},
		{"negative rate", Config{MQTTAddr: "h:1", Rate: -1, Devices: dev}, false},
		{"address without port", Config{MQTTAddr: "h", Devices: dev}, false},
		{"centre at the pole", Config{MQTTAddr: "h:1", Centre: [2]float64{89, 0}, Devices: dev}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Errorf("got %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestHTTPSShareSpread(t *testing.T) {
	devs := make([]Credential, 10)
	for i := range devs {
		devs[i] = Credential{DeviceID: "d", Secret: "s"}
	}
	s, err := New(Config{MQTTAddr: "h:1", HTTPSAddr: "h:2", HTTPShare: 0.3, Devices: devs})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := range devs {
		if s.usesHTTPS(i) {
			n++
		}
	}
	if n != 3 {
		t.Errorf("got %d of 10 devices on HTTPS, want 3", n)
	}
}

// metres is the equirectangular distance, fine at city scale.
func metres(lat1, lon1, lat2, lon2 float64) float64 {
	x := (lon2 - lon1) * metresPerDegLat * math.Cos((lat1+lat2)/2*math.Pi/180)
	y := (lat2 - lat1) * metresPerDegLat
	return math.Hypot(x, y)
}
