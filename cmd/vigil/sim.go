package main

import (
	"context"
	"crypto/tls"
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
	api := fs.String("api", "", "JSON API address (HOST:PORT, TLS) for lone workers' sessions (default: the --https address; \"off\" for no workers)")
	apiToken := fs.String("api-token", e.getenv("VIGIL_API_TOKEN"), "API token for the JSON API (env VIGIL_API_TOKEN; default: one made for --org when the simulator registers devices through the store)")
	workers := fs.Float64("workers", 0.5, "fraction of the devices the simulator registers that are lone workers: assigned to a worker person, they start timed sessions, check in, sometimes forget, overrun, wander off or go silent (with --creds: the entries with a person_id)")
	interval := fs.Duration("checkin-interval", 10*time.Minute, "lone workers' check-in interval (at least 1m)")
	forget := fs.Float64("forget", 0.1, "chance that a worker forgets a check-in (and ignores its reminder), so missed_checkin fires")
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
	if !(*workers >= 0 && *workers <= 1) || !(*forget >= 0 && *forget <= 1) {
		return usagef("vigil sim: --workers and --forget must be within 0 and 1")
	}
	if *interval < time.Minute {
		return usagef("vigil sim: --checkin-interval %v: the server's minimum is 1m", *interval)
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
	switch *api {
	case "":
		*api = *https
		if *api == "" {
			*api = net.JoinHostPort(host, "8443")
		}
	case "off":
		*api, *workers = "", 0
	default:
		if _, _, err := net.SplitHostPort(*api); err != nil {
			return usagef("vigil sim: --api %q: want HOST:PORT or off", *api)
		}
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
	var people map[string]string
	if *credsFile != "" {
		if creds, people, err = readCreds(*credsFile); err != nil {
			return err
		}
		if len(creds) < *n {
			*n = len(creds)
		}
		creds = creds[:*n]
		if *api == "" {
			people = nil
		}
	} else {
		st, err := app.OpenStore(ctx, cfg)
		if err != nil {
			return fmt.Errorf("register simulated devices (or pass --creds): %w", err)
		}
		creds, people, err = provision(ctx, device.NewRegistry(st, clock.Real{}), st, *org, "Simulated devices", *n, *workers, filepath.Join(cfg.DataDir, "sim-devices.json"))
		st.Close()
		if err != nil {
			return err
		}
		if len(people) > 0 && *apiToken == "" {
			if *apiToken, err = issueToken(ctx, cfg, *org, "simulator", 30*24*time.Hour); err != nil {
				return err
			}
		}
		if len(people) > 0 {
			if err := importZone(ctx, *api, *apiToken, tlsCfg, *org); err != nil {
				return err
			}
		}
	}
	log := newLogger(cfg, e.stderr)
	s, err := sim.New(sim.Config{
		MQTTAddr: *server, HTTPSAddr: *https, TLS: tlsCfg, Devices: creds,
		Rate: *rate, HTTPShare: *share, SOSEvery: 10 * time.Minute, MotionEvery: time.Minute,
		Replay: replays,
		Seed:   time.Now().UnixNano(), Logger: log, Now: time.Now,
		APIAddr: *api, APIToken: *apiToken, CancelOdds: 0.3,
		Workers: sim.WorkerConfig{People: people, CheckinInterval: *interval, ForgetOdds: *forget,
			OverrunOdds: 0.1, WanderOdds: 0.1, SilentOdds: 0.05, FlatBatteryOdds: 0.1, ZoneRadius: simZoneRadius},
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
	if st.Workers > 0 {
		fmt.Fprintf(e.stdout, "%s\n", workersLine(st))
	}
	return err
}

// simZoneRadius is the must_stay_inside circle around the simulated area
// (walkers roam within about 1.7 km of its centre; wanderers leave it).
const simZoneRadius = 2000

// importZone imports the zone the simulated workers walk in into org
// through the JSON API (replacing it on later runs). It is also the check
// that the API can be reached, before any worker tries.
func importZone(ctx context.Context, addr, token string, tlsCfg *tls.Config, org string) error {
	api, err := sim.NewAPI(addr, token, tlsCfg)
	if err != nil {
		return err
	}
	defer api.Close()
	zone := sim.CircleZone(org+"-area", "Simulated area", [2]float64{sim.DefaultLat, sim.DefaultLon}, simZoneRadius)
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := api.ImportZones(cctx, org, zone); err != nil {
		return fmt.Errorf("import the workers' zone through the JSON API at %s (pass --api-token, or --api off for no workers): %w", addr, err)
	}
	return nil
}

// workersLine sums up what the simulated lone workers did.
func workersLine(st sim.Stats) string {
	return fmt.Sprintf("workers %d: sessions %d (%d now), check-ins %d (%d answering a reminder, %d late), forgotten %d, overruns %d, walks out of the zone %d, silences %d, pre-alerts cancelled %d, API errors %d",
		st.Workers, st.SessionsStarted, st.InSession, st.Checkins, st.RemindersAnswered, st.LateCheckins, st.Forgotten,
		st.Overruns, st.Wanders, st.Silences, st.Cancels, st.APIErrors)
}
