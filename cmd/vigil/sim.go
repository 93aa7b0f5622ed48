package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"vigil/internal/app"
	"vigil/internal/clock"
	"vigil/internal/device"
	"vigil/internal/sim"
)

func runSim(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	n := fs.Int("devices", 20, "number of simulated devices")
	rate := fs.Float64("rate", 0.5, "position reports per device per second")
	replay := fs.String("replay", "", "SisFall recording or folder to replay as real motion streams (server-side fall detection); e.g. ../shared/datasets/sisfall")
	replayN := fs.Int("replay-devices", 2, "devices that replay a recording (falls and daily activities alternating)")
	server := fs.String("server", "localhost:8883", "MQTT/TLS address of the server")
	https := fs.String("https", "", "HTTPS address for phone-app devices (default: the --server host, port 8443; \"off\" for MQTT only)")
	share := fs.Float64("http-share", 0.25, "fraction of devices that act as phone apps over HTTPS")
	caFile := fs.String("ca", "", "CA certificate of the server (default <data dir>/tls/ca.crt)")
	credsFile := fs.String("creds", "", "device credentials file (from 'vigil device add --json'); default: register devices in org --org through the store")
	org := fs.String("org", "sim", "organisation for devices the simulator registers")
	dur := fs.Duration("duration", 0, "stop after this long (0 = until interrupted)")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	replays, err := loadReplays(*replay, min(*replayN, *n))
	if err != nil {
		return err
	}
	if *n <= 0 || *rate <= 0 {
		return usagef("vigil sim: --devices and --rate must be positive")
	}
	host, _, err := net.SplitHostPort(*server)
	if err != nil {
		return usagef("vigil sim: --server %q: want HOST:PORT", *server)
	}
	switch *https {
	case "":
		*https = net.JoinHostPort(host, "8443")
	case "off":
		*https = ""
	}
	if *caFile == "" {
		*caFile = filepath.Join(cfg.DataDir, "tls", "ca.crt")
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		return fmt.Errorf("read the server's CA certificate (--ca): %w", err)
	}
	tlsCfg, err := clientTLS(caPEM, host)
	if err != nil {
		return err
	}
	var creds []sim.Credential
	if *credsFile != "" {
		if creds, err = readCreds(*credsFile); err != nil {
			return err
		}
		if len(creds) < *n {
			*n = len(creds)
		}
		creds = creds[:*n]
	} else {
		st, err := app.OpenStore(ctx, cfg)
		if err != nil {
			return fmt.Errorf("register simulated devices (or pass --creds): %w", err)
		}
		creds, err = provision(ctx, device.NewRegistry(st, clock.Real{}), *org, "Simulated devices", *n, filepath.Join(cfg.DataDir, "sim-devices.json"))
		st.Close()
		if err != nil {
			return err
		}
	}
	log := newLogger(cfg, e.stderr)
	s, err := sim.New(sim.Config{
		MQTTAddr: *server, HTTPSAddr: *https, TLS: tlsCfg, Devices: creds,
		Rate: *rate, HTTPShare: *share, SOSEvery: 10 * time.Minute, MotionEvery: time.Minute,
		Replay: replays,
		Seed:   time.Now().UnixNano(), Logger: log, Now: time.Now,
	})
	if err != nil {
		return err
	}
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	err = s.Run(ctx)
	st := s.Stats()
	fmt.Fprintf(e.stdout, "sent %d, acknowledged %d, refused %d\n", st.Sent, st.Acked, refusedTotal(st))
	return err
}
