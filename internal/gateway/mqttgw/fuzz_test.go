package mqttgw

import (
	"testing"
	"time"

	"vigil/internal/event"
)

// FuzzDecodeMQTTEvent feeds arbitrary topics and payloads to the gateway's
// decoder: it must never panic, and whatever it accepts must be a valid
// event of the authenticated device on the right topic.
func FuzzDecodeMQTTEvent(f *testing.F) {
	f.Add("v1/devices/da/events", []byte(`{"v":1,"id":"m1","ts":"2026-11-29T11:59:59Z","type":"button","button":{"kind":"sos"}}`))
	f.Add("v1/devices/da/motion", []byte(`{"v":1,"id":"m2","ts":"2026-11-29T11:59:59Z","type":"motion","motion":{"rate_hz":50,"accel":[[0,0,1],[0.1,0,0.9]]}}`))
	f.Add("v1/devices/da/events", []byte(`{"v":1,"id":"m3","ts":"2026-11-29T11:59:59Z","type":"position","position":{"lat":53.8,"lon":-1.5,"accuracy_m":5}}`))
	f.Add("v1/devices/da/events", []byte("\xff\xfe{"))
	dec := event.NewDecoder(event.Limits{})
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		ev, reason, err := decode(dec, topic, payload, event.Origin{OrgID: "acme", DeviceID: "da", Source: event.SourceMQTT}, now)
		if err != nil {
			if reason == "" {
				t.Fatal("refusal without a reason label")
			}
			return
		}
		if ev.DeviceID != "da" || ev.OrgID != "acme" {
			t.Fatalf("identity not from the connection: %+v", ev)
		}
		b, err := event.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := event.Unmarshal(b); err != nil {
			t.Fatalf("accepted event does not round-trip: %v", err)
		}
	})
}
