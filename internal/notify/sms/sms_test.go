package sms_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	_ "time/tzdata"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/clock"
	"vigil/internal/config"
	"vigil/internal/notify"
	"vigil/internal/notify/outbound"
	"vigil/internal/notify/sms"
)

var t0 = time.Date(2026, 3, 1, 14, 3, 0, 0, time.UTC)

const (
	sid   = "AC0123456789abcdef0123456789abcdef"
	token = "tok-CANARY-5e1d0c"
	from  = "+447700900001"
	to    = "+447700900123"
	// Public URLs of our callbacks as configured: what the provider signs.
	statusURL  = "https://vigil.example/sms/status?org=1"
	inboundURL = "https://vigil.example/sms/inbound"
)

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

// autoClock's timers fire as soon as they are armed, moving the time to
// their instant and recording the wait.
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
	t.c.now = at
	t.c.mu.Unlock()
	t.ch <- at
}

// provider is a fake Twilio: it answers with the statuses in turn (the
// last one repeats) and records each request's form and credentials.
type provider struct {
	mu       sync.Mutex
	statuses []int
	bodies   []string // the JSON answer for each status
	got      []url.Values
	auth     []string
	paths    []string
}

func (p *provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	user, pass, _ := r.BasicAuth()
	p.mu.Lock()
	p.got = append(p.got, r.PostForm)
	p.auth = append(p.auth, user+":"+pass)
	p.paths = append(p.paths, r.Method+" "+r.URL.Path)
	i := min(len(p.got), len(p.statuses)) - 1
	st, body := p.statuses[i], p.bodies[i]
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(st)
	io.WriteString(w, body)
}

func (p *provider) calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.got)
}

func cfg(base string, clk clock.Clock) sms.Config {
	return sms.Config{
		BaseURL: base, AccountSID: sid, AuthToken: config.Secret(token), From: from,
		StatusCallbackURL: statusURL, InboundURL: inboundURL,
		ReplyCode: func(notify.Target, notify.Message) string { return "4821" },
		Clock:     clk, Jitter: func(d time.Duration) time.Duration { return d },
	}
}

func newNotifier(t *testing.T, c sms.Config) *sms.Notifier {
	t.Helper()
	n, err := sms.New(client(t), c)
	if err != nil {
		t.Fatalf("sms.New: %v", err)
	}
	return n
}

func message() notify.Message {
	return notify.Message{
		Event: notify.EventRaised, AlertID: "al_1", OrgID: "org_1", Kind: "sos", Severity: "critical",
		RaisedAt: t0, PersonName: "Ada CANARY-NAME", Note: "CANARY-NOTE",
		MapURL: "https://vigil.example/m/al_1", AckURL: "https://vigil.example/ack/tok",
	}
}

func TestSend(t *testing.T) {
	p := &provider{statuses: []int{201}, bodies: []string{`{"sid":"SM0123456789abcdef","status":"queued"}`}}
	s := serveOn(t, "127.0.0.2", p)
	n := newNotifier(t, cfg(s.URL+"/", &autoClock{now: t0}))
	if n.Channel() != "sms" {
		t.Errorf("Channel() = %q", n.Channel())
	}
	rcpt, err := n.Notify(t.Context(), notify.Target{Channel: "sms", Address: to}, message())
	if err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if want := (notify.Receipt{ProviderID: "SM0123456789abcdef", Attempts: 1}); rcpt != want {
		t.Errorf("receipt = %+v, want %+v", rcpt, want)
	}
	want := url.Values{
		"To": {to}, "From": {from}, "StatusCallback": {statusURL},
		"Body": {"VIGIL SOS (critical): Ada CANARY-NAME at 14:03 UTC. Map: https://vigil.example/m/al_1 Reply ACK 4821"},
	}
	if diff := cmp.Diff(want, p.got[0]); diff != "" {
		t.Errorf("form (-want +got):\n%s", diff)
	}
	if got, want := p.paths[0], "POST /2010-04-01/Accounts/"+sid+"/Messages.json"; got != want {
		t.Errorf("request %q, want %q", got, want)
	}
	if got, want := p.auth[0], sid+":"+token; got != want {
		t.Errorf("basic auth %q, want %q", got, want)
	}
}

func TestProvider500Retries(t *testing.T) {
	p := &provider{statuses: []int{500}, bodies: []string{`{"code":20500,"message":"Internal ` + token + `"}`}}
	s := serveOn(t, "127.0.0.2", p)
	clk := &autoClock{now: t0}
	c := cfg(s.URL, clk)
	c.MaxAttempts, c.BaseDelay = 3, time.Second
	n := newNotifier(t, c)
	_, err := n.Notify(t.Context(), notify.Target{Address: to}, message())
	var e *sms.Error
	if !errors.As(err, &e) || notify.IsPermanent(err) {
		t.Fatalf("err = %v, want a non-permanent *sms.Error", err)
	}
	if e.Attempts != 3 || e.Status != 500 || e.Code != 20500 || p.calls() != 3 {
		t.Errorf("error %+v after %d calls, want 3 attempts, status 500, code 20500", e, p.calls())
	}
	if diff := cmp.Diff([]time.Duration{time.Second, 2 * time.Second}, clk.Waits()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
}

func TestProvider500ThenAccepted(t *testing.T) {
	p := &provider{statuses: []int{503, 429, 201}, bodies: []string{`{}`, `{"code":20429}`, `{"sid":"SMabc"}`}}
	s := serveOn(t, "127.0.0.2", p)
	n := newNotifier(t, cfg(s.URL, &autoClock{now: t0}))
	rcpt, err := n.Notify(t.Context(), notify.Target{Address: to}, message())
	if err != nil || rcpt != (notify.Receipt{ProviderID: "SMabc", Attempts: 3}) {
		t.Fatalf("Notify = %+v, %v; want SMabc after 3 attempts", rcpt, err)
	}
}

// A 4xx is permanent and carries the provider's code, not its message,
// which here echoes the number and the token.
func TestProvider400Permanent(t *testing.T) {
	for _, st := range []int{400, 401, 404} {
		p := &provider{statuses: []int{st}, bodies: []string{
			`{"code":21211,"message":"The 'To' number ` + to + ` is not valid (` + token + `)","more_info":"https://www.twilio.com/docs/errors/21211","status":400}`,
		}}
		s := serveOn(t, "127.0.0.2", p)
		n := newNotifier(t, cfg(s.URL, &autoClock{now: t0}))
		_, err := n.Notify(t.Context(), notify.Target{Address: to}, message())
		var e *sms.Error
		if !notify.IsPermanent(err) || !errors.As(err, &e) {
			t.Fatalf("status %d: err = %v, want permanent *sms.Error", st, err)
		}
		if e.Attempts != 1 || e.Status != st || e.Code != 21211 || p.calls() != 1 {
			t.Errorf("status %d: error %+v after %d calls", st, e, p.calls())
		}
		if want := fmt.Sprintf("sms: send: provider status %d code 21211 after 1 attempt(s)", st); err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
	}
}

// hangFirst never answers its first request.
type hangFirst struct{ calls atomic.Int32 }

func (h *hangFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	if h.calls.Add(1) == 1 {
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	return &http.Response{StatusCode: 201, Body: io.NopCloser(strings.NewReader(`{"sid":"SMx"}`)), Header: http.Header{}, Request: req}, nil
}

func TestTimeoutRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := cfg("https://api.twilio.example", nil)
		c.AttemptTimeout, c.BaseDelay = 5*time.Second, time.Second
		n, err := sms.New(&http.Client{Transport: &hangFirst{}}, c)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		rcpt, err := n.Notify(t.Context(), notify.Target{Address: to}, message())
		if err != nil || rcpt.Attempts != 2 {
			t.Fatalf("Notify = %+v, %v; want delivered on the 2nd attempt", rcpt, err)
		}
		if got := time.Since(start); got != 6*time.Second {
			t.Errorf("took %v of virtual time, want 6s (timeout + 1s backoff)", got)
		}
	})
}

func TestRefusedProviderIsPermanent(t *testing.T) {
	p := &provider{statuses: []int{201}, bodies: []string{`{"sid":"SMx"}`}}
	s := serveOn(t, "127.0.0.1", p)
	n := newNotifier(t, cfg(s.URL, &autoClock{now: t0}))
	_, err := n.Notify(t.Context(), notify.Target{Address: to}, message())
	if !notify.IsPermanent(err) || !errors.Is(err, outbound.ErrRefused) || p.calls() != 0 {
		t.Fatalf("err = %v after %d calls, want permanent, refused, no call", err, p.calls())
	}
}

func TestBadNumberIsPermanent(t *testing.T) {
	p := &provider{statuses: []int{201}, bodies: []string{`{"sid":"SMx"}`}}
	s := serveOn(t, "127.0.0.2", p)
	n := newNotifier(t, cfg(s.URL, &autoClock{now: t0}))
	for _, addr := range []string{"", "07700900123", "+0447700900123", "+44 7700 900123", "+4477009001234567", "+1234"} {
		_, err := n.Notify(t.Context(), notify.Target{Address: addr}, message())
		if !notify.IsPermanent(err) {
			t.Errorf("%q: err = %v, want permanent", addr, err)
		}
		if addr != "" && strings.Contains(err.Error(), addr) {
			t.Errorf("%q: error %q names the number", addr, err)
		}
	}
	if p.calls() != 0 {
		t.Errorf("provider called %d times", p.calls())
	}
}

func TestNewValidates(t *testing.T) {
	good := cfg("https://api.twilio.com", nil)
	if _, err := sms.New(client(t), good); err != nil {
		t.Fatalf("good config: %v", err)
	}
	good.BaseURL = ""
	if _, err := sms.New(client(t), good); err != nil {
		t.Fatalf("default base URL: %v", err)
	}
	for name, mut := range map[string]func(*sms.Config){
		"http base":          func(c *sms.Config) { c.BaseURL = "http://api.twilio.com" },
		"credentials in url": func(c *sms.Config) { c.BaseURL = "https://u:p@api.twilio.com" },
		"no sid":             func(c *sms.Config) { c.AccountSID = "" },
		"sid with slash":     func(c *sms.Config) { c.AccountSID = "AC/../x" },
		"no token":           func(c *sms.Config) { c.AuthToken = "" },
		"bad from":           func(c *sms.Config) { c.From = "Vigil" },
		"relative status":    func(c *sms.Config) { c.StatusCallbackURL = "/sms/status" },
		"bad inbound":        func(c *sms.Config) { c.InboundURL = "ftp://x/" },
	} {
		c := cfg("https://api.twilio.com", nil)
		mut(&c)
		_, err := sms.New(client(t), c)
		if err == nil {
			t.Errorf("%s: New succeeded, want error", name)
		} else if strings.Contains(err.Error(), token) {
			t.Errorf("%s: error %q leaks the token", name, err)
		}
	}
	c := cfg("https://api.twilio.com", nil)
	c.StatusCallbackURL, c.InboundURL = "", ""
	n, err := sms.New(client(t), c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.StatusHandler(func(context.Context, sms.Status) error { return nil }); err == nil {
		t.Error("StatusHandler without a URL succeeded")
	}
	if _, err := n.InboundHandler(func(context.Context, string, string) (bool, error) { return false, nil }); err == nil {
		t.Error("InboundHandler without a URL succeeded")
	}
}

func TestText(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err) // time/tzdata is embedded: every zone loads
	}
	base := message()
	for _, tc := range []struct {
		name string
		m    func(notify.Message) notify.Message
		code string
		loc  *time.Location
		want string
	}{
		{"raised with code", nil, "4821", nil,
			"VIGIL SOS (critical): Ada CANARY-NAME at 14:03 UTC. Map: https://vigil.example/m/al_1 Reply ACK 4821"},
		{"raised with ack link", nil, "", nil,
			"VIGIL SOS (critical): Ada CANARY-NAME at 14:03 UTC. Map: https://vigil.example/m/al_1 Ack: https://vigil.example/ack/tok"},
		{"local time", func(m notify.Message) notify.Message { m.RaisedAt = t0.AddDate(0, 4, 0); return m }, "1", london,
			"VIGIL SOS (critical): Ada CANARY-NAME at 15:03 BST. Map: https://vigil.example/m/al_1 Reply ACK 1"},
		{"position without map", func(m notify.Message) notify.Message {
			m.MapURL, m.Kind, m.Severity = "", "missed_checkin", ""
			m.Position = &notify.Position{Lat: 51.5, Lon: -0.125}
			return m
		}, "7", nil, "VIGIL MISSED CHECKIN: Ada CANARY-NAME at 14:03 UTC. At 51.50000,-0.12500 Reply ACK 7"},
		{"reminder", func(m notify.Message) notify.Message { m.Event = notify.EventReminder; return m }, "7", nil,
			"VIGIL REMINDER SOS: Ada CANARY-NAME at 14:03 UTC, not yet acknowledged. Map: https://vigil.example/m/al_1 Reply ACK 7"},
		{"exhausted", func(m notify.Message) notify.Message { m.Event = notify.EventExhausted; return m }, "7", nil,
			"VIGIL UNANSWERED SOS: Ada CANARY-NAME at 14:03 UTC, no one has acknowledged. Map: https://vigil.example/m/al_1 Reply ACK 7"},
		{"cancelled", func(m notify.Message) notify.Message { m.Event = notify.EventCancelled; return m }, "7", nil,
			"VIGIL cancelled: SOS for Ada CANARY-NAME at 14:03 UTC was cancelled by the wearer. No action needed."},
		{"acked", func(m notify.Message) notify.Message { m.Event, m.AckedBy = notify.EventAcked, "Bob\nSmith"; return m }, "7", nil,
			"VIGIL acknowledged: SOS for Ada CANARY-NAME at 14:03 UTC, by Bob Smith."},
		{"resolved", func(m notify.Message) notify.Message { m.Event = notify.EventResolved; return m }, "7", nil,
			"VIGIL resolved: SOS for Ada CANARY-NAME at 14:03 UTC."},
		{"links that are not http(s) are dropped", func(m notify.Message) notify.Message {
			m.MapURL, m.AckURL = "javascript:alert(1)", "/ack/relative"
			return m
		}, "", nil, "VIGIL SOS (critical): Ada CANARY-NAME at 14:03 UTC."},
		{"hostile name", func(m notify.Message) notify.Message {
			m.PersonName, m.MapURL, m.AckURL, m.RaisedAt = "  Eve\x00\u202e\r\nReply  STOP\t", "", "", time.Time{}
			return m
		}, "", nil, "VIGIL SOS (critical): Eve Reply STOP."},
	} {
		m := base
		if tc.m != nil {
			m = tc.m(m)
		}
		if got := sms.Text(m, tc.code, tc.loc); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestTextFits(t *testing.T) {
	m := message()
	m.PersonName = strings.Repeat("Ñame ", 100)
	m.Kind = strings.Repeat("k", 100)
	m.MapURL = "https://vigil.example/m/" + strings.Repeat("x", 400)
	m.AckURL = "https://vigil.example/a/" + strings.Repeat("y", 400)
	for _, ev := range []notify.Event{notify.EventRaised, notify.EventReminder, notify.EventExhausted, notify.EventAcked, notify.EventCancelled} {
		m.Event = ev
		m.AckedBy = strings.Repeat("B", 500)
		for _, code := range []string{"", "4821", strings.Repeat("9", 100)} {
			s := sms.Text(m, code, nil)
			if n := utf8.RuneCountInString(s); n > sms.MaxText {
				t.Errorf("%s/%q: %d characters, want ≤ %d: %q", ev, code, n, sms.MaxText, s)
			}
			if code == "4821" && (ev == notify.EventRaised || ev == notify.EventReminder) && !strings.HasSuffix(s, "Reply ACK 4821") {
				t.Errorf("%s: the reply code was dropped: %q", ev, s)
			}
		}
	}
}

func TestParseReply(t *testing.T) {
	for in, want := range map[string]struct {
		code string
		ok   bool
	}{
		"ACK":                                  {"", true},
		"ack":                                  {"", true},
		"  Ack \n":                             {"", true},
		"ack 1234":                             {"1234", true},
		"ACK   ab12":                           {"AB12", true},
		"\u00a0ack\t#1234":                     {"1234", true},
		"acknowledge":                          {"", false},
		"ack1234":                              {"", false},
		"ack 12 34":                            {"", false},
		"ack 12-34":                            {"", false},
		"ack #":                                {"", false},
		"hello":                                {"", false},
		"":                                     {"", false},
		"AC\u212a":                             {"", false}, // Kelvin sign folds to k
		"ack 12345678901234567":                {"", false},
		"ack \xff":                             {"", false},
		"ack " + strings.Repeat(" ", 70) + "1": {"", false},
	} {
		code, ok := sms.ParseReply(in)
		if code != want.code || ok != want.ok {
			t.Errorf("ParseReply(%q) = %q, %v; want %q, %v", in, code, ok, want.code, want.ok)
		}
	}
}

// Twilio's published example.
func TestSignatureKnownVector(t *testing.T) {
	params := url.Values{
		"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+14158675310"}, "Digits": {"1234"},
		"From": {"+14158675310"}, "To": {"+18005551212"},
	}
	if got, want := sms.Signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params), "GvWf1cFY/Q7PnoempGyD5oXAezc="; got != want {
		t.Errorf("Signature = %q, want %q", got, want)
	}
}

// callback posts form to h as the provider would reach us: through a
// proxy, with whatever Host header it carries, signed over signedURL.
func callback(h http.Handler, host, signedURL, signingToken string, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "http://"+host+"/sms/cb", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signedURL != "" {
		req.Header.Set(sms.SignatureHeader, sms.Signature(signingToken, signedURL, form))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestStatusHandler(t *testing.T) {
	var logs bytes.Buffer
	c := cfg("https://api.twilio.com", nil)
	c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := newNotifier(t, c)
	var got []sms.Status
	h, err := n.StatusHandler(func(_ context.Context, s sms.Status) error {
		got = append(got, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{
		"AccountSid": {sid}, "MessageSid": {"SM0123456789abcdef"}, "MessageStatus": {"undelivered"},
		"ErrorCode": {"30003"}, "To": {to}, "From": {from}, "ApiVersion": {"2010-04-01"},
	}
	withForm := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range form {
			f[kk] = vv
		}
		f.Set(k, v)
		return f
	}
	for _, tc := range []struct {
		name      string
		host      string
		signedURL string
		token     string
		form      url.Values
		want      int
	}{
		{"valid", "vigil.example", statusURL, token, form, http.StatusNoContent},
		{"valid, any Host header", "evil.example", statusURL, token, form, http.StatusNoContent},
		{"signed over the Host header's URL", "evil.example", "https://evil.example/sms/cb", token, form, http.StatusForbidden},
		{"signed without the query", "vigil.example", "https://vigil.example/sms/status", token, form, http.StatusForbidden},
		{"wrong token", "vigil.example", statusURL, "other", form, http.StatusForbidden},
		{"unsigned", "vigil.example", "", token, form, http.StatusForbidden},
		{"other account", "vigil.example", statusURL, token, withForm("AccountSid", "ACother"), http.StatusForbidden},
		{"bad sid", "vigil.example", statusURL, token, withForm("MessageSid", "SM/../x"), http.StatusBadRequest},
		{"bad error code", "vigil.example", statusURL, token, withForm("ErrorCode", "x"), http.StatusBadRequest},
	} {
		got = nil
		rec := callback(h, tc.host, tc.signedURL, tc.token, tc.form)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, rec.Code, tc.want)
		}
		if tc.want != http.StatusNoContent {
			if len(got) != 0 {
				t.Errorf("%s: callback called with %+v", tc.name, got)
			}
			continue
		}
		want := []sms.Status{{ProviderID: "SM0123456789abcdef", Status: "undelivered", ErrorCode: 30003}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: statuses (-want +got):\n%s", tc.name, diff)
		}
		if !got[0].Failed() || got[0].Delivered() {
			t.Errorf("%s: undelivered: Failed %v Delivered %v", tc.name, got[0].Failed(), got[0].Delivered())
		}
	}
	// Tampering with a signed field breaks the signature.
	req := httptest.NewRequest(http.MethodPost, "/sms/cb", strings.NewReader(withForm("MessageStatus", "delivered").Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(sms.SignatureHeader, sms.Signature(token, statusURL, form))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("tampered status: %d, want 403", rec.Code)
	}
	// GET and oversized bodies.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/sms/cb", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", rec.Code)
	}
	big := withForm("Pad", strings.Repeat("x", 100<<10))
	if rec := callback(h, "vigil.example", statusURL, token, big); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized: %d, want 413", rec.Code)
	}
	// A failing callback is a 500 with a generic body.
	h2, _ := n.StatusHandler(func(context.Context, sms.Status) error { return errors.New("store: down") })
	if rec := callback(h2, "vigil.example", statusURL, token, form); rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "store") {
		t.Errorf("failing callback: %d %q, want 500 without detail", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "bad signature") {
		t.Errorf("rejections not logged:\n%s", logs.String())
	}
	for _, secret := range []string{token, to, from} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log leaks %q:\n%s", secret, logs.String())
		}
	}
}

func TestInboundHandler(t *testing.T) {
	n := newNotifier(t, cfg("https://api.twilio.com", nil))
	type reply struct{ from, code string }
	var got []reply
	h, err := n.InboundHandler(func(_ context.Context, from, code string) (bool, error) {
		got = append(got, reply{from, code})
		return code == "4821", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	form := func(body string) url.Values {
		return url.Values{"AccountSid": {sid}, "MessageSid": {"SMin1"}, "From": {to}, "To": {from}, "Body": {body}}
	}
	for _, tc := range []struct {
		body      string
		signedURL string
		want      int
		replies   []reply
	}{
		{"ACK", inboundURL, 200, []reply{{to, ""}}},
		{"  ack 4821 ", inboundURL, 200, []reply{{to, "4821"}}},
		{"Ack\t#9999", inboundURL, 200, []reply{{to, "9999"}}},
		{"help me", inboundURL, 200, nil},
		{"ACK 4821", "https://attacker.example/sms/inbound", 403, nil},
		{"ACK 4821", "", 403, nil},
	} {
		got = nil
		rec := callback(h, "vigil.example", tc.signedURL, token, form(tc.body))
		if rec.Code != tc.want {
			t.Errorf("%q: status %d, want %d", tc.body, rec.Code, tc.want)
		}
		if diff := cmp.Diff(tc.replies, got, cmp.AllowUnexported(reply{})); diff != "" {
			t.Errorf("%q: replies (-want +got):\n%s", tc.body, diff)
		}
		if tc.want == 200 {
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") || rec.Body.String() != sms.EmptyTwiML {
				t.Errorf("%q: answer %q %q, want empty TwiML", tc.body, ct, rec.Body)
			}
		}
	}
}

// Rows 28 and 39: the auth token (and the number, the name and the note)
// never appear in an error, a log line or a handler's answer, whatever the
// provider sends back.
func TestNoSecretLeaks(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	canaries := []string{token, to, "900123", "CANARY-NAME", "CANARY-NOTE"}
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"code":"20003","message":"%q %s"}`, r.Header, b)
	})
	bad := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"code":21211,"message":"%s:%s %s"}`, user, pass, r.URL)
	})
	var errs []error
	for _, h := range []http.Handler{echo, bad} {
		s := serveOn(t, "127.0.0.2", h)
		c := cfg(s.URL, &autoClock{now: t0})
		c.Logger = log
		n := newNotifier(t, c)
		_, err := n.Notify(t.Context(), notify.Target{Address: to, Name: "CANARY-NAME"}, message())
		errs = append(errs, err)
	}
	loop := serveOn(t, "127.0.0.1", echo)
	c := cfg(loop.URL, &autoClock{now: t0})
	c.Logger = log
	_, err := newNotifier(t, c).Notify(t.Context(), notify.Target{Address: to}, message())
	errs = append(errs, err)
	synctest.Test(t, func(t *testing.T) {
		c := cfg("https://api.twilio.example", nil)
		c.Logger, c.MaxAttempts, c.AttemptTimeout = log, 1, time.Second
		n, _ := sms.New(&http.Client{Transport: &hangFirst{}}, c)
		_, err := n.Notify(t.Context(), notify.Target{Address: to}, message())
		errs = append(errs, err)
	})
	// Handlers: rejected and accepted callbacks.
	c = cfg("https://api.twilio.com", nil)
	c.Logger = log
	n := newNotifier(t, c)
	in, _ := n.InboundHandler(func(context.Context, string, string) (bool, error) { return true, nil })
	st, _ := n.StatusHandler(func(context.Context, sms.Status) error { return errors.New("boom") })
	var bodies []string
	for _, signed := range []string{"", inboundURL} {
		f := url.Values{"AccountSid": {sid}, "From": {to}, "Body": {"ack 1"}}
		bodies = append(bodies, callback(in, "x", signed, token, f).Body.String())
		f = url.Values{"AccountSid": {sid}, "MessageSid": {"SM1"}, "MessageStatus": {"sent"}, "To": {to}}
		bodies = append(bodies, callback(st, "x", signed, token, f).Body.String())
	}

	if logs.Len() == 0 {
		t.Error("nothing was logged: the log half of the test proves nothing")
	}
	for i, err := range errs {
		if err == nil {
			t.Fatalf("case %d: Notify succeeded, want an error", i)
		}
		text := fmt.Sprintf("%v|%+v|%#v|%s", err, err, err, strings.Join(chain(err), "|"))
		for _, canary := range canaries {
			if strings.Contains(text, canary) {
				t.Errorf("error %q leaks %q", text, canary)
			}
		}
	}
	for _, canary := range canaries {
		if strings.Contains(logs.String(), canary) {
			t.Errorf("log leaks %q:\n%s", canary, logs.String())
		}
		for _, b := range bodies {
			if strings.Contains(b, canary) {
				t.Errorf("handler answer %q leaks %q", b, canary)
			}
		}
	}
	// The Config itself prints no token.
	if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, token) {
		t.Errorf("Config prints the token: %s", s)
	}
}

// chain returns the text of err and of every error it wraps: a caller may
// log any of them.
func chain(err error) []string {
	var out []string
	for err != nil {
		out = append(out, err.Error())
		err = errors.Unwrap(err)
	}
	return out
}
