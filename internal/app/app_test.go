package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"vigil/internal/app"
	"vigil/internal/config"
	"vigil/internal/device"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
)

func register(t *testing.T, a *app.App) device.Credentials {
	t.Helper()
	ctx := context.Background()
	if err := a.Devices().EnsureOrg(ctx, "acme", "Acme Care"); err != nil {
		t.Fatal(err)
	}
	c, err := a.Devices().Register(ctx, "acme", "pendant")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// eventually polls cond until it holds or the deadline passes; it waits on
// the asynchronous projector, it does not assert a duration.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mqttConnect(t *testing.T, a *app.App, c device.Credentials) *paho.Client {
	t.Helper()
	conn, err := tls.Dial("tcp", a.Addr("mqtt"), vigiltest.ClientTLS(t, a))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// paho writes a PINGREQ right after CONNACK from its own goroutine;
	// without the packet-level lock it can land inside the first PUBLISH.
	cl := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := cl.Connect(ctx, &paho.Connect{ClientID: c.DeviceID, Username: c.DeviceID, UsernameFlag: true,
		Password: []byte(c.Secret), PasswordFlag: true, KeepAlive: 30, CleanStart: true})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect: %v %+v", err, ca)
	}
	return cl
}

func runPipeline(t *testing.T, cfg config.Config) {
	a := vigiltest.StartApp(t, cfg)
	c := register(t, a)
	ctx := context.Background()

	// MQTT: an SOS with a position, PUBACKed only once durable, then in the store.
	cl := mqttConnect(t, a, c)
	ts := time.Now().UTC().Add(-time.Second).Format(time.RFC3339Nano)
	pr, err := cl.Publish(ctx, &paho.Publish{Topic: "v1/devices/" + c.DeviceID + "/events", QoS: 1,
		Payload: fmt.Appendf(nil, `{"v":1,"id":"sos-1","ts":%q,"type":"button","button":{"kind":"sos"},"position":{"lat":53.8,"lon":-1.55,"accuracy_m":8}}`, ts)})
	if err != nil || pr.ReasonCode >= 0x80 {
		t.Fatalf("publish: %v %+v", err, pr)
	}
	// An alarm is in the (fsynced) store before its PUBACK, not later.
	if ok, err := a.Store().HasEvent(ctx, c.DeviceID, "sos-1"); err != nil || !ok {
		t.Fatalf("SOS acknowledged but not yet in the store (%v)", err)
	}

	// HTTPS: a store-and-forward batch, including a redelivery of sos-1.
	body := fmt.Sprintf(`{"events":[
		{"v":1,"id":"b-1","ts":%q,"type":"battery","battery":{"percent":42,"charging":false}},
		{"v":1,"id":"p-old","ts":%q,"type":"position","position":{"lat":53.7,"lon":-1.5,"accuracy_m":20}},
		{"v":1,"id":"sos-1","ts":%q,"type":"button","button":{"kind":"sos"},"position":{"lat":53.8,"lon":-1.55,"accuracy_m":8}}]}`,
		ts, time.Now().UTC().Add(-3*time.Hour).Format(time.RFC3339), ts)
	req, _ := http.NewRequest("POST", "https://"+a.Addr("https")+"/api/v1/devices/"+c.DeviceID+"/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.Secret)
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: vigiltest.ClientTLS(t, a)}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST events: %d %s", resp.StatusCode, b)
	}
	eventually(t, "the batch in the store", func() bool {
		ok, err := a.Store().HasEvent(ctx, c.DeviceID, "p-old")
		return err == nil && ok
	})
	eventually(t, "three distinct events, the redelivered SOS once", func() bool {
		n, err := a.Store().CountEvents(ctx, c.DeviceID)
		return err == nil && n == 3
	})
	d, err := a.Store().GetDevice(ctx, c.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if d.State.Battery == nil || *d.State.Battery != 42 {
		t.Errorf("battery state %v, want 42", d.State.Battery)
	}
	// The late (3 h old) position must not replace the newer SOS position.
	if d.State.LastPosition == nil || d.State.LastPosition.Lat != 53.8 {
		t.Errorf("last position %+v, want the SOS's 53.8", d.State.LastPosition)
	}
	evs, err := a.Store().ListEvents(ctx, storeFilter(c.DeviceID))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := a.Store().Positions(ctx, c.DeviceID, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	late := 0
	for _, e := range evs {
		if e.Late {
			t.Errorf("%s flagged late", e.MsgID)
		}
	}
	for _, p := range ps {
		if p.Late {
			late++
			if p.MsgID != "p-old" {
				t.Errorf("position %s flagged late", p.MsgID)
			}
		}
	}
	if late != 1 {
		t.Errorf("%d late positions, want 1 (p-old)", late)
	}
}

func TestPipelineSQLite(t *testing.T) { runPipeline(t, vigiltest.Config(t)) }

func TestPipelinePostgres(t *testing.T) {
	cfg := vigiltest.Config(t)
	cfg.Store = config.Secret(vigiltest.PostgresURL(t))
	runPipeline(t, cfg)
}

func TestAdminListener(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: vigiltest.ClientTLS(t, a)}}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "vigil_projector_events_total"} {
		resp, err := hc.Get("https://" + a.Addr("admin") + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
}

// Security row 17: the unauthenticated surface reveals nothing.
func TestPublicSurface(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: vigiltest.ClientTLS(t, a)},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/", 200}, // the console's sign-in page
		{"GET", "/nope", 404},
		{"GET", "/console/acme", 303},
		{"GET", "/api/v1/alerts", 401},
		{"POST", "/api/v1/enrol", 415}, // public: device enrolment; a body that is not JSON is refused
		{"GET", "/api/v1/devices/dx/events", 404},
		{"POST", "/api/v1/devices/dx/events", 401},
		{"GET", "/metrics", 404},
		{"GET", "/healthz", 404},
		{"GET", "/debug/pprof/", 404},
		{"GET", "/api/server", 404},
		{"GET", "/ack/forged", 404},
		{"POST", "/ack/forged", 404},
		{"POST", "/v1/sms/inbound", 404}, // SMS is not configured
	} {
		req, _ := http.NewRequest(tc.method, "https://"+a.Addr("https")+tc.path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
		var hdr bytes.Buffer
		_ = resp.Header.Write(&hdr)
		all := hdr.String() + string(b)
		for _, leak := range []string{runtime.Version(), "go1.", "Server:", "vigil/", "goroutine"} {
			if strings.Contains(all, leak) {
				t.Errorf("%s %s reveals %q", tc.method, tc.path, leak)
			}
		}
		if resp.Header.Get("Strict-Transport-Security") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: security headers missing", tc.method, tc.path)
		}
	}
}

// Security row 8: every listener refuses TLS 1.1 and CBC-only TLS 1.2.
func TestListenersTLSPolicy(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	base := vigiltest.ClientTLS(t, a)
	for _, name := range []string{"mqtt", "https", "admin"} {
		for _, tc := range []struct {
			name string
			cfg  func(*tls.Config)
			ok   bool
		}{
			{"TLS 1.1", func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }, false},
			{"TLS 1.2 CBC only", func(c *tls.Config) {
				c.MaxVersion = tls.VersionTLS12
				c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
					tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA}
			}, false},
			{"TLS 1.2 RSA key exchange", func(c *tls.Config) {
				c.MaxVersion = tls.VersionTLS12
				c.CipherSuites = []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}
			}, false},
			{"TLS 1.3", func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 }, true},
		} {
			cfg := base.Clone()
			tc.cfg(cfg)
			conn, err := tls.Dial("tcp", a.Addr(name), cfg)
			if err == nil {
				conn.Close()
			}
			if (err == nil) != tc.ok {
				t.Errorf("%s with %s: handshake err %v, want ok=%v", name, tc.name, err, tc.ok)
			}
		}
	}
}

func TestBootstrapTokenShownOnce(t *testing.T) {
	cfg := vigiltest.Config(t)
	var out bytes.Buffer
	a, err := app.New(context.Background(), cfg, app.Deps{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "vgb_") {
		t.Fatalf("first start printed no bootstrap token: %q", out.String())
	}
	tok := strings.TrimSpace(out.String()[strings.Index(out.String(), "vgb_"):])
	out.Reset()
	a, err = app.New(context.Background(), cfg, app.Deps{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	if out.Len() != 0 {
		t.Fatalf("second start printed %q", out.String())
	}
	v, err := a.Store().GetMeta(context.Background(), "bootstrap_token_sha256")
	if err != nil || v == "" || strings.Contains(v, tok) {
		t.Fatalf("bootstrap token not stored as a hash: %q %v", v, err)
	}
	// Keys are private to the owner.
	for _, f := range []string{"tls/ca.key", "tls/server.key", "vigil.db"} {
		fi, err := os.Stat(filepath.Join(cfg.DataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s mode %v, want no group/other access", f, fi.Mode().Perm())
		}
	}
}

// Security rows 40, 25 and 27: no permissive shortcut in the production
// wiring, no CSRF bypass, no string marked safe HTML.
func TestNoPermissiveWiring(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	for _, id := range a.MQTTHookIDs() {
		if id == "allow-all-auth" {
			t.Fatal("mochi allow-all-auth hook registered")
		}
	}
	root := filepath.Join("..", "..")
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("InsecureSkipVerify: true")) {
			t.Errorf("%s sets InsecureSkipVerify", p)
		}
		// Security row 25: no bypass of the cross-origin (CSRF) check.
		if bytes.Contains(b, []byte("AddInsecureBypassPattern")) {
			t.Errorf("%s bypasses CrossOriginProtection", p)
		}
		// Security row 27: strings from users and devices go through
		// html/template's escaping; nothing is marked safe HTML.
		if bytes.Contains(b, []byte("template.HTML(")) {
			t.Errorf("%s converts a string to template.HTML", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func storeFilter(deviceID string) store.EventFilter {
	return store.EventFilter{DeviceID: deviceID, Limit: 100}
}

// TestExternalNATS runs the pipeline against a separate NATS server (as
// `--nats-url` does) instead of the embedded one.
func TestExternalNATS(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("external nats not ready")
	}
	cfg := vigiltest.Config(t)
	cfg.NATS.URL = config.Secret(ns.ClientURL())
	runPipeline(t, cfg)
	// The stream lives on the external server.
	if info, err := ns.Jsz(nil); err != nil || info.Streams != 1 || info.Messages == 0 {
		t.Fatalf("EVENTS stream not on the external server: %+v %v", info, err)
	}
}
