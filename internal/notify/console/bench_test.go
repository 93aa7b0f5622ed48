package console_test

import (
	"testing"

	"vigil/internal/notify/console"
)

// BenchmarkPublishFanout100 measures Publish of one alert to an
// organisation with 100 connected consoles. The subscribers are drained
// outside the timer, so every Publish fans out to all 100 (none dropped).
func BenchmarkPublishFanout100(b *testing.B) {
	const subscribers, buffer = 100, 256
	h := console.NewHub(console.Config{Buffer: buffer, MaxSubscribers: subscribers}, nil)
	defer h.Close()
	subs := make([]*console.Subscription, subscribers)
	for i := range subs {
		s, err := h.Subscribe("org_a", "")
		if err != nil {
			b.Fatal(err)
		}
		subs[i] = s
	}
	drain := func() {
		for _, s := range subs {
			for more := true; more; {
				select {
				case <-s.Events():
				default:
					more = false
				}
			}
		}
	}
	data := []byte(`{"alert_id":"al_01HZX3K9","org_id":"org_a","event":"raised","kind":"sos","severity":"critical","state":"open","raised_at":"2026-03-14T10:02:03Z","step":0,"attempt":0,"person_name":"Bea Worker","position":{"lat":51.50735,"lon":-0.12776,"accuracy_m":12}}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%buffer == buffer-1 {
			b.StopTimer()
			drain()
			b.StartTimer()
		}
		if _, err := h.Publish("org_a", "raised", data); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if d := h.Dropped(); d != 0 {
		b.Fatalf("%d subscribers dropped", d)
	}
}
