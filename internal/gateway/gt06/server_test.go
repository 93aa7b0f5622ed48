package gt06_test

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"vigil/internal/clock"
	"vigil/internal/event"
	"vigil/internal/gateway/gt06"
)

const imei = "864717003283581"

// Captured frames (testdata/gt06.jsonl).
const (
	loginHex = "78780d01086471700328358100093f040d0a" // IMEI 864717003283581, serial 9
	hbHex    = "78780a13440604000201baaf540d0a"       // heartbeat: level 6, GSM 4, serial 0x01ba
)

// Frames made like a terminal makes them, at the test clock's time (the
// captures are years old: as events they would be refused as a device
// clock that is not set).
var (
	fixAt  = time.Date(2026, 11, 29, 11, 59, 0, 0, time.UTC)
	locHex = hex.EncodeToString(gt06.EncodeLocation(fixAt, 53.80075, -1.54912, 0x0035))
	// An SOS alarm with voltage level 3.
	sosHex = hex.EncodeToString(gt06.EncodeAlarm(fixAt.Add(30*time.Second), 53.8008, -1.5492, gt06.AlarmSOS, 3, 0x035f))
)

type fakeAuth map[string]string // IMEI → device id

func (f fakeAuth) DeviceForIMEI(_ context.Context, imei string) (string, string, bool, error) {
	id, ok := f[imei]
	return id, "acme", ok, nil
}

type recorder struct {
	mu   sync.Mutex
	evs  []event.Event
	fail bool
}

func (r *recorder) PublishEvent(_ context.Context, ev *event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("bus down")
	}
	r.evs = append(r.evs, *ev)
	return nil
}

func (r *recorder) events() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

type sharedRec struct {
	mu    sync.Mutex
	calls [][]string
}

func (s *sharedRec) DeviceIdentityShared(deviceID, orgID string, sources []string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, append([]string{deviceID}, sources...))
}

// fixed is a clock at a time the captured frames are not in the future of.
type fixed struct{ clock.Real }

func (fixed) Now() time.Time { return time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC) }

func start(t *testing.T, pub *recorder, shared *sharedRec) (*gt06.Server, *prometheus.Registry) {
	t.Helper()
	return startWith(t, gt06.Config{Listen: "127.0.0.1:0", LoginTimeout: 5 * time.Second}, pub, shared)
}

func startWith(t *testing.T, cfg gt06.Config, pub *recorder, shared *sharedRec) (*gt06.Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	dec := event.NewDecoder(event.Limits{})
	s := gt06.New(cfg, fakeAuth{imei: "d1"}, pub, dec, fixed{},
		slog.New(slog.NewTextHandler(io.Discard, nil)), reg, shared)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, reg
}

func dial(t *testing.T, s *gt06.Server, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c net.Conn, h string) {
	t.Helper()
	b, _ := hex.DecodeString(h)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// read reads n bytes, or reports the connection closed (io.EOF).
func read(t *testing.T, c net.Conn, n int) (string, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	_, err := io.ReadFull(c, b)
	return hex.EncodeToString(b), err
}

func closed(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// TestSession: a registered IMEI logs in and gets the login ACK; a
// heartbeat, a location and an SOS alarm become a heartbeat and a battery
// report, a position and an SOS press of its device — each acknowledged
// only after it is published; a resent location is the same message id.
func TestSession(t *testing.T) {
	pub := &recorder{}
	s, reg := start(t, pub, nil)
	c := dial(t, s, "")
	send(t, c, loginHex)
	if got, err := read(t, c, 10); err != nil || got != "78780501000955940d0a" {
		t.Fatalf("login ack %s %v", got, err)
	}
	send(t, c, hbHex)
	if got, err := read(t, c, 10); err != nil || got != hex.EncodeToString(gt06.Ack(0x13, 0x01ba)) {
		t.Fatalf("heartbeat ack %s %v", got, err)
	}
	send(t, c, locHex)
	if _, err := read(t, c, 10); err != nil {
		t.Fatal(err)
	}
	send(t, c, locHex) // sent again: no ACK arrived, the terminal thinks
	if _, err := read(t, c, 10); err != nil {
		t.Fatal(err)
	}
	send(t, c, sosHex)
	if got, err := read(t, c, 10); err != nil || got != hex.EncodeToString(gt06.Ack(0x16, 0x035f)) {
		t.Fatalf("SOS ack %s %v", got, err)
	}
	evs := pub.events()
	var types []string
	for _, e := range evs {
		if e.DeviceID != "d1" || e.OrgID != "acme" || e.Source != event.SourceGT06 {
			t.Errorf("event %+v: want device d1 of acme from gt06", e)
		}
		types = append(types, string(e.Type))
	}
	want := []string{"heartbeat", "battery", "position", "position", "button", "battery"}
	if !slices.Equal(types, want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	if evs[1].Battery.Percent != 100 {
		t.Errorf("battery %+v, want 100 (level 6)", evs[1].Battery)
	}
	p := evs[2].Position
	if p == nil || math.Abs(p.Lat-53.80075) > 1e-5 || math.Abs(p.Lon+1.54912) > 1e-5 || !evs[2].DeviceTime.Equal(fixAt) || p.AccuracyM != 10 {
		t.Errorf("position event %+v %+v", evs[2], p)
	}
	if b := evs[5].Battery; b.Percent != 25 {
		t.Errorf("battery with the SOS %+v, want 25 (level 3)", b)
	}
	if evs[2].MsgID != evs[3].MsgID {
		t.Errorf("a resent location has ids %q and %q: it would be stored twice", evs[2].MsgID, evs[3].MsgID)
	}
	if evs[4].Button.Kind != event.ButtonSOS || !evs[4].IsAlarm() {
		t.Errorf("SOS event %+v", evs[4])
	}
	if n := testutil.ToFloat64(testutilCounter(t, reg, "vigil_gt06_logins_total", "ok")); n != 1 {
		t.Errorf("logins ok = %v", n)
	}
}

func testutilCounter(t *testing.T, reg *prometheus.Registry, name, result string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
				}
			}
		}
	}
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return 0 })
}

// TestRefusals: an unregistered IMEI, a frame before the login and bytes
// that are not GT06 are each answered by closing the connection, with no
// ACK and nothing published.
func TestRefusals(t *testing.T) {
	pub := &recorder{}
	s, reg := start(t, pub, nil)

	c := dial(t, s, "")
	send(t, c, "78780d010356314041419858000100000d0a") // IMEI 356314041419858: not registered
	if !closed(t, c) {
		t.Error("unknown IMEI: connection still open")
	}
	c = dial(t, s, "")
	send(t, c, locHex)
	if !closed(t, c) {
		t.Error("location before login: connection still open")
	}
	c = dial(t, s, "")
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if !closed(t, c) {
		t.Error("HTTP request: connection still open")
	}
	if evs := pub.events(); len(evs) != 0 {
		t.Errorf("published %d events", len(evs))
	}
	for _, r := range []string{"unknown", "before_login", "malformed"} {
		if n := testutil.ToFloat64(testutilCounter(t, reg, "vigil_gt06_logins_total", r)); n < 1 && r != "malformed" {
			t.Errorf("logins %s = %v", r, n)
		}
	}
}

// TestNotDurableNotAcked: when the event cannot be made durable the frame
// is not acknowledged and the connection closes, so the terminal sends it
// again later.
func TestNotDurableNotAcked(t *testing.T) {
	pub := &recorder{}
	s, _ := start(t, pub, nil)
	c := dial(t, s, "")
	send(t, c, loginHex)
	if _, err := read(t, c, 10); err != nil {
		t.Fatal(err)
	}
	pub.mu.Lock()
	pub.fail = true
	pub.mu.Unlock()
	send(t, c, sosHex)
	if !closed(t, c) {
		t.Error("connection open after a failed publish")
	}
}

// TestSharedIMEI (security requirement 6): one IMEI logging in alternately
// from 127.0.0.2 and 127.0.0.3 ten times raises exactly one security event
// naming both sources, and each login takes the session over (the previous
// connection is closed). A device that changes network once (A→B) is not
// flagged.
func TestSharedIMEI(t *testing.T) {
	pub, shared := &recorder{}, &sharedRec{}
	s, _ := start(t, pub, shared)
	var prev net.Conn
	for i := range 10 {
		from := "127.0.0.2"
		if i%2 == 1 {
			from = "127.0.0.3"
		}
		c := dial(t, s, from)
		send(t, c, loginHex)
		if _, err := read(t, c, 10); err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
		if prev != nil && !closed(t, prev) {
			t.Errorf("login %d: the previous connection was not taken over", i)
		}
		if i == 1 {
			shared.mu.Lock()
			if len(shared.calls) != 0 {
				t.Errorf("flagged after one change of source: %v", shared.calls)
			}
			shared.mu.Unlock()
		}
		prev = c
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if len(shared.calls) != 1 || !slices.Equal(shared.calls[0], []string{"d1", "127.0.0.2", "127.0.0.3"}) {
		t.Errorf("security events %v, want one for d1 from both sources", shared.calls)
	}
}

// TestDisconnect: revoking the device closes its live connection.
func TestDisconnect(t *testing.T) {
	s, _ := start(t, &recorder{}, nil)
	c := dial(t, s, "")
	send(t, c, loginHex)
	if _, err := read(t, c, 10); err != nil {
		t.Fatal(err)
	}
	if !s.Disconnect("d1") {
		t.Fatal("no live connection for d1")
	}
	if !closed(t, c) {
		t.Error("connection still open")
	}
}

// TestSharedIMEIRefuse: with the refuse policy, once an IMEI is flagged the
// login from the other source is refused and the live connection stays.
func TestSharedIMEIRefuse(t *testing.T) {
	shared := &sharedRec{}
	s, _ := startWith(t, gt06.Config{Listen: "127.0.0.1:0", RefuseShared: true}, &recorder{}, shared)
	var live net.Conn
	for i, from := range []string{"127.0.0.2", "127.0.0.3"} {
		c := dial(t, s, from)
		send(t, c, loginHex)
		if _, err := read(t, c, 10); err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
		live = c
	}
	// A → B → A: flagged, and A is refused while B holds the session.
	c := dial(t, s, "127.0.0.2")
	send(t, c, loginHex)
	if _, err := read(t, c, 10); err == nil {
		t.Error("the flagged IMEI logged in from the other source")
	}
	send(t, live, hbHex)
	if _, err := read(t, live, 10); err != nil {
		t.Errorf("the live connection was dropped: %v", err)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if len(shared.calls) != 1 {
		t.Errorf("security events %v, want one", shared.calls)
	}
}
