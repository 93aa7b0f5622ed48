package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"vigil/internal/notify"
	"vigil/internal/notify/console"
)

// orgFromTestHeader stands in for the authenticated session.
func orgFromTestHeader(r *http.Request) (string, bool) {
	org := r.Header.Get("X-Test-Org")
	return org, org != ""
}

// block is one SSE block as a browser's parser sees it.
type block struct {
	id, event, data string
	comments        []string
	retry           string
}

type sseClient struct {
	t    *testing.T
	resp *http.Response
	br   *bufio.Reader
}

func dial(t *testing.T, url, org, lastID string) *sseClient {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-Test-Org", org)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for h, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-store",
		"X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	c := &sseClient{t: t, resp: resp, br: bufio.NewReader(resp.Body)}
	// The preamble comes after the subscription is registered.
	if b, err := c.next(); err != nil || b.retry != "3000" || len(b.comments) == 0 {
		t.Fatalf("preamble = %+v, %v", b, err)
	}
	return c
}

// next reads up to the next blank line.
func (c *sseClient) next() (block, error) {
	var b block
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return b, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return b, nil
		}
		if strings.HasPrefix(line, ":") {
			b.comments = append(b.comments, line)
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			b.id = value
		case "event":
			b.event = value
		case "data":
			if b.data != "" {
				c.t.Errorf("data spans lines: %q then %q", b.data, value)
			}
			b.data += value
		case "retry":
			b.retry = value
		default:
			c.t.Errorf("unknown field %q", line)
		}
	}
}

func (c *sseClient) mustNext() block {
	c.t.Helper()
	b, err := c.next()
	if err != nil {
		c.t.Fatalf("read event: %v", err)
	}
	return b
}

func TestStreamOverHTTP(t *testing.T) {
	h := console.NewHub(console.Config{}, nil)
	ended := make(chan struct{}, 8)
	handler := h.Handler(orgFromTestHeader)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.ServeHTTP(w, r)
		ended <- struct{}{}
	}))
	defer srv.Close()
	n := console.NewNotifier(h)
	ctx := context.Background()
	send := func(org, alert string) notify.Receipt {
		rc, err := n.Notify(ctx, notify.Target{Address: org}, notify.Message{
			Event: notify.EventRaised, AlertID: alert, OrgID: org, Kind: "sos", PersonName: "Ann\nExample",
			ConsoleURL: "https://vigil.example.org/console/alerts/" + alert,
		})
		if err != nil {
			t.Fatal(err)
		}
		return rc
	}

	a := dial(t, srv.URL, "org_a", "")
	b := dial(t, srv.URL, "org_b", "")
	r1 := send("org_a", "al_1")
	send("org_a", "al_2")
	r3 := send("org_b", "al_3")

	got := a.mustNext()
	if got.id != r1.ProviderID || got.event != "raised" {
		t.Errorf("org_a first event = %+v, want id %s", got, r1.ProviderID)
	}
	var al console.Alert
	if err := json.Unmarshal([]byte(got.data), &al); err != nil || al.AlertID != "al_1" || al.PersonName != "Ann\nExample" ||
		al.ConsoleURL != "https://vigil.example.org/console/alerts/al_1" {
		t.Errorf("data %s (%v)", got.data, err)
	}
	second := a.mustNext()
	if !strings.Contains(second.data, `"al_2"`) {
		t.Errorf("org_a second event = %+v", second)
	}
	if got := b.mustNext(); got.id != r3.ProviderID || !strings.Contains(got.data, `"al_3"`) {
		t.Errorf("org_b got %+v, want only its al_3", got)
	}

	// The browser drops; the hub notices and forgets it.
	a.resp.Body.Close()
	<-ended
	if got := h.Subscribers(); got != 1 {
		t.Errorf("Subscribers() = %d after a disconnect, want 1", got)
	}
	send("org_a", "al_4") // missed while away

	// Reconnecting with Last-Event-ID replays what was missed, in order.
	a2 := dial(t, srv.URL, "org_a", second.id)
	if got := a2.mustNext(); !strings.Contains(got.data, `"al_4"`) || got.id == "" {
		t.Errorf("replayed %+v, want al_4", got)
	}
	h.Degraded("sms", true)
	for _, c := range []*sseClient{a2, b} {
		if got := c.mustNext(); got.event != console.EventChannel || got.data != `{"channel":"sms","degraded":true}` {
			t.Errorf("channel event = %+v", got)
		}
	}

	// Close ends every stream.
	h.Close()
	for _, c := range []*sseClient{a2, b} {
		if _, err := c.next(); err != io.EOF {
			t.Errorf("after Close: read error %v, want EOF", err)
		}
	}
	<-ended
	<-ended
}

func TestHandlerRefuses(t *testing.T) {
	h := console.NewHub(console.Config{}, nil)
	handler := h.Handler(orgFromTestHeader)
	for _, tc := range []struct {
		name   string
		method string
		org    string
		status int
	}{
		{"POST", http.MethodPost, "org_a", http.StatusMethodNotAllowed},
		{"no org from auth", http.MethodGet, "", http.StatusForbidden},
	} {
		req := httptest.NewRequest(tc.method, "/console/events?org=org_a", nil)
		req.Header.Set("X-Test-Org", tc.org)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, rec.Code, tc.status)
		}
	}
	h.Close()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-Test-Org", "org_a")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("after Close: status %d, want 503", rec.Code)
	}
}

// streamWriter is a ResponseWriter a test can read while the handler writes.
type streamWriter struct {
	mu     sync.Mutex
	header http.Header
	buf    bytes.Buffer
	code   int
}

func (w *streamWriter) Header() http.Header { return w.header }
func (w *streamWriter) WriteHeader(code int) {
	w.mu.Lock()
	w.code = code
	w.mu.Unlock()
}
func (w *streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}
func (w *streamWriter) Flush() {}
func (w *streamWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// Heartbeats on virtual time: an idle stream gets a comment line every
// interval, and the stream ends when the client goes away.
func TestHeartbeatAndDisconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := console.NewHub(console.Config{Heartbeat: 15 * time.Second}, nil)
		defer h.Close()
		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
		req.Header.Set("X-Test-Org", "org_a")
		w := &streamWriter{header: http.Header{}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.Handler(orgFromTestHeader).ServeHTTP(w, req)
		}()
		synctest.Wait()
		heartbeats := func() (n int) {
			for _, line := range strings.Split(w.String(), "\n") {
				if line == ":" {
					n++
				}
			}
			return n
		}
		if got := heartbeats(); got != 0 {
			t.Fatalf("%d heartbeats at start", got)
		}
		time.Sleep(15 * time.Second)
		synctest.Wait()
		if got := heartbeats(); got != 1 {
			t.Errorf("%d heartbeats after 15 s, want 1", got)
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if got := heartbeats(); got != 3 {
			t.Errorf("%d heartbeats after 45 s, want 3", got)
		}
		if _, err := h.Publish("org_a", "raised", []byte(`{"alert_id":"al_1"}`)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if !strings.Contains(w.String(), "event: raised\ndata: {\"alert_id\":\"al_1\"}\n\n") {
			t.Errorf("stream lacks the event:\n%s", w.String())
		}
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("handler still running after the client went away")
		}
		if h.Subscribers() != 0 {
			t.Errorf("Subscribers() = %d after disconnect", h.Subscribers())
		}
	})
}
