package sim

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"vigil/internal/event"
	"vigil/internal/fall/sisfall"
)

func loadRecording(t *testing.T, name string) Recording {
	t.Helper()
	rec, err := sisfall.LoadPath(filepath.Join("..", "fall", "testdata", "sisfall", name))
	if err != nil {
		t.Fatal(err)
	}
	return Recording{Name: name, Fall: rec.Fall(), Samples: rec.Samples}
}

func TestMotionWindows(t *testing.T) {
	rec := loadRecording(t, "SA03/F02_SA03_R02.txt.bz2")
	ws, err := MotionWindows(rec.Samples, 50, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, w := range ws {
		if w.RateHz != 50 || len(w.Gyro) != len(w.Accel) {
			t.Fatalf("window %d: rate %v, %d accel and %d gyro samples", i, w.RateHz, len(w.Accel), len(w.Gyro))
		}
		if i < len(ws)-1 && len(w.Accel) != 100 {
			t.Errorf("window %d has %d samples, want 100 (2 s at 50 Hz)", i, len(w.Accel))
		}
		total += len(w.Accel)
	}
	if want := rec.Samples.Len() / 4; total != want {
		t.Errorf("%d samples in all, want %d (200 Hz averaged by 4)", total, want)
	}
	// The first output sample is the mean of the first four, to 3 decimals.
	var z float64
	for j := range 4 {
		z += float64(rec.Samples.Accel[j][2])
	}
	if got, want := ws[0].Accel[0][2], z/4; got-want > 0.0005 || want-got > 0.0005 {
		t.Errorf("first z %v, want %v", got, want)
	}
	for _, bad := range []int{0, 3, 60, 400} {
		if _, err := MotionWindows(rec.Samples, bad, 2*time.Second); err == nil {
			t.Errorf("rate %d accepted", bad)
		}
	}
}

// TestReplayStreamsWindows: a replaying device sends one window per 2 s of
// wall time, stamped back to back in device time, pauses after the last,
// then starts the recording again; it sends no synthetic motion.
func TestReplayStreamsWindows(t *testing.T) {
	rec := loadRecording(t, "SA03/F02_SA03_R02.txt.bz2")
	clock := t0
	s, err := New(Config{MQTTAddr: "127.0.0.1:9", Devices: []Credential{{"da", "x"}}, Replay: []Recording{rec},
		ReplayPause: 30 * time.Second, MotionEvery: time.Millisecond, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	d := &device{s: s, cred: s.cfg.Devices[0], model: newModel(1, 0, leeds, "b", t0), sched: newSchedule(s.cfg, 0),
		replay: &replayer{rec: rec, windows: s.replays[0]}}
	d.sched.mean[kindMotion] = 0 // as Run does for a replaying device
	d.sched.start(t0)
	n := len(s.replays[0])
	var stamps []time.Time
	steps := 2*(n-1) + 35 // the first pass, the pause, three windows of the second
	for step := 0; step < steps; step++ {
		now := t0.Add(time.Duration(step) * time.Second)
		clock = now.Add(time.Duration(step%3) * 37 * time.Millisecond) // a jittery clock: stamps must not follow it
		d.generate(context.Background(), now)
	}
	for _, p := range d.queue {
		if p.typ != event.TypeMotion {
			continue
		}
		var m event.Message
		if err := json.Unmarshal(p.payload, &m); err != nil {
			t.Fatal(err)
		}
		stamps = append(stamps, m.TS)
	}
	// Windows at wall seconds 0, 2, …, 2(n-1); the pause of 30 s; the
	// second pass from 2(n-1)+30.
	want := n + 3
	if len(stamps) != want {
		t.Fatalf("%d windows sent, want %d", len(stamps), want)
	}
	for i := 1; i < n; i++ {
		if d := stamps[i].Sub(stamps[i-1]); d != 2*time.Second {
			t.Errorf("window %d stamped %v after the previous, want 2s", i, d)
		}
	}
	// A new pass is stamped by the clock again (jittered by up to 74 ms).
	if gap := stamps[n].Sub(stamps[n-1]); gap < 30*time.Second-100*time.Millisecond || gap > 30*time.Second+100*time.Millisecond {
		t.Errorf("second pass starts %v after the last window, want the 30s pause", gap)
	}
}

// TestCompactRoundTrip: a compact window decodes (as the server does) to
// the arrays it came from, within half a count.
func TestCompactRoundTrip(t *testing.T) {
	rec := loadRecording(t, "SA03/F02_SA03_R02.txt.bz2")
	ws, err := MotionWindows(rec.Samples, 50, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	dec := event.NewDecoder(event.Limits{})
	for i, w := range ws {
		c := Compact(w)
		b, err := json.Marshal(event.Message{V: 1, ID: "m", TS: t0, Type: event.TypeMotion, Motion: &c})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := dec.Decode(b, event.Origin{OrgID: "o", DeviceID: "d", Source: event.SourceMQTT}, t0)
		if err != nil {
			t.Fatalf("window %d: %v", i, err)
		}
		got := ev.Motion
		if len(got.Accel) != len(w.Accel) || len(got.Gyro) != len(w.Gyro) {
			t.Fatalf("window %d: %d/%d samples back, want %d/%d", i, len(got.Accel), len(got.Gyro), len(w.Accel), len(w.Gyro))
		}
		for j := range w.Accel {
			for k := range 3 {
				if d := got.Accel[j][k] - w.Accel[j][k]; d > 0.0005+1e-9 || d < -0.0005-1e-9 {
					t.Fatalf("window %d sample %d: accel %v, want %v", i, j, got.Accel[j], w.Accel[j])
				}
				if d := got.Gyro[j][k] - w.Gyro[j][k]; d > 0.05+1e-9 || d < -0.05-1e-9 {
					t.Fatalf("window %d sample %d: gyro %v, want %v", i, j, got.Gyro[j], w.Gyro[j])
				}
			}
		}
	}
}
