package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"vigil/internal/app"
	"vigil/internal/clock"
	"vigil/internal/device"
	"vigil/internal/loadgen"
)

// runBench measures durable ingest: `vigil serve` as a separate process
// takes QoS 1 positions over MQTT/TLS from many connections through the
// whole pipeline into the store; in the same run, mosquitto takes the same
// load on the same certificate as the raw-broker ceiling. `vigil bench sos`
// is the SOS-to-screen benchmark (bench_sos.go).
func runBench(ctx context.Context, e env, args []string) error {
	if len(args) > 0 && args[0] == "sos" {
		return runBenchSOS(ctx, e, args[1:])
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	conns := fs.Int("devices", 50, "MQTT connections (one device each)")
	msgs := fs.Int("messages", 100000, "QoS 1 messages per run")
	window := fs.Int("window", 1, "publishes in flight per connection (paho.golang v0.23 stalls with more than one; use --client raw)")
	client := fs.String("client", "paho", "load generator client: paho (paho.golang) or raw (minimal MQTT 5 client, cheaper, any window)")
	runs := fs.Int("runs", 3, "runs of each system (medians are reported)")
	storeURL := fs.String("store", "", "store for the Vigil server (default SQLite in a temp dir)")
	sync := fs.String("nats-sync", "default", "JetStream sync policy for the Vigil server")
	profile := fs.String("cpu-profile", "", "write the Vigil server's CPU profile to `file`")
	mosq := fs.String("mosquitto", "mosquitto", "mosquitto binary for the peer run (\"off\" to skip)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "vigil-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Register the devices directly in the store before the server starts.
	cfgArgs := []string{"--data-dir", dir}
	if *storeURL != "" {
		cfgArgs = append(cfgArgs, "--store", *storeURL)
	}
	cfg, err := loadConfig(flag.NewFlagSet("bench-config", flag.ContinueOnError), e, cfgArgs)
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	reg := device.NewRegistry(st, clock.Real{})
	if err := reg.EnsureOrg(ctx, "bench", "Benchmark"); err != nil {
		st.Close()
		return err
	}
	creds := make([]device.Credentials, *conns)
	for i := range creds {
		if creds[i], err = reg.Register(ctx, "bench", fmt.Sprint("bench ", i)); err != nil {
			st.Close()
			return err
		}
	}
	st.Close()

	srv, err := startChild(ctx, os.Args[0], append([]string{"serve", "--mqtt-listen", "127.0.0.1:0",
		"--https-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--nats-sync", *sync, "--log-level", "info", "--cpu-profile", *profile,
		// Benchmark devices send far above any tracker: not a flood here.
		"--mqtt-flood-per-minute", "-1",
		// The load generator signs in with secrets, as it does on mosquitto.
		"--mqtt-client-certs", "optional"}, cfgArgs...)...)
	if err != nil {
		return err
	}
	defer srv.stop()
	caPEM, err := os.ReadFile(filepath.Join(dir, "tls", "ca.crt"))
	if err != nil {
		return err
	}
	tlsCfg, err := clientTLS(caPEM, "localhost")
	if err != nil {
		return err
	}
	metricsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 5 * time.Second}

	var peer *child
	if *mosq != "off" {
		peer, err = startMosquitto(ctx, *mosq, dir, tlsCfg)
		if err != nil {
			return fmt.Errorf("start mosquitto (install it with apt-get install mosquitto, or --mosquitto off): %w", err)
		}
		defer peer.stop()
	}

	if *client != "paho" && *client != "raw" {
		return usagef("vigil bench: --client %q: want paho or raw", *client)
	}
	if *client == "paho" && *window > 1 {
		return usagef("vigil bench: --window %d needs --client raw (paho.golang v0.23 stalls with more than one publish in flight)", *window)
	}
	fmt.Fprintf(e.stdout, "durable ingest: %d connections, %s client, window %d, %d QoS 1 positions per run, %d runs, store %s, nats sync %s\n",
		*conns, *client, *window, *msgs, *runs, storeName(*storeURL), *sync)
	var vig, mos []row
	for r := 0; r < *runs; r++ {
		load := func(addr string, auth bool) loadgen.Config {
			lc := loadgen.Config{Addr: addr, TLS: tlsCfg, Window: *window, Client: *client, Messages: *msgs, Duration: 5 * time.Minute,
				Payload: func(c, seq int) []byte {
					return fmt.Appendf(nil, `{"v":1,"id":"r%d-%d","ts":%q,"type":"position","position":{"lat":%.5f,"lon":-1.55,"accuracy_m":8,"speed_mps":1.4}}`,
						r, seq, time.Now().UTC().Format(time.RFC3339Nano), 53.8+float64(seq%1000)*1e-5)
				}}
			for _, c := range creds {
				cn := loadgen.Conn{ClientID: c.DeviceID, Topic: "v1/devices/" + c.DeviceID + "/events"}
				if auth {
					cn.Username, cn.Password = c.DeviceID, c.Secret
				}
				lc.Conns = append(lc.Conns, cn)
			}
			return lc
		}
		before, err := storedEvents(metricsClient, srv.admin)
		if err != nil {
			return err
		}
		tx0, err := storeTxs(metricsClient, srv.admin)
		if err != nil {
			return err
		}
		cpu0 := srv.cpu()
		t0 := time.Now()
		res, err := loadgen.Run(ctx, load(srv.mqtt, true))
		if err != nil {
			return fmt.Errorf("vigil run %d: %w", r+1, err)
		}
		// Durable means in the store: wait for the projector to drain.
		for {
			n, err := storedEvents(metricsClient, srv.admin)
			if err != nil {
				return err
			}
			if n-before >= float64(res.Acked) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if res.FirstError != "" {
			fmt.Fprintf(e.stderr, "vigil run %d: %d publish errors, first: %s\n", r+1, res.Errors, res.FirstError)
		}
		cpu := srv.cpu() - cpu0
		rw := rowOf(res, cpu)
		rw.stored = float64(res.Acked) / time.Since(t0).Seconds()
		tx1, err := storeTxs(metricsClient, srv.admin)
		if err != nil {
			return err
		}
		if tx1 > tx0 {
			fmt.Fprintf(e.stderr, "vigil run %d: %.0f store transactions, %.0f events each on average\n", r+1, tx1-tx0, float64(res.Acked)/(tx1-tx0))
		}
		vig = append(vig, rw)
		if peer != nil {
			cpu0 := peer.cpu()
			pres, err := loadgen.Run(ctx, load(peer.mqtt, false))
			if err != nil {
				return fmt.Errorf("mosquitto run %d: %w", r+1, err)
			}
			if pres.FirstError != "" {
				fmt.Fprintf(e.stderr, "mosquitto run %d: %d publish errors, first: %s\n", r+1, pres.Errors, pres.FirstError)
			}
			mos = append(mos, rowOf(pres, peer.cpu()-cpu0))
		}
		fmt.Fprintf(e.stderr, "run %d/%d done\n", r+1, *runs)
	}
	v := median(vig)
	fmt.Fprintf(e.stdout, "\n| system | acked msg/s | stored msg/s (end to end) | CPU µs/msg (server) | p50 PUBACK | p99 PUBACK | refused | errors |\n|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(e.stdout, "| vigil (durable: JetStream + store) | %.0f | %.0f | %.1f | %s | %s | %d | %d |\n", v.rate, v.stored, v.cpuPerMsg, v.p50, v.p99, v.refused, v.errors)
	if peer != nil {
		m := median(mos)
		fmt.Fprintf(e.stdout, "| mosquitto 2 (no persistence, no subscriber) | %.0f | – | %.1f | %s | %s | %d | %d |\n", m.rate, m.cpuPerMsg, m.p50, m.p99, m.refused, m.errors)
		fmt.Fprintf(e.stdout, "\nvigil / mosquitto rate: %.2f×\n", v.rate/m.rate)
	}
	return nil
}

func storeName(u string) string {
	if u == "" {
		return "sqlite"
	}
	return "postgres"
}

type row struct {
	rate, stored    float64 // acknowledged/s; in the store/s, end to end
	cpuPerMsg       float64
	p50, p99        time.Duration
	refused, errors int64
}

func rowOf(r loadgen.Result, cpu time.Duration) row {
	per := 0.0
	if r.Acked > 0 {
		per = float64(cpu.Microseconds()) / float64(r.Acked)
	}
	return row{rate: r.PerSecond, cpuPerMsg: per, p50: r.P50.Round(time.Microsecond), p99: r.P99.Round(time.Microsecond), refused: r.Refused, errors: r.Errors}
}

// median takes each column's median across runs.
func median(rs []row) row {
	pick := func(f func(row) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return row{
		rate:      pick(func(r row) float64 { return r.rate }),
		stored:    pick(func(r row) float64 { return r.stored }),
		cpuPerMsg: pick(func(r row) float64 { return r.cpuPerMsg }),
		p50:       time.Duration(pick(func(r row) float64 { return float64(r.p50) })),
		p99:       time.Duration(pick(func(r row) float64 { return float64(r.p99) })),
		refused:   int64(pick(func(r row) float64 { return float64(r.refused) })),
		errors:    int64(pick(func(r row) float64 { return float64(r.errors) })),
	}
}

var (
	projectedRe = regexp.MustCompile(`(?m)^vigil_projector_events_total (\S+)$`)
	txCountRe   = regexp.MustCompile(`(?m)^vigil_projector_batch_size_count (\S+)$`)
)

// storeTxs reads how many store transactions the projector has committed.
func storeTxs(c *http.Client, admin string) (float64, error) {
	return scrape(c, admin, txCountRe, "vigil_projector_batch_size_count")
}

func storedEvents(c *http.Client, admin string) (float64, error) {
	return scrape(c, admin, projectedRe, "vigil_projector_events_total")
}

func scrape(c *http.Client, admin string, re *regexp.Regexp, name string) (float64, error) {
	resp, err := c.Get("https://" + admin + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("read server metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	m := re.FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("read server metrics: %s missing", name)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// child is a server process under measurement.
type child struct {
	cmd              *exec.Cmd
	mqtt, admin, api string
}

func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
	}
}

// cpu is the process's user+system CPU time so far (Linux /proc).
func (c *child) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which is in parentheses).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

var serveAddrRe = regexp.MustCompile(`mqtt_tls=(\S+) https=(\S+) admin=(\S+)(?: api=(\S+))?`)

func startChild(ctx context.Context, exe string, args ...string) (*child, error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd}
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var tail []string
		for sc.Scan() {
			if m := serveAddrRe.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
			}
			tail = append(tail, sc.Text())
			if len(tail) > 20 {
				tail = tail[1:]
			}
		}
		found <- append([]string{"exit"}, tail...)
	}()
	m := <-found
	if m[0] == "exit" {
		return nil, fmt.Errorf("vigil serve exited: %s", strings.Join(m[1:], "\n"))
	}
	c.mqtt, c.admin, c.api = m[1], m[3], m[4]
	return c, nil
}

func startMosquitto(ctx context.Context, bin, dir string, tlsCfg *tls.Config) (*child, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := filepath.Join(dir, "mosquitto.conf")
	// "user root" stops mosquitto, when started as root, from dropping to
	// the mosquitto user, which cannot read the 0600 key in our data dir.
	body := fmt.Sprintf(`user root
listener %d 127.0.0.1
certfile %s
keyfile %s
tls_version tlsv1.2
allow_anonymous true
persistence false
max_inflight_messages 0
max_queued_messages 100000
log_dest none
`, port, filepath.Join(dir, "tls", "server.crt"), filepath.Join(dir, "tls", "server.key"))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, mqtt: fmt.Sprintf("127.0.0.1:%d", port)}
	for i := 0; i < 100; i++ {
		conn, err := tls.Dial("tcp", c.mqtt, tlsCfg)
		if err == nil {
			conn.Close()
			return c, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.stop()
	return nil, errors.New("mosquitto did not start listening")
}
