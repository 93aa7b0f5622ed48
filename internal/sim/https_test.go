package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/event"
	"vigil/internal/sim"
)

var decoder = event.NewDecoder(event.Limits{})

// logBuffer collects the simulator's logs (at debug) so a test can prove
// they hold no coordinates or secrets.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// logger logs at debug without timestamps (a time such as 10:30:53.868
// would look like a coordinate to checkLogs).
func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
}

// checkLogs fails if a log line holds a coordinate of the walking area or
// a secret.
func checkLogs(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	if !strings.Contains(logs, "sim stopped") {
		t.Errorf("no final summary in logs:\n%s", logs)
	}
	for _, s := range append(secrets, "53.8", "-1.5") {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain %q:\n%s", s, logs)
		}
	}
}

// request is one POST the fake API received.
type request struct {
	ids    []string
	events map[string]string // id → raw event JSON
}

// fakeAPI is the HTTPS device API at the network edge: it checks what a
// phone sends and answers with the scripted statuses, then 200.
type fakeAPI struct {
	t       *testing.T
	secret  string
	mu      sync.Mutex
	script  []func(w http.ResponseWriter, r request)
	reqs    chan request
	invalid []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/devices/dphone/events" {
		f.fail("got %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.secret || r.Header.Get("Content-Type") != "application/json" {
		f.fail("got headers %v", r.Header)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	body, _ := io.ReadAll(r.Body)
	evs, err := decoder.DecodeBatch(body, event.Origin{OrgID: "o", DeviceID: "dphone", Source: event.SourceHTTP}, time.Now())
	if err != nil {
		f.fail("batch refused: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var raw struct{ Events []json.RawMessage }
	if err := json.Unmarshal(body, &raw); err != nil {
		f.fail("%v", err)
	}
	req := request{events: map[string]string{}}
	for i, ev := range evs {
		req.ids = append(req.ids, ev.MsgID)
		req.events[ev.MsgID] = string(raw.Events[i])
	}
	f.mu.Lock()
	var step func(http.ResponseWriter, request)
	if len(f.script) > 0 {
		step, f.script = f.script[0], f.script[1:]
	}
	f.mu.Unlock()
	if step != nil {
		step(w, req)
	} else {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"accepted":%d,"duplicates":0}`, len(evs))
	}
	f.reqs <- req
}

func (f *fakeAPI) fail(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invalid = append(f.invalid, fmt.Sprintf(format, args...))
}

// runPhone runs one phone device against the fake until want(requests)
// is satisfied, and returns the requests and the stats.
func runPhone(t *testing.T, script []func(http.ResponseWriter, request), want func([]request) bool) ([]request, sim.Stats) {
	t.Helper()
	api := &fakeAPI{t: t, secret: "phone-secret-1", script: script, reqs: make(chan request, 1000)}
	srv := httptest.NewTLSServer(api)
	defer srv.Close()
	logs := &logBuffer{}
	s, err := sim.New(sim.Config{
		HTTPSAddr:  srv.Listener.Addr().String(),
		TLS:        srv.Client().Transport.(*http.Transport).TLSClientConfig,
		Devices:    []sim.Credential{{DeviceID: "dphone", Secret: "phone-secret-1"}},
		HTTPShare:  1,
		Rate:       50,
		BatchEvery: 30 * time.Millisecond,
		RetryMin:   10 * time.Millisecond,
		Seed:       1,
		Logger:     logs.logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	var reqs []request
	timeout := time.After(10 * time.Second)
	for !want(reqs) {
		select {
		case r := <-api.reqs:
			reqs = append(reqs, r)
		case <-timeout:
			cancel()
			<-done
			t.Fatalf("timed out after %d requests", len(reqs))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	for _, msg := range api.invalid {
		t.Error(msg)
	}
	checkLogs(t, logs.String(), "phone-secret-1")
	return reqs, s.Stats()
}

// TestHTTPSStoreAndForward: a batch answered 503 is kept and sent again
// with the same ids and the same bytes, and counted acked once 200 comes.
func TestHTTPSStoreAndForward(t *testing.T) {
	unavailable := func(w http.ResponseWriter, _ request) {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"code":"unavailable","message":"try again later"}}`)
	}
	// A third request proves the simulator has processed the second's 200.
	reqs, st := runPhone(t, []func(http.ResponseWriter, request){unavailable}, func(r []request) bool { return len(r) >= 3 })
	first, second := reqs[0], reqs[1]
	if len(first.ids) == 0 {
		t.Fatal("first batch empty")
	}
	// The resend starts with the refused batch, unchanged, in order.
	if len(second.ids) < len(first.ids) {
		t.Fatalf("resent %d events, want at least the %d of the failed batch", len(second.ids), len(first.ids))
	}
	if diff := cmp.Diff(first.ids, second.ids[:len(first.ids)]); diff != "" {
		t.Errorf("resent ids (-first +second):\n%s", diff)
	}
	for id, ev := range first.events {
		if second.events[id] != ev {
			t.Errorf("event %s changed on resend:\n%s\n%s", id, ev, second.events[id])
		}
	}
	if st.Errors < 1 || st.Resent < uint64(len(first.ids)) || st.Acked < uint64(len(second.ids)) {
		t.Errorf("got errors %d resent %d acked %d, want ≥1, ≥%d, ≥%d", st.Errors, st.Resent, st.Acked, len(first.ids), len(second.ids))
	}
	if len(st.Refused) != 0 {
		t.Errorf("got refusals %v, want none", st.Refused)
	}
}

// TestHTTPSRefusedEventDropped: a 400 naming events[1] drops that event
// (counted, not retried) and resends the others.
func TestHTTPSRefusedEventDropped(t *testing.T) {
	var bad string
	refuse := func(w http.ResponseWriter, r request) {
		if len(r.ids) > 1 {
			bad = r.ids[1]
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"code":"invalid_event","field":"events[1].position.lat","message":"must be between -90 and 90"}}`)
	}
	// Hold the first batch until it has two events.
	reqs, st := runPhone(t, []func(http.ResponseWriter, request){refuse}, func(r []request) bool {
		return len(r) >= 2 && bad != ""
	})
	if bad == "" {
		t.Fatal("no batch with two events arrived: nothing to refuse")
	}
	var want []string
	for _, id := range reqs[0].ids {
		if id != bad {
			want = append(want, id)
		}
	}
	if diff := cmp.Diff(want, reqs[1].ids[:len(want)]); diff != "" {
		t.Errorf("resent ids (-want +got):\n%s", diff)
	}
	for _, r := range reqs[1:] {
		if _, ok := r.events[bad]; ok {
			t.Errorf("refused event %s was sent again", bad)
		}
	}
	if st.Refused["http_400"] != 1 {
		t.Errorf("got refused %v, want http_400: 1", st.Refused)
	}
}
