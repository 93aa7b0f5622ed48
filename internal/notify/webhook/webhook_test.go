package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/clock"
	"vigil/internal/notify"
	"vigil/internal/notify/outbound"
	"vigil/internal/notify/webhook"
)

var t0 = time.Date(2026, 3, 1, 14, 3, 0, 0, time.UTC)

// serveOn starts an httptest server bound to ip (Linux routes all of
// 127.0.0.0/8 to lo).
func serveOn(t *testing.T, ip string, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		if os.Getenv("CI") != "" { // CI runs on Linux: these tests must run there
			t.Fatalf("cannot listen on %s (needs a Linux-style 127.0.0.0/8 loopback): %v", ip, err)
		}
		t.Skipf("cannot listen on %s (needs a Linux-style 127.0.0.0/8 loopback): %v", ip, err)
	}
	s := httptest.NewUnstartedServer(h)
	s.Listener.Close()
	s.Listener = ln
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// client is the production client with the test override: only
// 127.0.0.2 may be reached.
func client(t *testing.T) *http.Client {
	t.Helper()
	c, err := outbound.New(outbound.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// autoClock is a clock whose timers fire as soon as they are armed,
// moving the time to their instant: retries run at once, and the waits
// are recorded.
type autoClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *autoClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *autoClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

func (c *autoClock) NewTimer() clock.Timer { return &autoTimer{c: c, ch: make(chan time.Time, 1)} }

type autoTimer struct {
	c  *autoClock
	ch chan time.Time
}

func (t *autoTimer) C() <-chan time.Time { return t.ch }
func (t *autoTimer) Stop()               {}
func (t *autoTimer) ResetAt(at time.Time) {
	t.c.mu.Lock()
	t.c.waits = append(t.c.waits, at.Sub(t.c.now))
	if at.After(t.c.now) {
		t.c.now = at
	}
	now := t.c.now
	t.c.mu.Unlock()
	t.ch <- now
}

// identity jitter: every wait is the exponential ceiling itself.
func noJitter(d time.Duration) time.Duration { return d }

const secret = "s3cr3t-CANARY-key-7f3a9c"

func secretFor(context.Context, notify.Target) ([]byte, error) { return []byte(secret), nil }

func message() notify.Message {
	return notify.Message{
		Event: notify.EventRaised, AlertID: "al_1", OrgID: "org_1", Kind: "sos", Severity: "critical",
		State: "open", RaisedAt: t0, Step: 1, Attempt: 2,
		PersonName: "Ada CANARY-NAME", Note: "CANARY-NOTE insulin", Detail: "button",
		Position:   &notify.Position{Lat: 51.5, Lon: -0.12, AccuracyM: 8, At: t0.Add(-time.Second)},
		ConsoleURL: "https://vigil.example/alerts/al_1", MapURL: "https://vigil.example/map/al_1",
		AckURL: "https://vigil.example/ack/tok", AckedBy: "",
	}
}

// captured is one request as the receiver saw it.
type captured struct {
	header http.Header
	body   []byte
}

// receiver answers with the statuses in turn (the last one repeats) and
// records every request.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	got      []captured
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.got = append(r.got, captured{req.Header.Clone(), body})
	i := min(len(r.got), len(r.statuses)) - 1
	st := r.statuses[i]
	r.mu.Unlock()
	w.WriteHeader(st)
	// Echo everything back: a careless receiver, whose answer must never
	// reach an error or a log.
	fmt.Fprintf(w, "%v %s", req.Header, body)
}

func (r *receiver) requests() []captured {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]captured(nil), r.got...)
}

func newNotifier(t *testing.T, clk clock.Clock, cfg webhook.Config) *webhook.Notifier {
	t.Helper()
	cfg.Clock = clk
	if cfg.Jitter == nil {
		cfg.Jitter = noJitter
	}
	return webhook.New(client(t), secretFor, cfg)
}

func TestDeliveredAndVerified(t *testing.T) {
	clk := &autoClock{now: t0}
	var verr error
	var got webhook.Payload
	s := serveOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// The reference verifier, on the receiver's clock.
		verr = webhook.Verify([]byte(secret), r.Header, body, clk.Now(), 0)
		if err := json.Unmarshal(body, &got); err != nil {
			verr = err
		}
		if r.Header.Get(webhook.HeaderDelivery) != got.DeliveryID || r.Header.Get("Content-Type") != "application/json" {
			verr = fmt.Errorf("headers %v do not match the body's delivery id %q", r.Header, got.DeliveryID)
		}
	}))
	n := newNotifier(t, clk, webhook.Config{NewDeliveryID: func() string { return "dlv_1" }})
	if n.Channel() != "webhook" {
		t.Errorf("Channel() = %q", n.Channel())
	}
	rcpt, err := n.Notify(t.Context(), notify.Target{Channel: "webhook", Address: s.URL + "/hook"}, message())
	if err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if verr != nil {
		t.Fatalf("receiver: %v", verr)
	}
	if want := (notify.Receipt{ProviderID: "dlv_1", Attempts: 1}); rcpt != want {
		t.Errorf("receipt = %+v, want %+v", rcpt, want)
	}
	want := webhook.Payload{
		Schema: "vigil.alert.v1", DeliveryID: "dlv_1", Event: "raised", AlertID: "al_1", OrgID: "org_1",
		Kind: "sos", Severity: "critical", State: "open", RaisedAt: t0, Step: 1, Attempt: 2,
		PersonName: "Ada CANARY-NAME", Note: "CANARY-NOTE insulin", Detail: "button",
		Position:   &webhook.Position{Lat: 51.5, Lon: -0.12, AccuracyM: 8, At: t0.Add(-time.Second)},
		ConsoleURL: "https://vigil.example/alerts/al_1", MapURL: "https://vigil.example/map/al_1",
		AckURL: "https://vigil.example/ack/tok",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
}

// The JSON field names are the schema: a golden check on the raw keys.
func TestPayloadSchemaKeys(t *testing.T) {
	b, err := json.Marshal(webhook.NewPayload("d", message()))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "delivery_id", "event", "alert_id", "org_id", "kind", "severity", "state",
		"raised_at", "step", "attempt", "person_name", "note", "position", "console_url", "map_url", "ack_url"} {
		if _, ok := m[k]; !ok {
			t.Errorf("payload has no %q: %s", k, b)
		}
	}
	if m["raised_at"] != "2026-03-01T14:03:00Z" {
		t.Errorf("raised_at = %v", m["raised_at"])
	}
	bad := message()
	bad.ConsoleURL, bad.MapURL, bad.AckURL = "javascript:alert(1)", "/relative", "data:text/html,x"
	if p := webhook.NewPayload("d", bad); p.ConsoleURL != "" || p.MapURL != "" || p.AckURL != "" {
		t.Errorf("links that are not http(s) were kept: %+v", p)
	}
	b, _ = json.Marshal(webhook.NewPayload("d", notify.Message{Event: notify.EventResolved, AlertID: "a"}))
	if bytes.Contains(b, []byte("raised_at")) || bytes.Contains(b, []byte("position")) {
		t.Errorf("empty fields not omitted: %s", b)
	}
}

func TestRetriesThenDelivered(t *testing.T) {
	clk := &autoClock{now: t0}
	rcv := &receiver{statuses: []int{500, 500, 200}}
	s := serveOn(t, "127.0.0.2", rcv)
	n := newNotifier(t, clk, webhook.Config{BaseDelay: time.Second, MaxDelay: time.Minute})
	rcpt, err := n.Notify(t.Context(), notify.Target{Address: s.URL}, message())
	if err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if rcpt.Attempts != 3 {
		t.Errorf("attempts = %d, want 3", rcpt.Attempts)
	}
	if diff := cmp.Diff([]time.Duration{time.Second, 2 * time.Second}, clk.Waits()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	reqs := rcv.requests()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(reqs))
	}
	// One delivery id for all tries; each try signed at its own time.
	for i, r := range reqs {
		if r.header.Get(webhook.HeaderDelivery) != rcpt.ProviderID {
			t.Errorf("try %d delivery id %q, want %q", i, r.header.Get(webhook.HeaderDelivery), rcpt.ProviderID)
		}
		if !bytes.Equal(r.body, reqs[0].body) {
			t.Errorf("try %d body differs from the first", i)
		}
	}
	if a, b := reqs[0].header.Get(webhook.HeaderTimestamp), reqs[2].header.Get(webhook.HeaderTimestamp); a == b {
		t.Errorf("the third try reused the first one's timestamp %s", a)
	}
}

func TestClientErrorIsPermanent(t *testing.T) {
	for _, st := range []int{400, 401, 403, 404, 410, 422, 302, 304} {
		t.Run(fmt.Sprint(st), func(t *testing.T) {
			clk := &autoClock{now: t0}
			rcv := &receiver{statuses: []int{st}}
			s := serveOn(t, "127.0.0.2", rcv)
			n := newNotifier(t, clk, webhook.Config{})
			_, err := n.Notify(t.Context(), notify.Target{Address: s.URL + "/h?x=1"}, message())
			if !notify.IsPermanent(err) {
				t.Fatalf("err = %v, want permanent", err)
			}
			var dl *webhook.DeadLetter
			if !errors.As(err, &dl) {
				t.Fatalf("err = %v, want a DeadLetter", err)
			}
			if dl.Attempts != 1 || dl.Reason != "permanent" || len(rcv.requests()) != 1 {
				t.Errorf("dead letter %+v after %d requests, want 1 permanent attempt", dl, len(rcv.requests()))
			}
			if st < 300 || st >= 400 {
				if dl.LastStatus != st || dl.LastClass != "status" {
					t.Errorf("last status %d class %q, want %d status", dl.LastStatus, dl.LastClass, st)
				}
			}
		})
	}
}

func TestAlways500DeadLetter(t *testing.T) {
	clk := &autoClock{now: t0}
	rcv := &receiver{statuses: []int{503}}
	s := serveOn(t, "127.0.0.2", rcv)
	n := newNotifier(t, clk, webhook.Config{MaxAttempts: 4, MaxElapsed: time.Hour, BaseDelay: time.Second, MaxDelay: 3 * time.Second})
	_, err := n.Notify(t.Context(), notify.Target{Address: "http://user:pw@" + strings.TrimPrefix(s.URL, "http://") + "/in?token=q"}, message())
	if err == nil || notify.IsPermanent(err) {
		t.Fatalf("err = %v, want a non-permanent dead letter", err)
	}
	var dl *webhook.DeadLetter
	if !errors.As(err, &dl) {
		t.Fatalf("err = %v, want a DeadLetter", err)
	}
	want := webhook.DeadLetter{
		DeliveryID: dl.DeliveryID, URL: s.URL + "/in", Attempts: 4, LastStatus: 503, LastClass: "status",
		Reason: "max_attempts", First: t0, Last: t0.Add(6 * time.Second),
	}
	if diff := cmp.Diff(want, *dl, cmp.AllowUnexported(webhook.DeadLetter{}), cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".err"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("dead letter (-want +got):\n%s", diff)
	}
	var se *webhook.StatusError
	if !errors.As(err, &se) || se.Code != 503 {
		t.Errorf("err = %v, want to unwrap to StatusError 503", err)
	}
	if len(rcv.requests()) != 4 {
		t.Errorf("receiver got %d requests, want 4", len(rcv.requests()))
	}
	// The ceiling caps the third wait.
	if diff := cmp.Diff([]time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, clk.Waits()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
}

func TestMaxElapsed(t *testing.T) {
	clk := &autoClock{now: t0}
	rcv := &receiver{statuses: []int{500}}
	s := serveOn(t, "127.0.0.2", rcv)
	n := newNotifier(t, clk, webhook.Config{MaxAttempts: 10, MaxElapsed: 5 * time.Second, BaseDelay: time.Second})
	_, err := n.Notify(t.Context(), notify.Target{Address: s.URL}, message())
	var dl *webhook.DeadLetter
	if !errors.As(err, &dl) || dl.Reason != "max_elapsed" || dl.Attempts != 3 {
		t.Fatalf("err = %v (%+v), want max_elapsed after 3 attempts (waits 1s, 2s; 4s more would pass 5s)", err, dl)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	clk := &autoClock{now: t0}
	var n429 atomic.Int32
	s := serveOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n429.Add(1) == 1 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	n := newNotifier(t, clk, webhook.Config{BaseDelay: time.Second, MaxDelay: time.Minute})
	rcpt, err := n.Notify(t.Context(), notify.Target{Address: s.URL}, message())
	if err != nil || rcpt.Attempts != 2 {
		t.Fatalf("Notify = %+v, %v; want delivered on the 2nd attempt", rcpt, err)
	}
	if diff := cmp.Diff([]time.Duration{7 * time.Second}, clk.Waits()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
}

// A connection dropped without an answer is retried.
func TestNetworkErrorRetried(t *testing.T) {
	clk := &autoClock{now: t0}
	var calls atomic.Int32
	s := serveOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		}
	}))
	n := newNotifier(t, clk, webhook.Config{})
	rcpt, err := n.Notify(t.Context(), notify.Target{Address: s.URL}, message())
	if err != nil || rcpt.Attempts != 2 {
		t.Fatalf("Notify = %+v, %v; want delivered on the 2nd attempt", rcpt, err)
	}
}

// hangFirst is a receiver at the network edge that never answers its
// first request (it waits for the request's context to end).
type hangFirst struct{ calls atomic.Int32 }

func (h *hangFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	if h.calls.Add(1) == 1 {
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: req}, nil
}

// A try that times out is retried, all in virtual time: the real clock and
// the default waits inside a synctest bubble.
func TestTimeoutRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := &hangFirst{}
		n := webhook.New(&http.Client{Transport: rt}, secretFor, webhook.Config{
			AttemptTimeout: 10 * time.Second, BaseDelay: time.Second, Jitter: noJitter,
		})
		start := time.Now()
		rcpt, err := n.Notify(t.Context(), notify.Target{Address: "https://hooks.example.test/"}, message())
		if err != nil || rcpt.Attempts != 2 {
			t.Fatalf("Notify = %+v, %v; want delivered on the 2nd attempt", rcpt, err)
		}
		if got, want := time.Since(start), 11*time.Second; got != want {
			t.Errorf("took %v of virtual time, want %v (timeout + 1s backoff)", got, want)
		}
	})
}

// Cancelling the caller's context ends the waits at once.
func TestCancelDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		defer cancel()
		rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 500, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: req}, nil
		})
		n := webhook.New(&http.Client{Transport: rt}, secretFor, webhook.Config{BaseDelay: time.Second, Jitter: noJitter})
		_, err := n.Notify(ctx, notify.Target{Address: "https://hooks.example.test/"}, message())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the context's deadline", err)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A target the outbound policy refuses fails at once, permanently.
func TestRefusedTargetIsPermanent(t *testing.T) {
	var hits atomic.Int32
	s := serveOn(t, "127.0.0.1", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	n := newNotifier(t, &autoClock{now: t0}, webhook.Config{})
	_, err := n.Notify(t.Context(), notify.Target{Address: s.URL}, message())
	var dl *webhook.DeadLetter
	if !notify.IsPermanent(err) || !errors.Is(err, outbound.ErrRefused) || !errors.As(err, &dl) {
		t.Fatalf("err = %v, want permanent, refused, dead letter", err)
	}
	if dl.Attempts != 1 || dl.LastClass != "refused" || hits.Load() != 0 {
		t.Errorf("dead letter %+v, hits %d; want 1 attempt, class refused, no hit", dl, hits.Load())
	}
}

func TestBadTargetsAndSecrets(t *testing.T) {
	clk := &autoClock{now: t0}
	for _, addr := range []string{"", "ftp://x/", "hooks.example", "http://", "http://%zz/"} {
		n := newNotifier(t, clk, webhook.Config{})
		if _, err := n.Notify(t.Context(), notify.Target{Address: addr}, message()); !notify.IsPermanent(err) {
			t.Errorf("address %q: err = %v, want permanent", addr, err)
		}
	}
	empty := webhook.New(client(t), func(context.Context, notify.Target) ([]byte, error) { return nil, nil }, webhook.Config{})
	if _, err := empty.Notify(t.Context(), notify.Target{Address: "https://x.example/"}, message()); !notify.IsPermanent(err) {
		t.Errorf("empty secret: err = %v, want permanent", err)
	}
	lookupErr := errors.New("store: not found")
	failing := webhook.New(client(t), func(context.Context, notify.Target) ([]byte, error) { return nil, lookupErr }, webhook.Config{})
	if _, err := failing.Notify(t.Context(), notify.Target{Address: "https://x.example/"}, message()); !errors.Is(err, lookupErr) {
		t.Errorf("lookup failure: err = %v, want it wrapped", err)
	}
}

// Row 28: the receiver verifies the signature, and a replay of the same
// request 10 minutes later is rejected by the reference verifier.
func TestReplayRejected(t *testing.T) {
	clk := &autoClock{now: t0}
	rcv := &receiver{statuses: []int{200}}
	s := serveOn(t, "127.0.0.2", rcv)
	n := newNotifier(t, clk, webhook.Config{})
	if _, err := n.Notify(t.Context(), notify.Target{Address: s.URL}, message()); err != nil {
		t.Fatal(err)
	}
	req := rcv.requests()[0]
	key := []byte(secret)
	if err := webhook.Verify(key, req.header, req.body, t0, 0); err != nil {
		t.Fatalf("fresh delivery: %v", err)
	}
	if err := webhook.Verify(key, req.header, req.body, t0.Add(4*time.Minute+59*time.Second), 0); err != nil {
		t.Errorf("replay inside the window: %v, want accepted (the receiver de-duplicates on delivery_id)", err)
	}
	for name, tc := range map[string]struct {
		key    []byte
		header http.Header
		body   []byte
		now    time.Time
		want   error
	}{
		"replay 10 min later":  {key, req.header, req.body, t0.Add(10 * time.Minute), webhook.ErrStale},
		"from 10 min ahead":    {key, req.header, req.body, t0.Add(-10 * time.Minute), webhook.ErrStale},
		"tampered body":        {key, req.header, append(bytes.Clone(req.body), ' '), t0, webhook.ErrBadSignature},
		"wrong key":            {[]byte("other"), req.header, req.body, t0, webhook.ErrBadSignature},
		"empty key":            {nil, req.header, req.body, t0, webhook.ErrBadSignature},
		"re-stamped timestamp": {key, with(req.header, webhook.HeaderTimestamp, fmt.Sprint(t0.Add(10*time.Minute).Unix())), req.body, t0.Add(10 * time.Minute), webhook.ErrBadSignature},
		"no signature":         {key, with(req.header, webhook.HeaderSignature, ""), req.body, t0, webhook.ErrNoSignature},
		"no timestamp":         {key, with(req.header, webhook.HeaderTimestamp, ""), req.body, t0, webhook.ErrBadTimestamp},
		"signed timestamp +":   {key, with(req.header, webhook.HeaderTimestamp, "+"+req.header.Get(webhook.HeaderTimestamp)), req.body, t0, webhook.ErrBadTimestamp},
	} {
		if err := webhook.Verify(tc.key, tc.header, tc.body, tc.now, 0); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", name, err, tc.want)
		}
	}
	// Key rotation: a header with an unknown scheme and two v1 values, one
	// of them right, verifies.
	h := with(req.header, webhook.HeaderSignature, "v0=abc, v1="+strings.Repeat("00", 32)+", "+req.header.Get(webhook.HeaderSignature))
	if err := webhook.Verify(key, h, req.body, t0, time.Minute); err != nil {
		t.Errorf("rotated header: %v", err)
	}
}

func with(h http.Header, k, v string) http.Header {
	h = h.Clone()
	if v == "" {
		h.Del(k)
	} else {
		h.Set(k, v)
	}
	return h
}

// Rows 28 and 39: the secret key, the URL's credentials and query, and the
// message's personal data never appear in a returned error or a log line,
// whatever the receiver answers (it echoes the request back).
func TestNoSecretLeaks(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	canaries := []string{secret, "CANARY-PASS", "CANARY-QUERY", "CANARY-PATH", "CANARY-NAME", "CANARY-NOTE"}

	rcv := &receiver{statuses: []int{500, 500, 400}}
	s := serveOn(t, "127.0.0.2", rcv)
	loop := serveOn(t, "127.0.0.1", rcv)
	var errs []error
	for _, addr := range []string{s.URL, loop.URL, "http://[::1", s.URL} {
		clk := &autoClock{now: t0}
		n := webhook.New(client(t), secretFor, webhook.Config{Clock: clk, Logger: log, MaxAttempts: 3, Jitter: noJitter})
		u := strings.Replace(addr, "://", "://admin:CANARY-PASS@", 1) + "/CANARY-PATH?token=CANARY-QUERY"
		_, err := n.Notify(t.Context(), notify.Target{Address: u, Name: "CANARY-NAME"}, message())
		if err == nil {
			t.Fatalf("Notify(%s) succeeded, want an error", addr)
		}
		errs = append(errs, err)
	}
	// And a timeout.
	synctest.Test(t, func(t *testing.T) {
		n := webhook.New(&http.Client{Transport: &hangFirst{}}, secretFor, webhook.Config{Logger: log, MaxAttempts: 1, AttemptTimeout: time.Second})
		_, err := n.Notify(t.Context(), notify.Target{Address: "https://u:CANARY-PASS@h.example/CANARY-PATH?k=CANARY-QUERY"}, message())
		errs = append(errs, err)
	})
	if logs.Len() == 0 {
		t.Error("no retries were logged: the log half of the test proves nothing")
	}
	for _, err := range errs {
		var dl *webhook.DeadLetter
		texts := append(chain(err), fmt.Sprintf("%+v|%#v|%q", err, err, err))
		if errors.As(err, &dl) {
			texts = append(texts, fmt.Sprintf("%+v|%#v|%s", *dl, *dl, dl))
			// URL is for the record: it keeps the path, nothing else.
			for _, c := range []string{"CANARY-PASS", "CANARY-QUERY"} {
				if strings.Contains(dl.URL, c) {
					t.Errorf("DeadLetter.URL %q leaks %q", dl.URL, c)
				}
			}
		}
		for _, text := range texts {
			for _, c := range canaries {
				if strings.Contains(text, c) {
					t.Errorf("error text %q leaks %q", text, c)
				}
			}
		}
	}
	for _, c := range canaries {
		if strings.Contains(logs.String(), c) {
			t.Errorf("log leaks %q:\n%s", c, logs.String())
		}
	}
}

func TestSignIsVerifiable(t *testing.T) {
	h := http.Header{}
	h.Set(webhook.HeaderTimestamp, fmt.Sprint(t0.Unix()))
	h.Set(webhook.HeaderSignature, webhook.Sign([]byte("k"), t0, []byte("{}")))
	if err := webhook.Verify([]byte("k"), h, []byte("{}"), t0, 0); err != nil {
		t.Fatal(err)
	}
	// A known vector, so the wire format cannot drift unnoticed:
	// HMAC-SHA256("k", "1772373780.{}").
	if got, want := h.Get(webhook.HeaderSignature), "v1="+knownMAC; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

// knownMAC was computed independently (Python hmac).
const knownMAC = "56c191106e2d1f3e0c588e66cebe7243150bf9ad8fc89287e07ff5754a214366"

// chain returns the text of err and of every error it wraps: a caller may
// log any of them.
func chain(err error) []string {
	var out []string
	for err != nil {
		out = append(out, err.Error())
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				out = append(out, chain(e)...)
			}
			return out
		default:
			err = errors.Unwrap(err)
		}
	}
	return out
}
