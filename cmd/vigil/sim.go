package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"vigil/internal/app"
	"vigil/internal/clock"
	"vigil/internal/config"
	"vigil/internal/device"
	"vigil/internal/enrol"
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
	enrolAll := fs.Bool("enrol", false, "enrol every simulated device for real before it runs: issue it an enrolment token through the store, send a CSR for its own key over HTTPS, and connect over MQTT with mutual TLS (needed when mqtt.client_certs is required); certificates nearing expiry are renewed")
	tokensFile := fs.String("enrol-tokens", "", "enrol the devices named in FILE with their tokens, for a server whose store the simulator cannot open: one per line, \"DEVICE_ID TOKEN\" or the JSON of 'vigil device enrol-token --json'; without --creds these are the only devices (MQTT only, no workers)")
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
	var tokens map[string]string // device id → enrolment token
	var tokenIDs []string
	if *tokensFile != "" {
		if *enrolAll {
			return usagef("vigil sim: --enrol and --enrol-tokens: choose one")
		}
		if tokens, tokenIDs, err = readEnrolTokens(*tokensFile); err != nil {
			return err
		}
	}
	if (*enrolAll || tokens != nil) && *https == "off" {
		return usagef("vigil sim: --enrol needs the HTTPS address: --https must not be off")
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
	if tokens != nil && *credsFile == "" {
		// The devices are the tokens' own: certificates only, so MQTT only.
		for _, id := range tokenIDs {
			creds = append(creds, sim.Credential{DeviceID: id})
		}
		*n = min(*n, len(creds))
		creds = creds[:*n]
		*share, *api, *workers = 0, "", 0
	} else if *credsFile != "" {
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
	var certs map[string]*tls.Certificate
	if *enrolAll {
		ids := make([]string, len(creds))
		for i, c := range creds {
			ids[i] = c.DeviceID
		}
		if tokens, err = issueEnrolTokens(ctx, cfg, ids); err != nil {
			return err
		}
	}
	if tokens != nil {
		if certs, err = enrolDevices(ctx, *https, tlsCfg, creds, tokens); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "enrolled %d devices\n", len(certs))
	}
	log := newLogger(cfg, e.stderr)
	s, err := sim.New(sim.Config{
		Certs:    certs,
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
	if st.Renewed+st.RenewErrors > 0 {
		fmt.Fprintf(e.stdout, "certificates renewed %d, renewals failed %d\n", st.Renewed, st.RenewErrors)
	}
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

// readEnrolTokens reads --enrol-tokens: per line "DEVICE_ID TOKEN" or the
// JSON object 'vigil device enrol-token --json' prints; blank lines and
// lines starting with # are skipped. Errors name the line, never a token.
func readEnrolTokens(file string) (map[string]string, []string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("read enrolment tokens (--enrol-tokens): %w", err)
	}
	tokens := map[string]string{}
	var ids []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var id, tok string
		if strings.HasPrefix(line, "{") {
			var t enrol.Token
			if err := json.Unmarshal([]byte(line), &t); err != nil {
				return nil, nil, usagef("vigil sim: --enrol-tokens %s line %d: not the JSON of 'vigil device enrol-token --json'", file, i+1)
			}
			id, tok = t.DeviceID, t.Value
		} else if f := strings.Fields(line); len(f) == 2 {
			id, tok = f[0], f[1]
		}
		if id == "" || tok == "" {
			return nil, nil, usagef("vigil sim: --enrol-tokens %s line %d: want DEVICE_ID TOKEN", file, i+1)
		}
		if _, dup := tokens[id]; dup {
			return nil, nil, usagef("vigil sim: --enrol-tokens %s line %d: device %s listed twice", file, i+1, id)
		}
		tokens[id] = tok
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, nil, usagef("vigil sim: --enrol-tokens %s: no tokens", file)
	}
	return tokens, ids, nil
}

// issueEnrolTokens issues each device a short-lived enrolment token through
// the store, as 'vigil device enrol-token' does.
func issueEnrolTokens(ctx context.Context, cfg config.Config, ids []string) (map[string]string, error) {
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("issue enrolment tokens (--enrol needs the store; or pass --enrol-tokens): %w", err)
	}
	defer st.Close()
	tokens := make(map[string]string, len(ids))
	for _, id := range ids {
		tok, err := enrol.NewToken(ctx, st, time.Now(), id, enrol.DefaultTokenTTL)
		if err != nil {
			return nil, fmt.Errorf("issue an enrolment token for device %s: %w", id, err)
		}
		tokens[id] = tok.Value
	}
	return tokens, nil
}

// enrolDevices enrols every device of creds that has a token, over HTTPS
// at addr, a few at a time; the keys stay in this process.
func enrolDevices(ctx context.Context, addr string, tlsCfg *tls.Config, creds []sim.Credential, tokens map[string]string) (map[string]*tls.Certificate, error) {
	certs := make(map[string]*tls.Certificate, len(tokens))
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
	)
	sem := make(chan struct{}, 8)
	for _, c := range creds {
		tok, ok := tokens[c.DeviceID]
		if !ok {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cert, err := sim.Enrol(ctx, addr, tlsCfg, c.DeviceID, tok)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = fmt.Errorf("enrol device %s at %s: %w", c.DeviceID, addr, err)
				}
				return
			}
			certs[c.DeviceID] = cert
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return certs, nil
}
