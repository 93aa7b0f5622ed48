package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"vigil/internal/app"
	"vigil/internal/config"
	"vigil/internal/sim"
)

func runDemo(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	n := fs.Int("devices", 20, "simulated devices")
	rate := fs.Float64("rate", 0.5, "position reports per device per second")
	replay := fs.String("replay", "", "SisFall recording or folder to replay as real motion streams (server-side fall detection); e.g. ../shared/datasets/sisfall")
	replayN := fs.Int("replay-devices", 2, "devices that replay a recording (falls and daily activities alternating)")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	replays, err := loadReplays(*replay, min(*replayN, *n))
	if err != nil {
		return err
	}
	if cfg.DataDir == config.Default().DataDir {
		// Keep demo data apart from a real installation's.
		cfg.DataDir = "vigil-demo"
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
	creds, err := provision(ctx, a.Devices(), "demo", "Demo Care Services", *n, filepath.Join(cfg.DataDir, "demo-devices.json"))
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
	s, err := sim.New(sim.Config{
		MQTTAddr: mqttAddr, HTTPSAddr: httpsAddr, TLS: tlsCfg, Devices: creds,
		Rate: *rate, HTTPShare: 0.25, SOSEvery: 10 * time.Minute, MotionEvery: time.Minute,
		Replay: replays,
		Seed:   time.Now().UnixNano(), Logger: log.With("component", "sim"), Now: time.Now,
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
  JSON API         https://%s/api/v1/alerts   (loopback only, no user accounts yet)
Ctrl-C stops it. A status line follows every 10 s.
`, cfg.DataDir, mqttAddr, len(creds), httpsAddr, dialable(a.Addr("admin")), cfg.DataDir, cfg.DataDir, cfg.DataDir,
		cfg.DataDir, dialable(a.Addr("api")))
	for i, r := range replays {
		fmt.Fprintf(e.stdout, "  device %s replays %s (%s) as its motion stream\n", creds[i].DeviceID, r.Name, map[bool]string{true: "a fall", false: "daily activity"}[r.Fall])
	}

	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan error, 1)
	statusDone := make(chan struct{})
	go func() { simDone <- s.Run(simCtx) }()
	go func() { defer close(statusDone); demoStatus(simCtx, e, a, s) }()

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
func demoStatus(ctx context.Context, e env, a *app.App, s *sim.Sim) {
	t := time.NewTicker(10 * time.Second)
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
	}
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
