package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"vigil/internal/app"
	"vigil/internal/clock"
	"vigil/internal/device"
	"vigil/internal/loadgen"
	"vigil/internal/notify/webhook"
)

// sosConfig is one `vigil bench sos` configuration.
type sosConfig struct {
	SOS        int     // SOS presses, one device each
	Rate       float64 // SOS presses per second
	BgRate     float64 // background positions per second (0: none)
	BgDevices  int     // background MQTT connections
	BgClient   string  // loadgen client: raw or paho
	BgWindow   int     // background publishes in flight per connection
	Stalled    int     // console clients that connect and never read
	DataDir    string  // server data directory ("" = a temp dir, removed after)
	Store      string  // store URL ("" = SQLite in the data dir)
	Exe        string  // the vigil binary started as `vigil serve`
	Warmup     time.Duration
	Drain      time.Duration // how long after the last SOS a notification may still arrive before it counts as lost
	Progress   io.Writer
	EventIDTag string // prefix of the SOS event ids (distinct per run)
}

// sosResult is what one run measured. Latencies are from just before the
// SOS PUBLISH is written to the device's socket to the moment the receiver
// has the event (the console client has parsed its data line; the webhook
// receiver has read the request body).
type sosResult struct {
	SOS              int          `json:"sos"`
	Acked            int          `json:"acked"`
	PublishErrors    int          `json:"publish_errors"`
	FirstPublishErr  string       `json:"first_publish_error,omitempty"`
	Console          sosDelivery  `json:"console"`
	Webhook          sosDelivery  `json:"webhook"`
	PubAck           latencyStats `json:"puback"`
	Raised           latencyStats `json:"publish_to_raised"` // to the alert's raised_at: the safety engine's decision, before any store write
	SOSSeconds       float64      `json:"sos_phase_seconds"`
	BgTarget         float64      `json:"background_target_per_s"`
	BgSent           float64      `json:"background_sent_per_s"`    // positions published/s over the SOS phase
	BgStored         float64      `json:"background_stored_per_s"`  // events into the store/s over the SOS phase
	BgErrors         int64        `json:"background_errors"`        //
	BgRefused        int64        `json:"background_refused"`       //
	ProjectorBacklog float64      `json:"projector_backlog_at_end"` // events accepted but not yet in the store when the last SOS was acknowledged
	SafetyBacklog    float64      `json:"safety_backlog_at_end"`    // events accepted but not yet applied by the safety engine, same moment
	ServerCPU        float64      `json:"server_cpu_cores"`         // vigil serve, user+system, over the SOS phase
	BenchCPU         float64      `json:"bench_cpu_cores"`          // this process (load generator, devices, receivers)
	LoadAvg          [2]float64   `json:"load_avg_1m_start_end"`    // the machine's 1-minute load average
	FeedSubscribers  float64      `json:"feed_subscribers_at_end"`  // console streams the server still holds
	FeedDropped      float64      `json:"feed_dropped_total"`       // streams the server dropped for falling behind
	Stalled          []stalledEnd `json:"stalled_consoles"`         //
	UnmatchedAlerts  int          `json:"unmatched_alerts"`         // alerts received that no SOS of this run explains
	RejectedWebhooks int          `json:"rejected_webhooks"`        // bad signature or body
	ConsoleEnded     bool         `json:"console_stream_ended"`     // the reading console's stream ended during the run
}

// sosDelivery is one receiver's tally.
type sosDelivery struct {
	Received   int          `json:"received"`   // distinct SOS whose raised alert arrived
	Lost       int          `json:"lost"`       // acknowledged SOS that never arrived within the drain time
	Duplicates int          `json:"duplicates"` // extra copies of an alert already received
	Latency    latencyStats `json:"latency"`
}

// stalledEnd is how a stalled console client ended.
type stalledEnd struct {
	Events int    `json:"raised_events_buffered"` // raised events it could read afterwards
	State  string `json:"state"`                  // "dropped by the server" or "still connected"
}

// latencyStats are nearest-rank percentiles in milliseconds.
type latencyStats struct {
	N     int     `json:"n"`
	P50ms float64 `json:"p50_ms"`
	P90ms float64 `json:"p90_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

func latencyOf(ds []time.Duration) latencyStats {
	if len(ds) == 0 {
		return latencyStats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) float64 {
		i := max(int(math.Ceil(p*float64(len(s))))-1, 0)
		return float64(s[i]) / float64(time.Millisecond)
	}
	return latencyStats{N: len(s), P50ms: at(0.50), P90ms: at(0.90), P99ms: at(0.99), MaxMs: at(1)}
}

// runBenchSOS is `vigil bench sos`: SOS to screen under background load.
// While the load generator pushes positions at a fixed rate, devices press
// SOS one after another; the bench measures each SOS from its PUBLISH to
// the `raised` event on a connected console (server-sent events) and to
// the signed webhook, with stalled console clients connected throughout.
func runBenchSOS(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("bench sos", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	n := fs.Int("sos", 1000, "SOS presses per run, each from its own device")
	rate := fs.Float64("sos-rate", 25, "SOS presses per second")
	bgRate := fs.Float64("background-rate", 10000, "background QoS 1 positions per second (0 for none)")
	bgDevices := fs.Int("background-devices", 100, "background MQTT connections")
	bgClient := fs.String("background-client", "raw", "background load generator client: raw or paho")
	bgWindow := fs.Int("background-window", 4, "background publishes in flight per connection (paho: 1)")
	stalled := fs.Int("stalled-consoles", 1, "console feed clients that connect and never read")
	dataDir := fs.String("data-dir", "", "server data directory (default a temp dir, removed afterwards)")
	storeURL := fs.String("store", "", "store for the server (default SQLite in the data dir)")
	runs := fs.Int("runs", 1, "runs, each on a fresh server (medians are reported)")
	warmup := fs.Duration("warmup", 3*time.Second, "background load before the first SOS")
	drain := fs.Duration("drain", 30*time.Second, "wait this long after the last SOS before a missing notification counts as lost")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usagef("vigil bench sos: unexpected argument %q", fs.Arg(0))
	case *n < 1:
		return usagef("vigil bench sos: --sos %d: want at least 1", *n)
	case *rate <= 0:
		return usagef("vigil bench sos: --sos-rate %g: want more than 0", *rate)
	case *bgRate < 0:
		return usagef("vigil bench sos: --background-rate %g: want 0 or more", *bgRate)
	case *bgRate > 0 && *bgDevices < 1:
		return usagef("vigil bench sos: --background-devices %d: want at least 1", *bgDevices)
	case *bgClient != "raw" && *bgClient != "paho":
		return usagef("vigil bench sos: --background-client %q: want raw or paho", *bgClient)
	case *bgWindow < 1 || *bgClient == "paho" && *bgWindow > 1:
		return usagef("vigil bench sos: --background-window %d: want at least 1, and 1 with --background-client paho", *bgWindow)
	case *stalled < 0:
		return usagef("vigil bench sos: --stalled-consoles %d: want 0 or more", *stalled)
	case *runs < 1:
		return usagef("vigil bench sos: --runs %d: want at least 1", *runs)
	}
	cfg := sosConfig{SOS: *n, Rate: *rate, BgRate: *bgRate, BgDevices: *bgDevices, BgClient: *bgClient, BgWindow: *bgWindow,
		Stalled: *stalled, Store: *storeURL, Exe: os.Args[0], Warmup: *warmup, Drain: *drain, Progress: e.stderr}
	if *bgRate == 0 {
		cfg.BgDevices = 0
	}
	fmt.Fprintf(e.stderr, "SOS to screen: %d SOS at %g/s, background %g positions/s over %d connections (%s client, window %d), %d stalled console(s), store %s, %d run(s)\n",
		cfg.SOS, cfg.Rate, cfg.BgRate, cfg.BgDevices, cfg.BgClient, cfg.BgWindow, cfg.Stalled, storeName(cfg.Store), *runs)
	var results []sosResult
	for r := range *runs {
		c := cfg
		c.EventIDTag = fmt.Sprintf("sos-r%d", r+1)
		if *dataDir != "" {
			c.DataDir = *dataDir
			if *runs > 1 {
				c.DataDir = filepath.Join(*dataDir, fmt.Sprintf("run-%d", r+1))
			}
		}
		res, err := benchSOS(ctx, c)
		if err != nil {
			return fmt.Errorf("run %d: %w", r+1, err)
		}
		results = append(results, res)
		fmt.Fprintf(e.stderr, "run %d/%d done\n", r+1, *runs)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"config": map[string]any{
			"sos": cfg.SOS, "sos_rate": cfg.Rate, "background_rate": cfg.BgRate, "background_devices": cfg.BgDevices,
			"background_client": cfg.BgClient, "background_window": cfg.BgWindow, "stalled_consoles": cfg.Stalled,
			"store": storeName(cfg.Store), "latency_from": "just before the SOS PUBLISH is written",
		}, "runs": results})
	}
	printSOS(e.stdout, results)
	return nil
}

// printSOS writes the runs and, for several, their per-column medians as
// Markdown tables.
func printSOS(w io.Writer, rs []sosResult) {
	type line struct {
		name string
		r    sosResult
	}
	lines := make([]line, 0, len(rs)+1)
	for i, r := range rs {
		lines = append(lines, line{fmt.Sprint("run ", i+1), r})
	}
	if len(rs) > 1 {
		lines = append(lines, line{"**median**", medianSOS(rs)})
	}
	ms := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	fmt.Fprintf(w, "\nLatency from just before the SOS PUBLISH is written to the receiver having the event (ms):\n\n")
	fmt.Fprintf(w, "| | console p50 | p90 | p99 | max | webhook p50 | p90 | p99 | max | PUBACK p50 | p99 | alert raised p50 | p99 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, l := range lines {
		c, h, a, rz := l.r.Console.Latency, l.r.Webhook.Latency, l.r.PubAck, l.r.Raised
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", l.name,
			ms(c.P50ms), ms(c.P90ms), ms(c.P99ms), ms(c.MaxMs), ms(h.P50ms), ms(h.P90ms), ms(h.P99ms), ms(h.MaxMs), ms(a.P50ms), ms(a.P99ms), ms(rz.P50ms), ms(rz.P99ms))
	}
	fmt.Fprintf(w, "\n| | SOS acked/sent | console got (lost, dup) | webhook got (lost, dup) | background sent/s (stored/s) of target | backlog at end: store, safety | server CPU cores | bench CPU cores | load 1m start→end | stalled consoles |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, l := range lines {
		r := l.r
		fmt.Fprintf(w, "| %s | %d/%d | %d (%d, %d) | %d (%d, %d) | %.0f (%.0f) of %.0f | %.0f, %.0f | %.2f | %.2f | %.1f→%.1f | %s |\n", l.name,
			r.Acked, r.SOS, r.Console.Received, r.Console.Lost, r.Console.Duplicates, r.Webhook.Received, r.Webhook.Lost, r.Webhook.Duplicates,
			r.BgSent, r.BgStored, r.BgTarget, r.ProjectorBacklog, r.SafetyBacklog, r.ServerCPU, r.BenchCPU, r.LoadAvg[0], r.LoadAvg[1], stalledSummary(r))
	}
	var worst sosResult
	for _, r := range rs {
		worst.Console.Lost += r.Console.Lost
		worst.Webhook.Lost += r.Webhook.Lost
		worst.Console.Latency.MaxMs = max(worst.Console.Latency.MaxMs, r.Console.Latency.MaxMs)
		worst.Webhook.Latency.MaxMs = max(worst.Webhook.Latency.MaxMs, r.Webhook.Latency.MaxMs)
		worst.Console.Latency.P99ms = max(worst.Console.Latency.P99ms, r.Console.Latency.P99ms)
		worst.Webhook.Latency.P99ms = max(worst.Webhook.Latency.P99ms, r.Webhook.Latency.P99ms)
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(w, "\nTargets over every run: p99 ≤ 25 ms — console %s (worst %.1f ms), webhook %s (worst %.1f ms); max < 1 s — console %s, webhook %s; none lost — %s.\n",
		verdict(worst.Console.Latency.P99ms <= 25), worst.Console.Latency.P99ms, verdict(worst.Webhook.Latency.P99ms <= 25), worst.Webhook.Latency.P99ms,
		verdict(worst.Console.Latency.MaxMs < 1000), verdict(worst.Webhook.Latency.MaxMs < 1000), verdict(worst.Console.Lost == 0 && worst.Webhook.Lost == 0))
}

func stalledSummary(r sosResult) string {
	if len(r.Stalled) == 0 {
		return "none"
	}
	count := map[string]int{}
	for _, s := range r.Stalled {
		count[s.State]++
	}
	var parts []string
	for _, st := range slices.Sorted(maps.Keys(count)) {
		parts = append(parts, fmt.Sprintf("%d %s", count[st], st))
	}
	return strings.Join(parts, ", ")
}

// medianSOS takes each printed column's median across runs.
func medianSOS(rs []sosResult) sosResult {
	med := func(f func(sosResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	lat := func(f func(sosResult) latencyStats) latencyStats {
		return latencyStats{
			P50ms: med(func(r sosResult) float64 { return f(r).P50ms }),
			P90ms: med(func(r sosResult) float64 { return f(r).P90ms }),
			P99ms: med(func(r sosResult) float64 { return f(r).P99ms }),
			MaxMs: med(func(r sosResult) float64 { return f(r).MaxMs }),
		}
	}
	del := func(f func(sosResult) sosDelivery) sosDelivery {
		return sosDelivery{
			Received:   int(med(func(r sosResult) float64 { return float64(f(r).Received) })),
			Lost:       int(med(func(r sosResult) float64 { return float64(f(r).Lost) })),
			Duplicates: int(med(func(r sosResult) float64 { return float64(f(r).Duplicates) })),
			Latency:    lat(func(r sosResult) latencyStats { return f(r).Latency }),
		}
	}
	m := sosResult{
		SOS:              int(med(func(r sosResult) float64 { return float64(r.SOS) })),
		Acked:            int(med(func(r sosResult) float64 { return float64(r.Acked) })),
		Console:          del(func(r sosResult) sosDelivery { return r.Console }),
		Webhook:          del(func(r sosResult) sosDelivery { return r.Webhook }),
		PubAck:           lat(func(r sosResult) latencyStats { return r.PubAck }),
		Raised:           lat(func(r sosResult) latencyStats { return r.Raised }),
		BgTarget:         med(func(r sosResult) float64 { return r.BgTarget }),
		BgSent:           med(func(r sosResult) float64 { return r.BgSent }),
		BgStored:         med(func(r sosResult) float64 { return r.BgStored }),
		ServerCPU:        med(func(r sosResult) float64 { return r.ServerCPU }),
		ProjectorBacklog: med(func(r sosResult) float64 { return r.ProjectorBacklog }),
		SafetyBacklog:    med(func(r sosResult) float64 { return r.SafetyBacklog }),
		BenchCPU:         med(func(r sosResult) float64 { return r.BenchCPU }),
		LoadAvg:          [2]float64{med(func(r sosResult) float64 { return r.LoadAvg[0] }), med(func(r sosResult) float64 { return r.LoadAvg[1] })},
	}
	// The stalled clients' outcome is not a number: the median row shows
	// whether any run had one still connected or dropped.
	for _, r := range rs {
		m.Stalled = append(m.Stalled, r.Stalled...)
	}
	return m
}

const sosOrg = "bench"

// benchSOS runs one measurement on a fresh `vigil serve` child process.
func benchSOS(ctx context.Context, cfg sosConfig) (res sosResult, err error) {
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	dir := cfg.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "vigil-bench-sos-"); err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	if cfg.EventIDTag == "" {
		cfg.EventIDTag = "sos"
	}

	// Devices are registered in the store before the server starts.
	cfgArgs := []string{"--data-dir", dir}
	if cfg.Store != "" {
		cfgArgs = append(cfgArgs, "--store", cfg.Store)
	}
	bg, sos, err := provisionSOSBench(ctx, cfgArgs, cfg.BgDevices, cfg.SOS)
	if err != nil {
		return res, err
	}
	bcfg, err := loadConfig(flag.NewFlagSet("bench-config", flag.ContinueOnError), env{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard}, cfgArgs)
	if err != nil {
		return res, err
	}
	tok, err := issueToken(ctx, bcfg, sosOrg, "bench sos", 24*time.Hour)
	if err != nil {
		return res, err
	}

	// The webhook receiver, on its own certificate, which the server is
	// told to trust; and the signing key.
	keyBytes := make([]byte, 32)
	if _, err := rand.Read(keyBytes); err != nil {
		return res, err
	}
	hookKey := []byte(hex.EncodeToString(keyBytes))
	keyFile, caFile := filepath.Join(dir, "bench-webhook.key"), filepath.Join(dir, "bench-receiver-ca.pem")
	if err := os.WriteFile(keyFile, hookKey, 0o600); err != nil {
		return res, err
	}
	recv, err := startHookReceiver(hookKey, caFile)
	if err != nil {
		return res, err
	}
	defer recv.close()

	srv, err := startChild(ctx, cfg.Exe, append([]string{"serve", "--mqtt-listen", "127.0.0.1:0",
		"--https-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--log-level", "info",
		"--webhook-key-file", keyFile, "--outbound-allow", "127.0.0.1/32", "--outbound-ca-file", caFile,
		"--mqtt-client-certs", "optional"}, cfgArgs...)...)
	if err != nil {
		return res, err
	}
	defer srv.stop()
	if srv.api == "" {
		return res, errors.New("vigil serve did not report its API address")
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "tls", "ca.crt"))
	if err != nil {
		return res, err
	}
	tlsCfg, err := clientTLS(caPEM, "localhost")
	if err != nil {
		return res, err
	}
	api := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 8}, Timeout: 10 * time.Second}
	defer api.CloseIdleConnections()
	apiBase := "https://" + srv.api

	policy := fmt.Sprintf(`{"steps":[{"name":"bench","recipients":[{"channel":"console"},{"channel":"webhook","address":%q}],"wait":"1h"}]}`, recv.url)
	if err := apiDo(ctx, api, tok, http.MethodPut, apiBase+"/api/v1/orgs/"+sosOrg+"/escalation-policies/sos", policy, nil); err != nil {
		return res, fmt.Errorf("set the SOS policy: %w", err)
	}

	// Consoles: one that reads, and the stalled ones.
	feedURL := apiBase + "/api/v1/orgs/" + sosOrg + "/feed"
	cctx, stopConsole := context.WithCancel(ctx)
	defer stopConsole()
	console, err := startConsole(cctx, tlsCfg, feedURL, tok)
	if err != nil {
		return res, err
	}
	var stalled []*stalledConsole
	defer func() {
		for _, s := range stalled {
			s.conn.Close()
		}
	}()
	for range cfg.Stalled {
		s, err := connectStalled(ctx, tlsCfg, srv.api, "/api/v1/orgs/"+sosOrg+"/feed", tok)
		if err != nil {
			return res, err
		}
		stalled = append(stalled, s)
	}

	// SOS devices stay connected, as pendants do. The server caps MQTT
	// connections per source address (1000), so they come from their own
	// loopback addresses, 900 each, apart from the background load's.
	fmt.Fprintf(progress, "connecting %d SOS devices\n", len(sos))
	devs, err := connectSOSDevices(ctx, srv.mqtt, tlsCfg, sos)
	if err != nil {
		return res, err
	}
	defer func() {
		for _, d := range devs {
			_ = d.Disconnect(&paho.Disconnect{})
		}
	}()

	// Background positions at a fixed rate.
	metrics := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 5 * time.Second}
	defer metrics.CloseIdleConnections()
	bgCtx, stopBg := context.WithCancel(ctx)
	defer stopBg()
	pace := newPacer(cfg.BgRate)
	bgDone := make(chan struct{})
	var bgRes loadgen.Result
	var bgErr error
	if len(bg) > 0 {
		lc := loadgen.Config{Addr: srv.mqtt, TLS: tlsCfg, Client: cfg.BgClient, Window: cfg.BgWindow, Duration: 24 * time.Hour,
			Payload: func(c, seq int) []byte {
				pace.wait()
				return fmt.Appendf(nil, `{"v":1,"id":"bg-%d","ts":%q,"type":"position","position":{"lat":%.5f,"lon":-1.55,"accuracy_m":8,"speed_mps":1.4}}`,
					seq, time.Now().UTC().Format(time.RFC3339Nano), 53.8+float64(seq%1000)*1e-5)
			}}
		for _, c := range bg {
			lc.Conns = append(lc.Conns, loadgen.Conn{ClientID: c.DeviceID, Username: c.DeviceID, Password: c.Secret, Topic: "v1/devices/" + c.DeviceID + "/events"})
		}
		go func() {
			defer close(bgDone)
			bgRes, bgErr = loadgen.Run(bgCtx, lc)
		}()
		fmt.Fprintf(progress, "background load: %g positions/s, warming up %v\n", cfg.BgRate, cfg.Warmup)
		select {
		case <-time.After(cfg.Warmup):
		case <-bgDone:
			return res, fmt.Errorf("background load ended early: %v (%d errors, first: %s)", bgErr, bgRes.Errors, bgRes.FirstError)
		case <-ctx.Done():
			return res, ctx.Err()
		}
	} else {
		close(bgDone)
	}

	// The SOS phase.
	res.SOS, res.BgTarget = cfg.SOS, cfg.BgRate
	res.LoadAvg[0] = loadAvg1()
	stored0, err := storedEvents(metrics, srv.admin)
	if err != nil {
		return res, err
	}
	sent0 := pace.count()
	cpu0, self0 := srv.cpu(), selfCPU()
	t0 := time.Now()
	fmt.Fprintf(progress, "pressing SOS on %d devices at %g/s\n", cfg.SOS, cfg.Rate)
	presses := pressSOS(ctx, devs, sos, cfg.Rate, cfg.EventIDTag)
	elapsed := time.Since(t0)
	cpu1, self1 := srv.cpu(), selfCPU()
	sent1 := pace.count()
	stored1, err := storedEvents(metrics, srv.admin)
	if err != nil {
		return res, err
	}
	accepted, err := metricSum(metrics, srv.admin, "vigil_mqtt_messages_accepted_total")
	if err != nil {
		return res, err
	}
	applied, err := metricSum(metrics, srv.admin, "vigil_safety_events_total")
	if err != nil {
		return res, err
	}
	res.ProjectorBacklog, res.SafetyBacklog = max(accepted-stored1, 0), max(accepted-applied, 0)
	res.LoadAvg[1] = loadAvg1()
	res.SOSSeconds = elapsed.Seconds()
	res.ServerCPU = (cpu1 - cpu0).Seconds() / elapsed.Seconds()
	res.BenchCPU = (self1 - self0).Seconds() / elapsed.Seconds()
	res.BgSent = float64(sent1-sent0) / elapsed.Seconds()
	res.BgStored = max(stored1-stored0-float64(cfg.SOS), 0) / elapsed.Seconds()

	acked := 0
	for _, p := range presses {
		switch {
		case p.err == nil:
			acked++
		case res.FirstPublishErr == "":
			res.FirstPublishErr = p.err.Error()
			res.PublishErrors++
		default:
			res.PublishErrors++
		}
	}
	res.Acked = acked

	// Wait for the notifications still on their way (background load on).
	deadline := time.Now().Add(cfg.Drain)
	for time.Now().Before(deadline) && (console.distinct() < acked || recv.log.distinct() < acked) {
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	stopBg()
	<-bgDone
	if bgErr != nil {
		return res, fmt.Errorf("background load: %w", bgErr)
	}
	res.BgErrors, res.BgRefused = bgRes.Errors, bgRes.Refused
	if bgRes.FirstError != "" {
		fmt.Fprintf(progress, "background load: %d publish errors, first: %s\n", bgRes.Errors, bgRes.FirstError)
	}

	// What the server thinks of the stalled consoles, before they are read.
	if res.FeedSubscribers, err = scrape(metrics, srv.admin, feedSubsRe, "vigil_console_feed_subscribers"); err != nil {
		return res, err
	}
	if res.FeedDropped, err = scrape(metrics, srv.admin, feedDroppedRe, "vigil_console_feed_dropped_total"); err != nil {
		return res, err
	}
	for _, s := range stalled {
		res.Stalled = append(res.Stalled, s.finish())
	}
	stopConsole()
	consoleGot, consoleDup, consoleEnded := console.wait()
	res.ConsoleEnded = consoleEnded
	hookGot, hookDup, rejected := recv.log.snapshot()
	res.RejectedWebhooks = rejected

	// Alert id → device → the SOS that raised it.
	ids := make(map[string]struct{}, len(consoleGot)+len(hookGot))
	for id := range consoleGot {
		ids[id] = struct{}{}
	}
	for id := range hookGot {
		ids[id] = struct{}{}
	}
	devOf, err := alertDevices(ctx, api, apiBase, tok, ids)
	if err != nil {
		return res, err
	}
	press := make(map[string]int, len(sos))
	for i, c := range sos {
		press[c.DeviceID] = i
	}
	tally := func(got map[string]time.Time, dup int) sosDelivery {
		d := sosDelivery{Duplicates: dup}
		seen := make([]bool, len(sos))
		var lat []time.Duration
		for id, at := range got {
			i, ok := press[devOf[id].DeviceID]
			if !ok {
				continue
			}
			if !seen[i] {
				seen[i] = true
				d.Received++
				lat = append(lat, at.Sub(presses[i].at))
			} else {
				d.Duplicates++ // a second alert for one press
			}
		}
		for i, p := range presses {
			if p.err == nil && !seen[i] {
				d.Lost++
			}
		}
		d.Latency = latencyOf(lat)
		return d
	}
	res.Console = tally(consoleGot, consoleDup)
	res.Webhook = tally(hookGot, hookDup)
	var raised []time.Duration
	for id := range ids {
		i, ok := press[devOf[id].DeviceID]
		if !ok {
			res.UnmatchedAlerts++
			continue
		}
		raised = append(raised, devOf[id].RaisedAt.Sub(presses[i].at))
	}
	res.Raised = latencyOf(raised)
	var acks []time.Duration
	for _, p := range presses {
		if p.err == nil {
			acks = append(acks, p.ack)
		}
	}
	res.PubAck = latencyOf(acks)
	return res, nil
}

// provisionSOSBench registers the background and SOS devices in the store.
func provisionSOSBench(ctx context.Context, cfgArgs []string, bgN, sosN int) (bg, sos []device.Credentials, err error) {
	cfg, err := loadConfig(flag.NewFlagSet("bench-config", flag.ContinueOnError), env{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard}, cfgArgs)
	if err != nil {
		return nil, nil, err
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	reg := device.NewRegistry(st, clock.Real{})
	if err := reg.EnsureOrg(ctx, sosOrg, "Benchmark"); err != nil {
		return nil, nil, err
	}
	for i := range bgN + sosN {
		name, list := fmt.Sprint("background ", i), &bg
		if i >= bgN {
			name, list = fmt.Sprint("sos ", i-bgN), &sos
		}
		c, err := reg.Register(ctx, sosOrg, name)
		if err != nil {
			return nil, nil, err
		}
		*list = append(*list, c)
	}
	return bg, sos, nil
}

// pacer spaces calls to wait at a fixed rate across goroutines. A
// generator that falls behind catches up by at most pacerSlack's worth of
// calls, so a stall is not followed by a burst (the achieved rate is
// measured, not assumed).
type pacer struct {
	every time.Duration
	mu    sync.Mutex
	next  time.Time
	n     atomic.Int64
}

const pacerSlack = 50 * time.Millisecond

func newPacer(perSecond float64) *pacer {
	p := &pacer{next: time.Now()}
	if perSecond > 0 {
		p.every = time.Duration(float64(time.Second) / perSecond)
	}
	return p
}

func (p *pacer) wait() {
	p.n.Add(1)
	now := time.Now()
	p.mu.Lock()
	at := p.next
	if floor := now.Add(-pacerSlack); at.Before(floor) {
		at = floor
	}
	p.next = at.Add(p.every)
	p.mu.Unlock()
	if d := at.Sub(now); d > 0 {
		time.Sleep(d)
	}
}

func (p *pacer) count() int64 { return p.n.Load() }

// connectSOSDevices opens one MQTT connection per SOS device, from
// 127.0.0.2 upwards (900 per source address).
func connectSOSDevices(ctx context.Context, addr string, tlsCfg *tls.Config, creds []device.Credentials) ([]*paho.Client, error) {
	const perSource = 900
	clients := make([]*paho.Client, len(creds))
	errs := make([]error, len(creds))
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(16, len(creds)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(creds) {
					return
				}
				src := net.IPv4(127, 0, byte(i/perSource/254), byte(2+i/perSource%254))
				clients[i], errs[i] = connectDevice(ctx, addr, tlsCfg, src, creds[i])
				if errs[i] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, c := range clients {
			if c != nil {
				_ = c.Disconnect(&paho.Disconnect{})
			}
		}
		return nil, fmt.Errorf("connect SOS devices: %w", err)
	}
	return clients, nil
}

func connectDevice(ctx context.Context, addr string, tlsCfg *tls.Config, src net.IP, c device.Credentials) (*paho.Client, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}, Config: tlsCfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("device %s from %s: %w", c.DeviceID, src, err)
	}
	cl := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ca, err := cl.Connect(cctx, &paho.Connect{ClientID: c.DeviceID, Username: c.DeviceID, UsernameFlag: true,
		Password: []byte(c.Secret), PasswordFlag: true, KeepAlive: 60, CleanStart: true})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("device %s: %w", c.DeviceID, err)
	}
	if ca.ReasonCode != 0 {
		conn.Close()
		return nil, fmt.Errorf("device %s: CONNACK %#x", c.DeviceID, ca.ReasonCode)
	}
	return cl, nil
}

// sosPress is one SOS: when its PUBLISH was about to be written, how long
// the PUBACK took, and whether it came.
type sosPress struct {
	at  time.Time
	ack time.Duration
	err error
}

// pressSOS makes device i press SOS at i/rate seconds, each on its own
// goroutine so a slow acknowledgement does not delay the next press, and
// returns once every press has its PUBACK or error.
func pressSOS(ctx context.Context, devs []*paho.Client, creds []device.Credentials, rate float64, tag string) []sosPress {
	presses := make([]sosPress, len(devs))
	start := time.Now()
	var wg sync.WaitGroup
	for i, cl := range devs {
		due := start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
		select {
		case <-time.After(time.Until(due)):
		case <-ctx.Done():
			for j := i; j < len(devs); j++ {
				presses[j].err = ctx.Err()
			}
			wg.Wait()
			return presses
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			msg := &paho.Publish{Topic: "v1/devices/" + creds[i].DeviceID + "/events", QoS: 1,
				Payload: fmt.Appendf(nil, `{"v":1,"id":"%s-%d","ts":%q,"type":"button","button":{"kind":"sos"}}`, tag, i, time.Now().UTC().Format(time.RFC3339Nano))}
			at := time.Now() // just before the PUBLISH is written
			pr, err := cl.Publish(pctx, msg)
			presses[i] = sosPress{at: at, ack: time.Since(at), err: err}
			if err == nil && pr != nil && pr.ReasonCode >= 0x80 {
				presses[i].err = fmt.Errorf("PUBACK %#x", pr.ReasonCode)
			}
		}()
	}
	wg.Wait()
	return presses
}

// alertInfo is what the bench needs of an alert.
type alertInfo struct {
	DeviceID string    `json:"device_id"`
	RaisedAt time.Time `json:"raised_at"`
}

// alertDevices looks up which device raised each SOS alert, and when.
func alertDevices(ctx context.Context, c *http.Client, base, tok string, ids map[string]struct{}) (map[string]alertInfo, error) {
	out := make(map[string]alertInfo, len(ids))
	var mu sync.Mutex
	work := make(chan string)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				var a struct {
					alertInfo
					Kind string `json:"kind"`
				}
				if err := apiDo(ctx, c, tok, http.MethodGet, base+"/api/v1/alerts/"+id, "", &a); err != nil {
					errs <- fmt.Errorf("look up alert %s: %w", id, err)
					return
				}
				if a.Kind != "sos" {
					continue
				}
				mu.Lock()
				out[id] = a.alertInfo
				mu.Unlock()
			}
		}()
	}
	var err error
feed:
	for id := range ids {
		select {
		case work <- id:
		case err = <-errs:
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return out, err
}

// apiDo sends a JSON request to the API and decodes a 2xx answer into out
// (if not nil).
func apiDo(ctx context.Context, c *http.Client, tok, method, url, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// receipts records the first arrival of each alert's `raised` event.
type receipts struct {
	mu       sync.Mutex
	first    map[string]time.Time
	dup      int
	rejected int
}

func newReceipts() *receipts { return &receipts{first: map[string]time.Time{}} }

func (r *receipts) add(alertID string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.first[alertID]; ok {
		r.dup++
		return
	}
	r.first[alertID] = at
}

func (r *receipts) reject() {
	r.mu.Lock()
	r.rejected++
	r.mu.Unlock()
}

func (r *receipts) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.first)
}

func (r *receipts) snapshot() (map[string]time.Time, int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.first), r.dup, r.rejected
}

// raisedSOS is the part of a console event or webhook body the bench reads.
type raisedSOS struct {
	AlertID string `json:"alert_id"`
	Event   string `json:"event"`
	Kind    string `json:"kind"`
}

// hookReceiver is the webhook receiver: TLS on its own self-signed
// certificate, every request verified with the signing key.
type hookReceiver struct {
	srv  *http.Server
	url  string
	log  *receipts
	done chan struct{}
}

func startHookReceiver(key []byte, caFile string) (*hookReceiver, error) {
	cert, certPEM, err := selfSignedLoopback()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &hookReceiver{url: "https://" + ln.Addr().String() + "/hook", log: newReceipts(), done: make(chan struct{})}
	h.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			at := time.Now()
			if err != nil {
				h.log.reject()
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			if err := webhook.Verify(key, r.Header, body, at, 0); err != nil {
				h.log.reject()
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			var p raisedSOS
			if err := json.Unmarshal(body, &p); err != nil || p.AlertID == "" {
				h.log.reject()
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			if p.Event == "raised" && p.Kind == "sos" {
				h.log.add(p.AlertID, at)
			}
			w.WriteHeader(http.StatusNoContent)
		}),
	}
	go func() {
		defer close(h.done)
		_ = h.srv.ServeTLS(ln, "", "")
	}()
	return h, nil
}

func (h *hookReceiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.srv.Shutdown(ctx)
	<-h.done
}

// selfSignedLoopback makes a certificate for 127.0.0.1 that is its own CA.
func selfSignedLoopback() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vigil bench webhook receiver"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// consoleClient reads the live feed as a console does.
type consoleClient struct {
	log   *receipts
	done  chan struct{}
	ended atomic.Bool // the stream ended before the bench stopped it
}

func startConsole(ctx context.Context, tlsCfg *tls.Config, url, tok string) (*consoleClient, error) {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("console feed: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("console feed: %s", resp.Status)
	}
	c := &consoleClient{log: newReceipts(), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer resp.Body.Close()
		readSSE(resp.Body, func(event string, data []byte) {
			at := time.Now()
			if event != "raised" {
				return
			}
			var a raisedSOS
			if json.Unmarshal(data, &a) != nil || a.AlertID == "" {
				c.log.reject()
				return
			}
			if a.Kind == "sos" {
				c.log.add(a.AlertID, at)
			}
		})
		if ctx.Err() == nil {
			c.ended.Store(true)
		}
	}()
	return c, nil
}

func (c *consoleClient) distinct() int { return c.log.distinct() }

// wait waits for the reader to stop (its context cancelled) and returns
// what it got and whether the stream had ended on its own before.
func (c *consoleClient) wait() (map[string]time.Time, int, bool) {
	<-c.done
	got, dup, _ := c.log.snapshot()
	return got, dup, c.ended.Load()
}

// readSSE calls fn for each server-sent event on r until r ends.
func readSSE(r io.Reader, fn func(event string, data []byte)) int {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var event string
	var data []byte
	n := 0
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if event != "" || data != nil {
				if event == "" {
					event = "message"
				}
				fn(event, data)
				n++
			}
			event, data = "", nil
		case bytes.HasPrefix(line, []byte("event:")):
			event = string(bytes.TrimSpace(line[len("event:"):]))
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data[:0:0], bytes.TrimPrefix(line[len("data:"):], []byte(" "))...)
		}
	}
	return n
}

// stalledConsole is a console client that asked for the feed and never
// reads it. Its socket's receive buffer is 4 KiB, so the server's writes
// back up within a few events, as for a console on a dead network.
type stalledConsole struct {
	conn *tls.Conn
}

func connectStalled(ctx context.Context, tlsCfg *tls.Config, addr, path, tok string) (*stalledConsole, error) {
	d := &tls.Dialer{Config: tlsCfg, NetDialer: &net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("stalled console: %w", err)
	}
	conn := nc.(*tls.Conn)
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nAuthorization: Bearer %s\r\n\r\n", path, addr, tok)
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, fmt.Errorf("stalled console: %w", err)
	}
	return &stalledConsole{conn: conn}, nil
}

// finish reads what the server managed to send and says whether the
// server had hung up (dropped the client) or still holds the stream.
func (s *stalledConsole) finish() stalledEnd {
	defer s.conn.Close()
	_ = s.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	var out stalledEnd
	br := bufio.NewReader(s.conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		out.State = "no response: " + err.Error()
		return out
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		out.State = "refused: " + resp.Status
		return out
	}
	var body bytes.Buffer
	_, err = io.Copy(&body, resp.Body)
	readSSE(&body, func(event string, _ []byte) {
		if event == "raised" {
			out.Events++
		}
	})
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		out.State = "still connected"
	} else {
		out.State = "dropped by the server"
	}
	return out
}

var (
	feedSubsRe    = regexp.MustCompile(`(?m)^vigil_console_feed_subscribers (\S+)$`)
	feedDroppedRe = regexp.MustCompile(`(?m)^vigil_console_feed_dropped_total (\S+)$`)
)

// metricSum adds up every series of a counter or gauge on the admin
// listener's /metrics.
func metricSum(c *http.Client, admin, name string) (float64, error) {
	resp, err := c.Get("https://" + admin + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("read server metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("read server metrics: %w", err)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? (\S+)$`)
	ms := re.FindAllSubmatch(b, -1)
	if ms == nil {
		return 0, fmt.Errorf("read server metrics: %s missing", name)
	}
	var sum float64
	for _, m := range ms {
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			return 0, fmt.Errorf("read server metrics: %s: %w", name, err)
		}
		sum += v
	}
	return sum, nil
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg1 is the machine's 1-minute load average (Linux), or 0.
func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
