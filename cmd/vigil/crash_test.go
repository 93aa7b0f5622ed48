package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"vigil/internal/device"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
)

// TestMain lets the test binary act as the vigil binary, so the crash test
// runs `vigil serve` as a real separate process without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("VIGIL_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// server is `vigil serve` running as a child process.
type server struct {
	t     *testing.T
	cmd   *exec.Cmd
	mqtt  string
	https string
	admin string
	out   *lockedBuf
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func vigilCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "VIGIL_TEST_RUN_MAIN=1")
	return cmd
}

// vigilRun runs a short subcommand and returns its stdout.
func vigilRun(t *testing.T, args ...string) string {
	t.Helper()
	cmd := vigilCmd(t, args...)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("vigil %v: %v\n%s", args, err, stderr)
	}
	return string(out)
}

var listenRe = regexp.MustCompile(`mqtt_tls=(\S+) https=(\S+) admin=(\S+)`)

// startServer starts `vigil serve` and waits for it to report its addresses.
func startServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dataDir,
		"--mqtt-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0",
		"--mqtt-client-certs", "optional"}, extra...)
	cmd := vigilCmd(t, args...)
	pr, pw := io.Pipe()
	out := &lockedBuf{}
	cmd.Stderr = io.MultiWriter(pw, out)
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, out: out}
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listenRe.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
			}
		}
	}()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); pw.Close(); close(exited) }()
	select {
	case m := <-found:
		s.mqtt, s.https, s.admin = m[1], m[2], m[3]
	case <-exited:
		t.Fatalf("vigil serve exited before listening:\n%s", out.String())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("vigil serve did not report its addresses in 60s:\n%s", out.String())
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return s
}

func (s *server) kill9() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_, _ = s.cmd.Process.Wait()
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_, _ = s.cmd.Process.Wait()
}

func caTLS(t *testing.T, dataDir string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dataDir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientTLS(pem, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// publisher publishes QoS 1 positions with a real MQTT 5 client (paho) and
// records exactly which message ids got a successful PUBACK.
type publisher struct {
	creds device.Credentials
	tls   *tls.Config
	mu    sync.Mutex
	acked map[string]bool
	seq   int
}

func (p *publisher) run(ctx context.Context, addr func() string) {
	for ctx.Err() == nil {
		conn, err := tls.Dial("tcp", addr(), p.tls)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond): // server restarting
			}
			continue
		}
		// paho does not wake a publish waiting for its PUBACK when the
		// connection dies; a per-connection context does.
		connCtx, connCancel := context.WithCancel(ctx)
		c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn),
			OnClientError:      func(error) { connCancel() },
			OnServerDisconnect: func(*paho.Disconnect) { connCancel() },
		})
		cctx, cancel := context.WithTimeout(connCtx, 5*time.Second)
		ca, err := c.Connect(cctx, &paho.Connect{
			ClientID: p.creds.DeviceID, Username: p.creds.DeviceID, UsernameFlag: true,
			Password: []byte(p.creds.Secret), PasswordFlag: true, KeepAlive: 30, CleanStart: true,
		})
		cancel()
		if err != nil || ca.ReasonCode != 0 {
			connCancel()
			conn.Close()
			continue
		}
		for ctx.Err() == nil {
			p.seq++
			id := fmt.Sprintf("m%07d", p.seq)
			payload := fmt.Sprintf(`{"v":1,"id":%q,"ts":%q,"type":"position","position":{"lat":53.8,"lon":-1.55,"accuracy_m":5}}`,
				id, time.Now().UTC().Format(time.RFC3339Nano))
			if p.seq%50 == 0 { // alarms take the extra store-sync path
				payload = fmt.Sprintf(`{"v":1,"id":%q,"ts":%q,"type":"button","button":{"kind":"sos"}}`,
					id, time.Now().UTC().Format(time.RFC3339Nano))
			}
			pctx, cancel := context.WithTimeout(connCtx, 5*time.Second)
			pr, err := c.Publish(pctx, &paho.Publish{Topic: "v1/devices/" + p.creds.DeviceID + "/events", QoS: 1, Payload: []byte(payload)})
			cancel()
			if err != nil {
				break
			}
			if pr.ReasonCode < 0x80 {
				p.mu.Lock()
				p.acked[id] = true
				p.mu.Unlock()
			}
		}
		connCancel()
		conn.Close()
	}
}

func (p *publisher) ackedIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.acked))
	for id := range p.acked {
		ids = append(ids, id)
	}
	return ids
}

// TestNoAckedEventLostOnKill9: `vigil serve` runs as a separate process;
// real MQTT clients publish QoS 1 messages while the server is killed with
// SIGKILL at random moments, at least 10 times, and restarted. Every
// PUBACKed message must end up in the store exactly once, and every
// acknowledged SOS in exactly one alert.
func TestNoAckedEventLostOnKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 test runs the server as a process; skipped with -short")
	}
	dir := t.TempDir()
	vigilRun(t, "org", "add", "--data-dir", dir, "--id", "crash", "--name", "Crash test")
	var creds []device.Credentials
	for i := 0; i < 4; i++ {
		var c device.Credentials
		if err := json.Unmarshal([]byte(vigilRun(t, "device", "add", "--data-dir", dir, "--org", "crash", "--name", fmt.Sprint("d", i), "--json")), &c); err != nil {
			t.Fatal(err)
		}
		creds = append(creds, c)
	}

	srv := startServer(t, dir)
	tlsCfg := caTLS(t, dir)
	var mu sync.Mutex
	addr := func() string { mu.Lock(); defer mu.Unlock(); return srv.mqtt }

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	pubs := make([]*publisher, len(creds))
	for i, c := range creds {
		pubs[i] = &publisher{creds: c, tls: tlsCfg, acked: map[string]bool{}}
		wg.Add(1)
		go func() { defer wg.Done(); pubs[i].run(ctx, addr) }()
	}

	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	const kills = 12
	for k := 0; k < kills; k++ {
		// Let the publishers get going, then kill at a random moment.
		before := total(pubs)
		deadline := time.Now().Add(30 * time.Second)
		for total(pubs) < before+200+rng.IntN(800) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // polling progress, not asserting time
		}
		srv.kill9()
		next := startServer(t, dir)
		mu.Lock()
		srv = next
		mu.Unlock()
	}
	// Publish a little more after the last restart, then stop publishing.
	before := total(pubs)
	for total(pubs) < before+100 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()

	var acked []string
	sosIDs := map[string]bool{}
	for _, p := range pubs {
		for _, id := range p.ackedIDs() {
			acked = append(acked, p.creds.DeviceID+"/"+id)
			var n int
			if _, err := fmt.Sscanf(id, "m%d", &n); err == nil && n%50 == 0 {
				sosIDs[p.creds.DeviceID+"/"+id] = true
			}
		}
	}
	t.Logf("%d kills, %d PUBACKed messages", kills, len(acked))
	if len(acked) < 2000 {
		t.Fatalf("only %d messages acknowledged; the test did not exercise enough load", len(acked))
	}

	// The running server projects whatever is still in the stream. Stop it
	// gracefully once the store holds everything, then check in-process.
	waitDeadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := sqlite.Open(context.Background(), filepath.Join(dir, "vigil.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for _, k := range acked {
			dev, msg, _ := strings.Cut(k, "/")
			ok, err := st.HasEvent(context.Background(), dev, msg)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				missing++
			}
		}
		n, err := st.CountEvents(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		// Every acknowledged SOS is in exactly one alert's timeline (the
		// cause is unique), and each device has one open SOS alert that
		// the repeats joined: none lost, none doubled across the kills.
		for _, k := range acked {
			if !sosIDs[k] {
				continue
			}
			ok, err := st.HasCause(context.Background(), "ev:"+k)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				missing++
			}
		}
		if missing == 0 {
			alerts, err := st.ListAlerts(context.Background(), store.AlertFilter{Kind: "sos", Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			perDevice := map[string]int{}
			for _, a := range alerts {
				perDevice[a.DeviceID]++
			}
			for dev, n := range perDevice {
				if n != 1 {
					t.Errorf("device %s has %d SOS alerts, want 1 (repeats join the open one)", dev, n)
				}
			}
			if len(perDevice) == 0 {
				t.Error("no SOS alert raised")
			}
			// The device's event counter (advanced by the projector) must
			// equal the events stored: a redelivered batch counted twice
			// would show here.
			for _, c := range creds {
				d, err := st.GetDevice(context.Background(), c.DeviceID)
				if err != nil {
					t.Fatal(err)
				}
				stored, err := st.CountEvents(context.Background(), c.DeviceID)
				if err != nil {
					t.Fatal(err)
				}
				if d.State.Events != stored {
					t.Errorf("device %s counts %d events, store holds %d", c.DeviceID, d.State.Events, stored)
				}
			}
		}
		st.Close()
		if missing == 0 {
			// Exactly once: the store holds no more events than distinct
			// ids published (unacked ones may or may not be there, but
			// none twice: (device, msg id) is unique and counted).
			sent := 0
			for _, p := range pubs {
				sent += p.seq
			}
			if n > int64(sent) {
				t.Fatalf("store holds %d events but only %d distinct ids were published", n, sent)
			}
			t.Logf("all %d acknowledged events stored; %d events in store of %d published", len(acked), n, sent)
			break
		}
		if time.Now().After(waitDeadline) {
			t.Fatalf("%d of %d acknowledged events missing from the store", missing, len(acked))
		}
		time.Sleep(200 * time.Millisecond) // waiting for the projector to catch up
	}
	srv.stop()
}

func total(pubs []*publisher) int {
	n := 0
	for _, p := range pubs {
		p.mu.Lock()
		n += len(p.acked)
		p.mu.Unlock()
	}
	return n
}
