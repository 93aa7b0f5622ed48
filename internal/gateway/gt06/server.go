package gt06

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/clock"
	"vigil/internal/event"
)

// Authenticator finds the device an IMEI is registered to: ok is false for
// an IMEI no device has, or a disabled device.
type Authenticator interface {
	DeviceForIMEI(ctx context.Context, imei string) (deviceID, orgID string, ok bool, err error)
}

// Publisher makes an event durable; an error means it is not.
type Publisher interface {
	PublishEvent(ctx context.Context, ev *event.Event) error
}

// SharedIdentity is told once per device and quiet period when one IMEI
// logs in from several places (the app records a security event).
type SharedIdentity interface {
	DeviceIdentityShared(deviceID, orgID string, sources []string, at time.Time)
}

// Config tunes the server. Zero values take the defaults.
type Config struct {
	Listen string // e.g. ":5023"; required
	// LoginTimeout is how long a new connection has to log in (default
	// 10 s); IdleTimeout how long a logged-in terminal may stay silent
	// (default 10 min: terminals send a heartbeat every 3–5 min).
	LoginTimeout time.Duration
	IdleTimeout  time.Duration
	// MaxConnections bounds concurrent connections (default 10,000).
	MaxConnections int
	// RefuseShared: once an IMEI is flagged as used from two places, a
	// login from a source other than its live connection's is refused
	// (until the quiet period passes) instead of taking the session over.
	RefuseShared bool
}

func (c Config) withDefaults() Config {
	if c.LoginTimeout <= 0 {
		c.LoginTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = 10_000
	}
	return c
}

// earliest is the oldest fix time trusted (the event schema refuses
// earlier device times).
var earliest = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Shared-identity window: logins of one IMEI from two sources within
// sharedWindow raise one event per sharedQuiet.
const (
	sharedWindow = 60 * time.Second
	sharedQuiet  = 10 * time.Minute
)

// Server is the GT06 TCP listener.
type Server struct {
	cfg    Config
	auth   Authenticator
	pub    Publisher
	dec    *event.Decoder
	clk    clock.Clock
	log    *slog.Logger
	shared SharedIdentity

	ln    net.Listener
	slots chan struct{}
	wg    sync.WaitGroup

	mu      sync.Mutex
	live    map[string]*conn // device id → its logged-in connection
	conns   map[*conn]struct{}
	recent  map[string][]source // device id → logins in the window
	flagged map[string]time.Time
	closed  bool

	frames *prometheus.CounterVec // result: accepted, ack_only, refused, crc_mismatch, …
	logins *prometheus.CounterVec // result: ok, unknown, malformed, before_login
	active prometheus.Gauge
}

type source struct {
	ip string
	at time.Time
}

type conn struct {
	c        net.Conn
	deviceID string
	orgID    string
}

// New returns a server; Start listens.
func New(cfg Config, auth Authenticator, pub Publisher, dec *event.Decoder, clk clock.Clock, log *slog.Logger, reg prometheus.Registerer, shared SharedIdentity) *Server {
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, auth: auth, pub: pub, dec: dec, clk: clk, log: log, shared: shared,
		slots: make(chan struct{}, cfg.MaxConnections),
		live:  map[string]*conn{}, conns: map[*conn]struct{}{}, recent: map[string][]source{}, flagged: map[string]time.Time{},
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_gt06_frames_total",
			Help: "GT06 frames by result: accepted (durable, acknowledged), ack_only (understood, nothing to store), refused (invalid content), crc_mismatch (accepted with a wrong checksum, counted as well)."}, []string{"result"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_gt06_logins_total",
			Help: "GT06 login attempts by result."}, []string{"result"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_gt06_connections", Help: "Open GT06 connections."}),
	}
	if reg != nil {
		reg.MustRegister(s.frames, s.logins, s.active)
	}
	return s
}

// Start listens and serves in the background.
func (s *Server) Start() error {
	if s.cfg.Listen == "" {
		return errors.New("gt06: no listen address")
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gt06: listen: %w", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	return nil
}

// Addr is the listening address (after Start).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops listening and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.c.Close()
	}
	s.mu.Unlock()
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	s.wg.Wait()
	return err
}

// Disconnect closes a device's live connection (revocation); it reports
// whether there was one.
func (s *Server) Disconnect(deviceID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.live[deviceID]
	if ok {
		c.c.Close()
	}
	return ok
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("gt06 accept", "err", err)
			continue
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.logins.WithLabelValues("too_many_connections").Inc()
			nc.Close()
			continue
		}
		c := &conn{c: nc}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			<-s.slots
			continue
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.active.Inc()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				nc.Close()
				s.mu.Lock()
				delete(s.conns, c)
				if c.deviceID != "" && s.live[c.deviceID] == c {
					delete(s.live, c.deviceID)
				}
				s.mu.Unlock()
				s.active.Dec()
				<-s.slots
			}()
			if err := s.serve(c); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("gt06 connection closed", "device_id", c.deviceID, "err", err)
			}
		}()
	}
}

// serve runs one connection: a login first, then frames until the
// terminal goes quiet or sends something that is not a frame.
func (s *Server) serve(c *conn) error {
	sc := bufio.NewScanner(c.c)
	sc.Buffer(make([]byte, 512), MaxFrame)
	sc.Split(Split)
	ctx := context.Background()
	_ = c.c.SetReadDeadline(time.Now().Add(s.cfg.LoginTimeout))
	if !sc.Scan() {
		s.logins.WithLabelValues("no_login").Inc()
		return fmt.Errorf("before login: %w", scanErr(sc))
	}
	f, err := Parse(sc.Bytes())
	if err != nil {
		s.logins.WithLabelValues("malformed").Inc()
		return err
	}
	m, err := Decode(f, 0)
	if err != nil || m.Kind != KindLogin {
		// Nothing is accepted before a login (and a bad login is not
		// answered: the terminal retries).
		s.logins.WithLabelValues("before_login").Inc()
		return fmt.Errorf("first frame is not a login (protocol 0x%02x)", f.Proto)
	}
	id, org, ok, err := s.auth.DeviceForIMEI(ctx, m.IMEI)
	if err != nil {
		s.logins.WithLabelValues("error").Inc()
		return fmt.Errorf("look up the IMEI: %w", err)
	}
	if !ok {
		s.logins.WithLabelValues("unknown").Inc()
		s.log.Warn("gt06 login refused: IMEI not registered to an enabled device", "source", remoteIP(c.c))
		return errors.New("unknown IMEI")
	}
	c.deviceID, c.orgID = id, org
	if !s.login(c) {
		s.logins.WithLabelValues("shared_refused").Inc()
		return errors.New("IMEI in use from another place")
	}
	s.logins.WithLabelValues("ok").Inc()
	tz := m.TZ
	if _, err := c.c.Write(Ack(f.Proto, f.Serial)); err != nil {
		return fmt.Errorf("login ack: %w", err)
	}
	origin := event.Origin{OrgID: org, DeviceID: id, Source: event.SourceGT06}
	for {
		_ = c.c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		if !sc.Scan() {
			return scanErr(sc)
		}
		if err := s.frame(ctx, c, sc.Bytes(), origin, tz); err != nil {
			return err
		}
	}
}

// frame handles one frame of a logged-in terminal: its events are made
// durable before it is acknowledged. A publish failure closes the
// connection unacknowledged, so the terminal sends it again.
func (s *Server) frame(ctx context.Context, c *conn, b []byte, origin event.Origin, tz time.Duration) error {
	f, err := Parse(b)
	if err != nil {
		s.frames.WithLabelValues("refused").Inc()
		return err
	}
	if !f.CRCOK {
		s.frames.WithLabelValues("crc_mismatch").Inc()
	}
	m, err := Decode(f, tz)
	if err != nil {
		// Malformed content: acknowledged so the terminal does not resend
		// it forever, counted and logged; nothing is stored.
		s.frames.WithLabelValues("refused").Inc()
		s.log.Warn("gt06 frame refused", "device_id", c.deviceID, "protocol", fmt.Sprintf("0x%02x", f.Proto), "err", err)
		return s.ack(c, m, f)
	}
	now := s.clk.Now()
	switch m.Kind {
	case KindTimeRequest:
		t := now.UTC()
		_, err := c.c.Write(TimeReply(f.Serial, t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute(), t.Second()))
		return err
	case KindLogin:
		s.frames.WithLabelValues("ack_only").Inc()
		return s.ack(c, m, f) // a repeated login on the same connection
	}
	msgs := Events(m, f, now)
	if len(msgs) == 0 {
		s.frames.WithLabelValues("ack_only").Inc()
		return s.ack(c, m, f)
	}
	for _, msg := range msgs {
		ev, err := s.dec.Normalise(msg, origin, now)
		if err != nil {
			s.frames.WithLabelValues("refused").Inc()
			s.log.Warn("gt06 event refused", "device_id", c.deviceID, "type", string(msg.Type), "err", err)
			continue
		}
		if err := s.pub.PublishEvent(ctx, &ev); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	s.frames.WithLabelValues("accepted").Inc()
	return s.ack(c, m, f)
}

func (s *Server) ack(c *conn, m Message, f Frame) error {
	if !m.Acked(f) {
		return nil
	}
	_, err := c.c.Write(Ack(f.Proto, f.Serial))
	return err
}

// login makes c the device's live connection (the newest login takes
// over: the old connection is closed) and notices one IMEI used from two
// places: within sharedWindow its logins came from two sources and the
// source changed at least twice (A→B→A). With RefuseShared, a flagged
// IMEI's login from a source other than its live connection's is refused
// (false).
func (s *Server) login(c *conn) bool {
	now := s.clk.Now()
	ip := remoteIP(c.c)
	s.mu.Lock()
	old, hasOld := s.live[c.deviceID]
	if at, ok := s.flagged[c.deviceID]; s.cfg.RefuseShared && ok && now.Sub(at) < sharedQuiet && hasOld && remoteIP(old.c) != ip {
		s.mu.Unlock()
		return false
	}
	rec := s.recent[c.deviceID]
	rec = slices.DeleteFunc(rec, func(x source) bool { return now.Sub(x.at) > sharedWindow })
	rec = append(rec, source{ip: ip, at: now})
	s.recent[c.deviceID] = rec
	changes, ips := 0, []string{}
	for i, x := range rec {
		if i > 0 && rec[i-1].ip != x.ip {
			changes++
		}
		if !slices.Contains(ips, x.ip) {
			ips = append(ips, x.ip)
		}
	}
	raise := changes >= 2 && len(ips) >= 2
	if at, ok := s.flagged[c.deviceID]; raise && ok && now.Sub(at) < sharedQuiet {
		raise = false
	}
	if raise {
		s.flagged[c.deviceID] = now
	}
	refused := raise && s.cfg.RefuseShared && hasOld && remoteIP(old.c) != ip
	if !refused {
		if hasOld && old != c {
			old.c.Close()
		}
		s.live[c.deviceID] = c
	}
	s.mu.Unlock()
	if raise && s.shared != nil {
		slices.Sort(ips)
		s.shared.DeviceIdentityShared(c.deviceID, c.orgID, ips, now)
	}
	return !refused
}

// Events turns a decoded message into device messages for the pipeline:
// a position for a valid fix; for an alarm, an SOS button press, a
// device-detected fall or a battery report; a heartbeat and a battery
// report for a status packet. Message ids derive from the protocol, the
// serial and the device's time, so a packet the terminal sends again
// (same serial, same fix) is stored once.
func Events(m Message, f Frame, now time.Time) []event.Message {
	var out []event.Message
	ts := now.UTC().Truncate(time.Second)
	var pos *event.Position
	// A fix whose GPS time is before 2020 or ahead of the server's clock
	// is not trusted (no time from the satellites yet, or a terminal set to
	// the wrong zone): its alarm still goes through, timed on arrival,
	// without the position.
	if m.Fix != nil && m.Fix.Valid && !m.Fix.Time.Before(earliest) && !m.Fix.Time.After(now.Add(5*time.Minute)) {
		ts = m.Fix.Time
		speed := float64(m.Fix.SpeedKmh) / 3.6
		p := &event.Position{Lat: m.Fix.Lat, Lon: m.Fix.Lon, AccuracyM: m.Fix.AccuracyM(), SpeedMPS: &speed, FixTime: m.Fix.Time}
		if m.Fix.Course < 360 {
			h := float64(m.Fix.Course)
			p.HeadingDeg = &h
		}
		pos = p
	}
	id := func(suffix string) string {
		return "gt06:" + strconv.FormatUint(uint64(f.Proto), 16) + ":" + strconv.Itoa(int(f.Serial)) + ":" +
			strconv.FormatInt(ts.Unix(), 36) + suffix
	}
	switch m.Kind {
	case KindLocation:
		if pos != nil {
			out = append(out, event.Message{V: event.SchemaVersion, ID: id(""), TS: ts, Type: event.TypePosition, Position: pos})
		} else {
			// No fix, but the terminal is alive.
			out = append(out, event.Message{V: event.SchemaVersion, ID: id(""), TS: ts, Type: event.TypeHeartbeat, Heartbeat: &event.Heartbeat{}})
		}
	case KindHeartbeat:
		out = append(out, event.Message{V: event.SchemaVersion, ID: id(":h"), TS: ts, Type: event.TypeHeartbeat, Heartbeat: &event.Heartbeat{}})
		if m.BatteryPct >= 0 {
			out = append(out, event.Message{V: event.SchemaVersion, ID: id(":b"), TS: ts, Type: event.TypeBattery,
				Battery: &event.Battery{Percent: m.BatteryPct, Charging: m.Charging}})
		}
	case KindAlarm:
		switch m.Alarm {
		case AlarmSOS:
			out = append(out, event.Message{V: event.SchemaVersion, ID: id(":sos"), TS: ts, Type: event.TypeButton,
				Button: &event.Button{Kind: event.ButtonSOS}, Position: pos})
		case AlarmFall:
			out = append(out, event.Message{V: event.SchemaVersion, ID: id(":fall"), TS: ts, Type: event.TypeFall,
				Fall: &event.Fall{}, Position: pos})
		default:
			if pos != nil {
				out = append(out, event.Message{V: event.SchemaVersion, ID: id(""), TS: ts, Type: event.TypePosition, Position: pos})
			}
		}
		if m.BatteryPct >= 0 || m.Alarm == AlarmLowBattery || m.Alarm == AlarmLowBat2 || m.Alarm == AlarmLowBat3 {
			pct := m.BatteryPct
			if pct < 0 || m.Alarm == AlarmLowBattery || m.Alarm == AlarmLowBat2 || m.Alarm == AlarmLowBat3 {
				pct = min(max(pct, 0), levelPercent[2]) // the terminal's own low-battery alarm
			}
			out = append(out, event.Message{V: event.SchemaVersion, ID: id(":b"), TS: ts, Type: event.TypeBattery,
				Battery: &event.Battery{Percent: pct, Charging: m.Charging}})
		}
	}
	return out
}

func remoteIP(c net.Conn) string {
	a := c.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(a); err == nil {
		return h
	}
	return a
}

func scanErr(sc *bufio.Scanner) error {
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("connection closed")
}
