package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"vigil/internal/app"
	"vigil/internal/event"
	"vigil/internal/fall/sisfall"
	"vigil/internal/sim"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
)

// sendRecording publishes a committed SisFall recording as the device's
// motion stream: 2-second windows at 50 Hz on the motion topic, QoS 1.
func sendRecording(t *testing.T, a *app.App, cl *paho.Client, deviceID, name, idPrefix string, compact bool) int {
	t.Helper()
	rec, err := sisfall.LoadPath(filepath.Join("..", "fall", "testdata", "sisfall", name))
	if err != nil {
		t.Fatal(err)
	}
	ws, err := sim.MotionWindows(rec.Samples, 50, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	for i := range ws {
		w := ws[i]
		if compact {
			w = sim.Compact(w)
		}
		b, err := json.Marshal(event.Message{V: 1, ID: fmt.Sprintf("%s-%d", idPrefix, i), TS: start.Add(time.Duration(i) * 2 * time.Second),
			Type: event.TypeMotion, Motion: &w})
		if err != nil {
			t.Fatal(err)
		}
		pr, err := cl.Publish(context.Background(), &paho.Publish{Topic: "v1/devices/" + deviceID + "/motion", QoS: 1, Payload: b})
		if err != nil || pr.ReasonCode >= 0x80 {
			t.Fatalf("publish motion window %d: %v %+v", i, err, pr)
		}
	}
	return len(ws)
}

func counter(t *testing.T, a *app.App, name string) float64 {
	t.Helper()
	mfs, err := a.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s missing", name)
	return 0
}

// TestFallDetectedFromMotion: a real fall recording streamed as motion
// windows over MQTT (in the compact encoding; the other device sends
// arrays) becomes one fall event from the server's detector,
// stored like an alarm; a real daily activity from another device raises
// nothing.
func TestFallDetectedFromMotion(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	ctx := context.Background()
	faller, walker := register(t, a), register(t, a)
	n := sendRecording(t, a, mqttConnect(t, a, walker), walker.DeviceID, "SE03/D11_SE03_R03.txt.bz2", "adl", false)
	n += sendRecording(t, a, mqttConnect(t, a, faller), faller.DeviceID, "SA03/F02_SA03_R02.txt.bz2", "fall", true)

	falls := func(dev string) []store.StoredEvent {
		evs, err := a.Store().ListEvents(ctx, store.EventFilter{DeviceID: dev, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var out []store.StoredEvent
		for _, e := range evs {
			if e.Type == event.TypeFall {
				out = append(out, e)
			}
		}
		return out
	}
	eventually(t, "every motion window through the detector", func() bool {
		return counter(t, a, "vigil_fall_motion_windows_total") >= float64(n)
	})
	eventually(t, "the detected fall in the store", func() bool { return len(falls(faller.DeviceID)) == 1 })
	f := falls(faller.DeviceID)[0]
	if f.Source != event.SourceDetector || f.Fall == nil || f.Fall.Confidence <= 0 || f.OrgID != "acme" {
		t.Errorf("fall event %+v (%+v)", f.Event, f.Fall)
	}
	if got := falls(walker.DeviceID); len(got) != 0 {
		t.Errorf("daily activity raised %d falls", len(got))
	}
	if got := counter(t, a, "vigil_falls_detected_total"); got != 1 {
		t.Errorf("vigil_falls_detected_total = %v, want 1", got)
	}
	// The safety engine makes it a fall pre-alert the wearer can cancel.
	eventually(t, "the fall pre-alert", func() bool {
		as, err := a.Store().ListAlerts(ctx, store.AlertFilter{Kind: "fall"})
		return err == nil && len(as) == 1 && as[0].DeviceID == faller.DeviceID && as[0].State == store.AlertPending
	})
	// The detector's state is saved for a restart.
	if _, err := a.Store().GetMeta(ctx, "fall-state/"+faller.DeviceID); err != nil {
		t.Errorf("no saved detector state: %v", err)
	}
}
