package httpgw_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzDecodeHTTPEvent posts arbitrary bodies to the device API: never a
// panic or a 5xx, and a 200 only when every event was handed on.
func FuzzDecodeHTTPEvent(f *testing.F) {
	f.Add([]byte(`{"events":[{"v":1,"id":"a","ts":"2026-11-29T11:59:00Z","type":"heartbeat"}]}`))
	f.Add([]byte(`{"events":[{"v":1,"id":"a","ts":"2026-11-29T11:59:00Z","type":"battery","battery":{"percent":50,"charging":true}}]}`))
	f.Add([]byte(`{"events":null}`))
	f.Add([]byte(`[]`))
	srv, s := setup(f)
	mux := srv.Config.Handler
	f.Fuzz(func(t *testing.T, body []byte) {
		s.mu.Lock()
		before := len(s.evs)
		s.mu.Unlock()
		req := httptest.NewRequest("POST", "/api/v1/devices/da/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer secret-a")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for client input", rec.Code)
		}
		s.mu.Lock()
		added := len(s.evs) - before
		s.mu.Unlock()
		if rec.Code == http.StatusOK {
			var out struct{ Accepted int }
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Accepted != added || added == 0 {
				t.Fatalf("200 with accepted %d but %d events handed on", out.Accepted, added)
			}
		} else if added != 0 {
			t.Fatalf("status %d but %d events handed on", rec.Code, added)
		}
	})
}
