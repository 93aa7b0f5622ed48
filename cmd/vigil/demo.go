package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"vigil/internal/app"
	"vigil/internal/config"
	"vigil/internal/enrol"
	"vigil/internal/sim"
	"vigil/internal/store"
)

func runDemo(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	n := fs.Int("devices", 20, "simulated devices")
	rate := fs.Float64("rate", 0.5, "position reports per device per second")
	replay := fs.String("replay", "", "SisFall recording or folder to replay as real motion streams (server-side fall detection); e.g. ../shared/datasets/sisfall")
	replayN := fs.Int("replay-devices", 2, "devices that replay a recording (falls and daily activities alternating)")
	statusEvery := fs.Duration("status-every", 10*time.Second, "how often the status line is printed")
	workers := fs.Float64("workers", 0.5, "fraction of the devices that are lone workers: assigned to a worker person, they start timed sessions through the JSON API, check in, sometimes forget, overrun, wander off or go silent")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if !(*workers >= 0 && *workers <= 1) {
		return usagef("vigil demo: --workers must be within 0 and 1")
	}
	replays, err := loadReplays(*replay, min(*replayN, *n))
	if err != nil {
		return err
	}
	def := config.Default()
	if cfg.DataDir == def.DataDir {
		// Keep demo data apart from a real installation's.
		cfg.DataDir = "vigil-demo"
	}
	// Demo timers, unless given: reminders for 2-minute check-ins, and an
	// offline device noticed within minutes.
	if cfg.Safety.RemindBefore == def.Safety.RemindBefore {
		cfg.Safety.RemindBefore = demoRemindBefore
	}
	if cfg.Safety.OfflineAfter == def.Safety.OfflineAfter {
		cfg.Safety.OfflineAfter = demoOfflineAfter
	}
	log := newLogger(cfg, e.stderr)
	a, err := app.New(ctx, cfg, app.Deps{Logger: log, Out: e.stdout})
	if err != nil {
		return err
	}
	if err := a.Start(); err != nil {
		_ = a.Stop(context.Background())
		return err
	}
	creds, people, err := provision(ctx, a.Devices(), a.Store(), "demo", "Demo Care Services", *n, *workers, filepath.Join(cfg.DataDir, "demo-devices.json"))
	if err != nil {
		_ = a.Stop(context.Background())
		return err
	}
	tlsCfg, err := clientTLS(a.CACertPEM(), "localhost")
	if err != nil {
		_ = a.Stop(context.Background())
		return err
	}
	mqttAddr, httpsAddr := dialable(a.Addr("mqtt")), dialable(a.Addr("https"))
	apiAddr := httpsAddr
	// Every simulated device enrols as a real one does (its own key, a CSR
	// with a one-time token) and connects over MQTT with mutual TLS.
	certs, err := demoEnrol(ctx, a.Store(), httpsAddr, tlsCfg, creds)
	if err != nil {
		_ = a.Stop(context.Background())
		return err
	}
	tok, err := a.Auth().IssueToken(ctx, "demo", "demo simulator", nil, 30*24*time.Hour, "demo")
	if err != nil {
		_ = a.Stop(context.Background())
		return err
	}
	if len(people) > 0 {
		if err := importZone(ctx, apiAddr, tok.Secret, tlsCfg, "demo"); err != nil {
			_ = a.Stop(context.Background())
			return err
		}
	}
	s, err := sim.New(sim.Config{
		MQTTAddr: mqttAddr, HTTPSAddr: httpsAddr, TLS: tlsCfg, Devices: creds, Certs: certs,
		Rate: *rate, HTTPShare: 0.25, SOSEvery: 10 * time.Minute, MotionEvery: time.Minute,
		Replay: replays,
		Seed:   time.Now().UnixNano(), Logger: log.With("component", "sim"), Now: time.Now,
		APIAddr: apiAddr, APIToken: tok.Secret, CancelOdds: 0.5, Workers: demoWorkers(people, cfg.Safety.OfflineAfter),
	})
	if err != nil {
		_ = a.Stop(context.Background())
		return err
	}
	fmt.Fprintf(e.stdout, `Vigil demo running, data in %s/
  MQTT over TLS   mqtts://%s   (%d simulated devices, org "demo")
  HTTPS device API https://%s/api/v1/devices/{id}/events
  metrics          https://%s/metrics   (curl --cacert %s/tls/ca.crt)
  CA certificate   %s/tls/ca.crt
  devices          go run ./cmd/vigil device list --data-dir %s
  alerts           go run ./cmd/vigil alerts list --data-dir %s   (simulated SOS presses raise them)
  JSON API         https://%s/api/v1/alerts   (sign in, or an API token: vigil token create --org demo)
  sessions         go run ./cmd/vigil sessions list --active --data-dir %s
`, cfg.DataDir, mqttAddr, len(creds), httpsAddr, dialable(a.Addr("admin")), cfg.DataDir, cfg.DataDir, cfg.DataDir,
		cfg.DataDir, apiAddr, cfg.DataDir)
	if len(people) > 0 {
		fmt.Fprintf(e.stdout, `  lone workers     %d devices are worn by worker people who start timed sessions through the JSON API
                   (check-in every %v, grace %v), mostly check in by button when reminded (%v before due),
                   and stay inside the zone "Simulated area", %d m around the centre
                   (go run ./cmd/vigil zones list --org demo --data-dir %s)
  expect           a missed check-in within about 3 min, a worker leaving the zone within about 4,
                   an overrun, a silent device (offline after %v) and a low battery within about 6
`, len(people), demoInterval, demoGrace, cfg.Safety.RemindBefore, simZoneRadius, cfg.DataDir, cfg.Safety.OfflineAfter)
	}
	if *statusEvery <= 0 {
		return usagef("vigil demo: --status-every %v: want a positive duration", *statusEvery)
	}
	fmt.Fprintf(e.stdout, "Ctrl-C stops it. A status line follows every %v.\n", *statusEvery)
	for i, r := range replays {
		fmt.Fprintf(e.stdout, "  device %s replays %s (%s) as its motion stream\n", creds[i].DeviceID, r.Name, map[bool]string{true: "a fall", false: "daily activity"}[r.Fall])
	}

	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan error, 1)
	statusDone := make(chan struct{})
	go func() { simDone <- s.Run(simCtx) }()
	go func() { defer close(statusDone); demoStatus(simCtx, e, a, s, *statusEvery) }()

	var runErr error
	simEnded := false
	select {
	case <-ctx.Done():
	case runErr = <-a.Err():
	case runErr = <-simDone:
		simEnded = true
	}
	stopSim()
	<-statusDone // it reads the store: done before the store closes
	if !simEnded {
		if err := <-simDone; runErr == nil {
			runErr = err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.Stop(sctx); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// demoStatus prints what is happening: what the simulator sent and what the
// server has stored.
func demoStatus(ctx context.Context, e env, a *app.App, s *sim.Sim, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stored, err := a.Store().CountEvents(ctx, "")
		if err != nil {
			continue
		}
		st := s.Stats()
		fmt.Fprintf(e.stdout, "%s  devices sent %d, acknowledged %d, refused %d; events stored %d; falls detected from motion %.0f\n",
			time.Now().Format(time.TimeOnly), st.Sent, st.Acked, refusedTotal(st), stored, gauge(a, "vigil_falls_detected_total"))
		open, err := openAlerts(ctx, a.Store(), "demo")
		if err != nil {
			continue
		}
		if st.Workers > 0 {
			fmt.Fprintf(e.stdout, "          %s\n", workersLine(st))
		}
		fmt.Fprintf(e.stdout, "          open alerts: %s\n", open)
	}
}

// The demo's timers and workers: something to see in the first minutes.
const (
	demoRemindBefore = time.Minute
	demoOfflineAfter = 3 * time.Minute
	demoInterval     = 2 * time.Minute
	demoGrace        = 30 * time.Second
)

// demoWorkers: 2-minute check-ins, 15-minute sessions, and five scripted
// workers whose first session shows one alert each, within minutes.
func demoWorkers(people map[string]string, offlineAfter time.Duration) sim.WorkerConfig {
	return sim.WorkerConfig{
		People:          people,
		Roles:           []sim.Role{sim.RoleForgetful, sim.RoleWanderer, sim.RoleSilent, sim.RoleOverrun, sim.RoleFlatBattery},
		CheckinInterval: demoInterval, Grace: demoGrace, SessionLength: 15 * time.Minute, Break: time.Minute,
		React: 15 * time.Second, SilentFor: offlineAfter + 2*time.Minute, ZoneRadius: simZoneRadius,
		ForgetOdds: 0.1, OverrunOdds: 0.15, WanderOdds: 0.1, SilentOdds: 0.05, FlatBatteryOdds: 0.1,
	}
}

// alertLister is what the status line reads.
type alertLister interface {
	ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
}

// openAlerts counts an organisation's open alerts by kind:
// "missed_checkin 1, sos 3", or "none".
func openAlerts(ctx context.Context, st alertLister, org string) (string, error) {
	list, err := st.ListAlerts(ctx, store.AlertFilter{OrgID: org, Limit: 1000,
		States: []store.AlertState{store.AlertPending, store.AlertRaised, store.AlertAcknowledged}})
	if err != nil {
		return "", err
	}
	byKind := map[string]int{}
	for _, al := range list {
		byKind[al.Kind]++
	}
	if len(byKind) == 0 {
		return "none", nil
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, byKind[k]))
	}
	s := strings.Join(parts, ", ")
	if len(list) == 1000 {
		s += " (at least)"
	}
	return s, nil
}

// gauge reads one unlabelled counter or gauge of the app's metrics (0 when
// absent).
func gauge(a *app.App, name string) float64 {
	mfs, err := a.Metrics().Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return 0
}

// demoEnrol issues each demo device an enrolment token and enrols it over
// HTTPS, returning the client certificates it connects with.
func demoEnrol(ctx context.Context, st enrol.TokenStore, httpsAddr string, tlsCfg *tls.Config, creds []sim.Credential) (map[string]*tls.Certificate, error) {
	tokens := make(map[string]string, len(creds))
	for _, c := range creds {
		tok, err := enrol.NewToken(ctx, st, time.Now(), c.DeviceID, enrol.DefaultTokenTTL)
		if err != nil {
			return nil, fmt.Errorf("issue an enrolment token for demo device %s: %w", c.DeviceID, err)
		}
		tokens[c.DeviceID] = tok.Value
	}
	return enrolDevices(ctx, httpsAddr, tlsCfg, creds, tokens)
}
