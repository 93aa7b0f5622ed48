package httpgw_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/clock"
	"vigil/internal/event"
	"vigil/internal/gateway/httpgw"
)

type devices map[string]string

func (d devices) AuthenticateDevice(_ context.Context, id, secret string) (string, bool, error) {
	if s, ok := d[id]; ok && s == secret {
		return "acme", true, nil
	}
	return "", false, nil
}

type sink struct {
	mu   sync.Mutex
	evs  []event.Event
	fail bool
}

func (s *sink) PublishEvents(_ context.Context, evs []event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("jetstream unavailable")
	}
	s.evs = append(s.evs, evs...)
	return nil
}

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func setup(t testing.TB) (*httptest.Server, *sink) {
	t.Helper()
	s := &sink{}
	gw := httpgw.New(httpgw.Config{}, devices{"da": "secret-a", "db": "secret-b"}, s,
		event.NewDecoder(event.Limits{MaxBatchBytes: 64 << 10}), clock.Func(func() time.Time { return now }),
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	mux := http.NewServeMux()
	gw.Register(mux)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	return srv, s
}

func post(t *testing.T, srv *httptest.Server, device, secret, ctype, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", srv.URL+"/api/v1/devices/"+device+"/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func pos(id, ts string, lat float64) string {
	return fmt.Sprintf(`{"v":1,"id":%q,"ts":%q,"type":"position","position":{"lat":%v,"lon":-1.55,"accuracy_m":10}}`, id, ts, lat)
}

func batch(evs ...string) string { return `{"events":[` + strings.Join(evs, ",") + `]}` }

func errField(out map[string]any) (code, field string) {
	e, _ := out["error"].(map[string]any)
	code, _ = e["code"].(string)
	field, _ = e["field"].(string)
	return code, field
}

func TestPostEvents(t *testing.T) {
	srv, s := setup(t)
	// Store-and-forward: an event from three hours ago is accepted and
	// flagged late, with its original timestamp.
	code, out := post(t, srv, "da", "secret-a", "application/json",
		batch(pos("a1", "2026-11-29T09:00:00Z", 53.8), pos("a2", "2026-11-29T11:59:50Z", 53.81)))
	if code != 200 || out["accepted"] != float64(2) {
		t.Fatalf("got %d %v, want 200 accepted 2", code, out)
	}
	if len(s.evs) != 2 || !s.evs[0].Late || s.evs[1].Late {
		t.Fatalf("late flags wrong: %+v", s.evs)
	}
	if !s.evs[0].DeviceTime.Equal(time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)) || s.evs[0].OrgID != "acme" || s.evs[0].Source != event.SourceHTTP {
		t.Fatalf("event not normalised as sent: %+v", s.evs[0])
	}
}

func TestPostEventsErrors(t *testing.T) {
	srv, s := setup(t)
	good := batch(pos("g1", "2026-11-29T11:59:00Z", 53.8))
	big := batch(strings.Repeat(pos("x", "2026-11-29T11:59:00Z", 53.8)+",", 1000) + pos("y", "2026-11-29T11:59:00Z", 53.8))
	for _, tc := range []struct {
		name, device, secret, ctype, body string
		status                            int
		code, field                       string
	}{
		{"no credentials", "da", "", "application/json", good, 401, "unauthorized", ""},
		{"wrong secret", "da", "secret-b", "application/json", good, 401, "unauthorized", ""},
		{"another device's id", "db", "secret-a", "application/json", good, 401, "unauthorized", ""},
		{"unknown device", "dx", "secret-a", "application/json", good, 401, "unauthorized", ""},
		{"form content type", "da", "secret-a", "application/x-www-form-urlencoded", good, 415, "unsupported_media_type", "Content-Type"},
		{"missing content type", "da", "secret-a", "", good, 415, "unsupported_media_type", "Content-Type"},
		{"bad lat in the second event", "da", "secret-a", "application/json",
			batch(pos("b1", "2026-11-29T11:59:00Z", 53.8), pos("b2", "2026-11-29T11:59:00Z", 95)), 400, "invalid_event", "events[1].position.lat"},
		{"not JSON", "da", "secret-a", "application/json", "{nope", 400, "invalid_event", ""},
		{"empty batch", "da", "secret-a", "application/json", `{"events":[]}`, 400, "invalid_event", "events"},
		{"body over the limit", "da", "secret-a", "application/json", big, 413, "too_large", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := post(t, srv, tc.device, tc.secret, tc.ctype, tc.body)
			code, field := errField(out)
			if status != tc.status || code != tc.code || field != tc.field {
				t.Errorf("got %d %q field %q, want %d %q field %q (%v)", status, code, field, tc.status, tc.code, tc.field, out)
			}
		})
	}
	if len(s.evs) != 0 {
		t.Fatalf("refused batches reached the pipeline: %d events", len(s.evs))
	}
	// The error never echoes a coordinate.
	_, out := post(t, srv, "da", "secret-a", "application/json", batch(pos("c1", "2026-11-29T11:59:00Z", 95.123456)))
	b, _ := json.Marshal(out)
	if bytes.Contains(b, []byte("95.123456")) {
		t.Fatalf("error body echoes the submitted value: %s", b)
	}
}

func TestPostEventsBackendDown(t *testing.T) {
	srv, s := setup(t)
	s.fail = true
	status, out := post(t, srv, "da", "secret-a", "application/json", batch(pos("d1", "2026-11-29T11:59:00Z", 53.8)))
	if code, _ := errField(out); status != 503 || code != "unavailable" {
		t.Fatalf("got %d %v, want 503 unavailable", status, out)
	}
}
