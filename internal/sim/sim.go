// Package sim is the device simulator behind `vigil sim`: N devices that
// walk plausible routes around a centre and report to a Vigil server the
// way real devices do — trackers over MQTT 5 on TLS (QoS 1, one event per
// PUBLISH, motion windows on their own topic) and phone apps over the HTTPS
// batch API with store-and-forward. Payloads are built from internal/event
// types, so they always match the schema the server validates.
//
// It must not import store, bus, gateways or app: it sees the server only
// from the outside, through the same wire protocols as a device. Topic
// names and the HTTP path are therefore spelled out here, not imported.
//
// Devices assigned to a worker person (WorkerConfig.People) are lone
// workers (wearer.go): they start timed sessions through the JSON API,
// check in with the device's check-in button, usually on time, sometimes
// not, overrun, walk out of the zone, go silent, carry flat batteries, so
// the server's safety engine has something to raise. Every device reads
// its commands topic: it answers a checkin_reminder with a check-in and
// now and then a pre_alert with a cancel. When Run stops, workers end
// their open sessions (end of shift), so a server that keeps running
// raises nothing for workers that no longer exist.
//
// Concurrency: New starts nothing. Run starts one goroutine per device (plus
// the MQTT client's own goroutines) and returns only when every one of them
// has stopped. Generation is deterministic for a seed (see model.go and
// wearer.go); scheduling uses the wall clock, timestamps come from
// Config.Now. A device's JSON API calls are made on its own goroutine.
// Message ids are a random per-run boot id plus a counter, so runs with
// the same seed never collide on the server's idempotency key.
package sim

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"vigil/internal/event"
)

// The default centre of the walks (Leeds), and of the zone around them.
const (
	DefaultLat = 53.8
	DefaultLon = -1.55
)

// Credential is one device's identity.
type Credential struct{ DeviceID, Secret string }

// Config says what to simulate. Only Devices, and MQTTAddr or HTTPSAddr,
// are required; other zero values take the defaults noted.
type Config struct {
	MQTTAddr    string        // host:port of the MQTT/TLS listener
	HTTPSAddr   string        // host:port of the HTTPS listener ("" = all devices use MQTT)
	TLS         *tls.Config   // RootCAs of the server; ServerName set by caller (nil = system roots)
	Devices     []Credential  // one simulated device each
	Rate        float64       // position reports per device per second; default 0.2
	HTTPShare   float64       // fraction of devices acting as phone apps over HTTPS (0..1)
	SOSEvery    time.Duration // mean interval between SOS presses per device (0 = never)
	MotionEvery time.Duration // mean interval between accelerometer windows (0 = never)
	// Replay gives devices 0, 1, … a real recording each to stream as
	// their motion: 2-second windows at 50 Hz, sent as they would be
	// recorded, then a pause of ReplayPause and the recording again.
	// These devices send no synthetic motion.
	Replay      []Recording
	ReplayPause time.Duration // default 20s
	Centre      [2]float64    // lat, lon where workers walk; default Leeds (53.8, -1.55)
	Seed        int64
	Logger      *slog.Logger     // default discards
	Now         func() time.Time // clock for timestamps; default time.Now

	// APIAddr is host:port of the JSON API (TLS, the same CA), needed
	// when Workers.People names lone workers.
	APIAddr string
	// APIToken authenticates the workers' calls (vigil token create).
	APIToken string
	Workers  WorkerConfig
	// CancelOdds is the chance that a wearer answers a pre_alert with the
	// cancel button (0 = never). Devices replaying a recording never
	// cancel: their detected falls are there to be seen.
	CancelOdds float64

	// Certs holds the client certificates of enrolled devices (Enrol), by
	// device id: such a device connects over MQTT with mutual TLS and
	// sends no password; its Secret may be empty if it uses MQTT.
	Certs map[string]*tls.Certificate
	// RenewBefore: a device whose certificate has less than this left
	// renews it (Renew, over HTTPSAddr) before it connects; default
	// RenewBefore (30 days).
	RenewBefore time.Duration

	HeartbeatEvery time.Duration // default 60s
	BatteryEvery   time.Duration // default 5m
	BatchEvery     time.Duration // how often a phone posts its queue; default 5s
	RetryMin       time.Duration // first retry delay after a transport error; default 1s (doubles to 5m)
	RampUp         time.Duration // devices start spread over this; default 10ms per device, at most 10s
	SummaryEvery   time.Duration // Info summary interval; default 10s
	QueueMax       int           // events a device keeps while it cannot send; default 10000
}

// Stats are the simulator's counters. Maps are copies.
type Stats struct {
	Devices     int                   // simulated devices
	Generated   map[event.Type]uint64 // events produced, by type
	Sent        uint64                // transmissions (an MQTT PUBLISH or an event in a POST), resends included
	Resent      uint64                // of Sent, transmissions of an event sent before
	Acked       uint64                // events the server acknowledged as durable
	AckedByType map[event.Type]uint64
	Duplicates  uint64            // of Acked, reported by the HTTPS API as already received
	Refused     map[string]uint64 // events refused and dropped, by reason: "puback_0x99", "http_400", "suback_0x87", ...
	Errors      uint64            // transport failures (connect, timeout, lost connection, 429/5xx); each retried
	Reconnects  uint64            // MQTT connections made after a device's first
	Dropped     uint64            // events dropped because a device queue was full
	Commands    uint64            // messages received on commands topics
	Renewed     uint64            // device certificates renewed (Renew)
	RenewErrors uint64            // renewals that failed (retried on the next connect)
	Queued      int               // events waiting in device queues now

	CommandTypes      map[string]uint64 // of Commands, by type ("other" for a type not known, "invalid" for unreadable JSON)
	RemindersAnswered uint64            // checkin_reminder commands answered with a check-in
	Cancels           uint64            // cancel presses answering a pre_alert

	Workers         int    // devices acting as lone workers
	SessionsStarted uint64 // sessions started through the JSON API
	SessionsEnded   uint64 // of those, ended (by the worker, or at shutdown)
	InSession       int    // workers in a session now
	Checkins        uint64 // check-in button presses
	LateCheckins    uint64 // of Checkins, made after the missed check-in was due
	Forgotten       uint64 // check-ins forgotten (each raises missed_checkin, unless the session ends first)
	Overruns        uint64 // sessions the worker chose to end late (session_overrun)
	Wanders         uint64 // walks out of the zone (geofence_exit)
	Silences        uint64 // times a device went silent (device_offline once silent for the server's offline_after in a session)
	APIErrors       uint64 // JSON API calls that failed (each retried, or the worker gave up)
}

// Sim runs simulated devices. Build it with New, then call Run once.
type Sim struct {
	cfg     Config
	log     *slog.Logger
	running atomic.Bool
	replays [][]event.Motion // Config.Replay cut into windows
	api     *API             // set by Run when there are workers
	certs   *certBook        // Config.Certs, renewed as they near expiry

	mu    sync.Mutex
	stats Stats
}

// New checks cfg and fills in defaults. It starts nothing.
func New(cfg Config) (*Sim, error) {
	if len(cfg.Devices) == 0 {
		return nil, errors.New("sim: no devices")
	}
	for i, d := range cfg.Devices {
		if d.DeviceID == "" || (d.Secret == "" && cfg.Certs[d.DeviceID] == nil) {
			return nil, fmt.Errorf("sim: device %d: id and a secret or certificate required", i)
		}
	}
	if cfg.Rate < 0 || cfg.HTTPShare < 0 || cfg.HTTPShare > 1 || cfg.SOSEvery < 0 || cfg.MotionEvery < 0 {
		return nil, errors.New("sim: rate, SOS and motion intervals must not be negative and the HTTPS share must be within 0..1")
	}
	if !(cfg.CancelOdds >= 0 && cfg.CancelOdds <= 1) {
		return nil, errors.New("sim: the cancel odds must be within 0..1")
	}
	if err := cfg.Workers.withDefaults(); err != nil {
		return nil, err
	}
	workers := 0
	for _, d := range cfg.Devices {
		if cfg.Workers.People[d.DeviceID] != "" {
			workers++
		}
	}
	if workers > 0 && cfg.APIAddr == "" {
		return nil, errors.New("sim: lone workers (Workers.People) need the JSON API address")
	}
	if cfg.HTTPSAddr == "" {
		cfg.HTTPShare = 0
	}
	if cfg.HTTPShare < 1 && cfg.MQTTAddr == "" {
		return nil, errors.New("sim: MQTT address required (some devices use MQTT)")
	}
	for _, a := range []string{cfg.MQTTAddr, cfg.HTTPSAddr, cfg.APIAddr} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("sim: address %q: want host:port: %w", a, err)
		}
	}
	if cfg.Rate == 0 {
		cfg.Rate = 0.2
	}
	if cfg.Centre == [2]float64{} {
		cfg.Centre = [2]float64{DefaultLat, DefaultLon}
	}
	if cfg.Centre[0] < -85 || cfg.Centre[0] > 85 || cfg.Centre[1] < -180 || cfg.Centre[1] > 180 {
		return nil, errors.New("sim: centre must be a latitude within ±85 and a longitude within ±180")
	}
	if cfg.TLS == nil {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = time.Minute
	}
	if cfg.BatteryEvery <= 0 {
		cfg.BatteryEvery = 5 * time.Minute
	}
	if cfg.BatchEvery <= 0 {
		cfg.BatchEvery = 5 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RampUp <= 0 {
		cfg.RampUp = min(time.Duration(len(cfg.Devices))*10*time.Millisecond, 10*time.Second)
	}
	if cfg.SummaryEvery <= 0 {
		cfg.SummaryEvery = 10 * time.Second
	}
	if cfg.QueueMax <= 0 {
		cfg.QueueMax = 10000
	}
	if len(cfg.Replay) > len(cfg.Devices) {
		return nil, fmt.Errorf("sim: %d recordings to replay but only %d devices", len(cfg.Replay), len(cfg.Devices))
	}
	if cfg.ReplayPause <= 0 {
		cfg.ReplayPause = 20 * time.Second
	}
	if cfg.RenewBefore <= 0 {
		cfg.RenewBefore = RenewBefore
	}
	s := &Sim{cfg: cfg, log: cfg.Logger, certs: newCertBook(cfg.Certs)}
	for _, r := range cfg.Replay {
		ws, err := MotionWindows(r.Samples, replayRateHz, replayWindow)
		if err != nil {
			return nil, fmt.Errorf("sim: replay %s: %w", r.Name, err)
		}
		if len(ws) == 0 {
			return nil, fmt.Errorf("sim: replay %s: recording is empty", r.Name)
		}
		s.replays = append(s.replays, ws)
	}
	s.stats = Stats{
		Devices:      len(cfg.Devices),
		Generated:    map[event.Type]uint64{},
		AckedByType:  map[event.Type]uint64{},
		Refused:      map[string]uint64{},
		CommandTypes: map[string]uint64{},
		Workers:      workers,
	}
	return s, nil
}

// usesHTTPS says whether device i is a phone app: an even spread of
// HTTPShare of the devices.
func (s *Sim) usesHTTPS(i int) bool {
	f := s.cfg.HTTPShare
	return int(float64(i+1)*f) > int(float64(i)*f)
}

// Run simulates every device until ctx is done, then waits for all of
// them to stop. It returns nil when stopped by ctx.
func (s *Sim) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sim: Run called twice")
	}
	var client *http.Client
	nHTTPS := 0
	for i := range s.cfg.Devices {
		if s.usesHTTPS(i) {
			nHTTPS++
		}
	}
	if nHTTPS > 0 {
		tr := &http.Transport{
			TLSClientConfig:     s.cfg.TLS.Clone(),
			MaxIdleConnsPerHost: min(nHTTPS, 256),
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
		}
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	if s.stats.Workers > 0 {
		api, err := NewAPI(s.cfg.APIAddr, s.cfg.APIToken, s.cfg.TLS)
		if err != nil {
			return err
		}
		defer api.Close()
		s.api = api
	}
	s.log.Info("sim starting", "devices", len(s.cfg.Devices), "https_devices", nHTTPS, "workers", s.stats.Workers, "rate", s.cfg.Rate)

	var wg sync.WaitGroup
	start := s.cfg.Now()
	nWorker := 0
	for i, cred := range s.cfg.Devices {
		d := &device{
			s:     s,
			index: i,
			cred:  cred,
			model: newModel(s.cfg.Seed, i, s.cfg.Centre, bootID(), start),
			sched: newSchedule(s.cfg, i),
			delay: s.cfg.RampUp * time.Duration(i) / time.Duration(len(s.cfg.Devices)),
			cmds:  make(chan command, 16),
		}
		cancelOdds := s.cfg.CancelOdds
		if i < len(s.replays) {
			d.replay = &replayer{rec: s.cfg.Replay[i], windows: s.replays[i]}
			d.sched.mean[kindMotion] = 0
			cancelOdds = 0
		}
		role := RoleRandom
		if d.person = s.cfg.Workers.People[cred.DeviceID]; d.person != "" {
			if nWorker < len(s.cfg.Workers.Roles) {
				role = s.cfg.Workers.Roles[nWorker]
			}
			nWorker++
		}
		d.wearer = newWearer(s.cfg.Workers, cancelOdds, s.cfg.RetryMin, s.cfg.Seed, i, d.person, role)
		if role == RoleWanderer {
			d.model.placeAt(s.cfg.Workers.ZoneRadius - wanderStart)
		}
		if d.wearer.flat {
			d.model.flatBattery()
		}
		wg.Add(1)
		if s.usesHTTPS(i) {
			go func() { defer wg.Done(); d.runHTTPS(ctx, client); d.finish(ctx) }()
		} else {
			go func() { defer wg.Done(); d.runMQTT(ctx); d.finish(ctx) }()
		}
	}

	t := time.NewTicker(s.cfg.SummaryEvery)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
			s.logSummary("sim summary")
		}
	}
	wg.Wait()
	s.logSummary("sim stopped")
	return nil
}

// Stats returns a snapshot of the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Generated = maps.Clone(s.stats.Generated)
	st.AckedByType = maps.Clone(s.stats.AckedByType)
	st.Refused = maps.Clone(s.stats.Refused)
	st.CommandTypes = maps.Clone(s.stats.CommandTypes)
	return st
}

// logSummary logs counts only: never coordinates, ids or secrets.
func (s *Sim) logSummary(msg string) {
	st := s.Stats()
	var gen, refused uint64
	for _, n := range st.Generated {
		gen += n
	}
	for _, n := range st.Refused {
		refused += n
	}
	s.log.Info(msg, "devices", st.Devices, "generated", gen, "sent", st.Sent, "acked", st.Acked,
		"duplicates", st.Duplicates, "refused", refused, "errors", st.Errors,
		"reconnects", st.Reconnects, "dropped", st.Dropped, "queued", st.Queued, "commands", st.Commands)
	if st.Workers > 0 {
		s.log.Info(msg+" (workers)", "workers", st.Workers, "sessions", st.SessionsStarted, "in_session", st.InSession,
			"checkins", st.Checkins, "late_checkins", st.LateCheckins, "forgotten", st.Forgotten,
			"reminders_answered", st.RemindersAnswered, "cancels", st.Cancels, "overruns", st.Overruns,
			"wanders", st.Wanders, "silences", st.Silences, "api_errors", st.APIErrors)
	}
}

func (s *Sim) update(f func(st *Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// bootID is a random id chosen at each (simulated) device start.
func bootID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
