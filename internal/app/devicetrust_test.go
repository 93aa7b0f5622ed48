package app_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"vigil/internal/app"
	"vigil/internal/device"
	"vigil/internal/enrol"
	"vigil/internal/event"
	"vigil/internal/sim"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
)

// connectWatched connects a device over MQTT/TLS (with cert when not nil,
// else with its secret) and returns a channel closed when the server ends
// the connection.
func connectWatched(t *testing.T, a *app.App, c device.Credentials, cert *tls.Certificate) (*paho.Client, <-chan struct{}, error) {
	t.Helper()
	return connectFrom(t, a, c, cert, "")
}

// connectFrom is connectWatched from a source address (e.g. 127.0.0.2;
// "" for the default).
func connectFrom(t *testing.T, a *app.App, c device.Credentials, cert *tls.Certificate, src string) (*paho.Client, <-chan struct{}, error) {
	t.Helper()
	cfg := vigiltest.ClientTLS(t, a)
	if cert != nil {
		cfg = cfg.Clone()
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	conn, err := tls.DialWithDialer(d, "tcp", a.Addr("mqtt"), cfg)
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { conn.Close() })
	gone := make(chan struct{})
	var once sync.Once
	closed := func() { once.Do(func() { close(gone) }) }
	cl := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn),
		OnServerDisconnect: func(*paho.Disconnect) { closed() },
		OnClientError:      func(error) { closed() },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: c.DeviceID, KeepAlive: 30, CleanStart: true}
	if cert == nil {
		cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = c.DeviceID, true, []byte(c.Secret), true
	}
	ca, err := cl.Connect(ctx, cp)
	if ca != nil && ca.ReasonCode != 0 {
		return nil, nil, &connackError{code: ca.ReasonCode}
	}
	if err != nil {
		return nil, nil, err
	}
	return cl, gone, nil
}

// connackError is a CONNACK that refused the connection.
type connackError struct{ code byte }

func (e *connackError) Error() string { return fmt.Sprintf("CONNACK 0x%02x", e.code) }

// TestRevokeDeviceCutsItOff (security requirement 7): a device connected
// with its certificate (mutual TLS required) is revoked through the API;
// its live connection closes at once and its certificate is refused in
// the next handshake; the revocation is audited with the reason.
func TestRevokeDeviceCutsItOff(t *testing.T) {
	cfg := vigiltest.Config(t)
	cfg.MQTT.ClientCerts = "required"
	a := vigiltest.StartApp(t, cfg)
	ctx := context.Background()
	c := register(t, a)
	other := register(t, a)
	tok, err := enrol.NewToken(ctx, a.Store(), time.Now(), c.DeviceID, 0)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := sim.Enrol(ctx, a.Addr("https"), vigiltest.ClientTLS(t, a), c.DeviceID, tok.Value)
	if err != nil {
		t.Fatal(err)
	}
	_, gone, err := connectWatched(t, a, c, cert)
	if err != nil {
		t.Fatalf("connect with the certificate: %v", err)
	}

	api := newAPIClient(t, a)
	if code := api.do("POST", "/api/v1/devices/"+c.DeviceID+"/revoke", `{"reason":""}`, nil); code != 400 {
		t.Errorf("revoke without a reason: %d, want 400", code)
	}
	if code := api.do("POST", "/api/v1/devices/nope/revoke", `{"reason":"lost"}`, nil); code != 404 {
		t.Errorf("revoke an unknown device: %d, want 404", code)
	}
	start := time.Now()
	var res struct {
		DeviceID string    `json:"device_id"`
		At       time.Time `json:"revoked_at"`
		Closed   bool      `json:"connection_closed"`
	}
	if code := api.do("POST", "/api/v1/devices/"+c.DeviceID+"/revoke", `{"reason":"pendant lost on a visit"}`, &res); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if !res.Closed || res.DeviceID != c.DeviceID || res.At.IsZero() {
		t.Errorf("revoke answered %+v", res)
	}
	select {
	case <-gone:
		t.Logf("the live connection closed %v after the revocation request was sent", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked device's connection stayed open")
	}
	// The certificate is refused in the handshake now.
	if _, _, err := connectWatched(t, a, c, cert); err == nil {
		t.Error("the revoked certificate connected again")
	}
	// Revoking again keeps the first time.
	var again struct {
		At time.Time `json:"revoked_at"`
	}
	if code := api.do("POST", "/api/v1/devices/"+c.DeviceID+"/revoke", `{"reason":"again"}`, &again); code != 200 || !again.At.Equal(res.At) {
		t.Errorf("revoke again: %d at %v, want 200 at %v", code, again.At, res.At)
	}
	// Another device is untouched: its certificate still works.
	tok2, err := enrol.NewToken(ctx, a.Store(), time.Now(), other.DeviceID, 0)
	if err != nil {
		t.Fatal(err)
	}
	cert2, err := sim.Enrol(ctx, a.Addr("https"), vigiltest.ClientTLS(t, a), other.DeviceID, tok2.Value)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := connectWatched(t, a, other, cert2); err != nil {
		t.Errorf("another device's certificate: %v", err)
	}
	recs, err := a.Store().ListAudit(ctx, store.AuditFilter{OrgID: "acme", Action: "device.revoke"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Severity != "high" || !strings.Contains(recs[0].Details, "pendant lost on a visit") || recs[0].ObjectID != c.DeviceID {
		t.Errorf("audit: %+v", recs)
	}
}

// TestRevocationMadeElsewhereReachesTheGateway: a device disabled outside
// this instance's API (the CLI, another instance: straight in the store)
// loses its live connection through the revocation poll, and its secret
// no longer connects (CONNACK 0x86).
func TestRevocationMadeElsewhereReachesTheGateway(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	c := register(t, a)
	_, gone, err := connectWatched(t, a, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := a.Store().DisableDevice(context.Background(), c.DeviceID, time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gone:
		t.Logf("closed %v after the store changed (poll every second)", time.Since(start).Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatal("the device disabled in the store stayed connected")
	}
	_, _, err = connectWatched(t, a, c, nil)
	var ce *connackError
	if !errors.As(err, &ce) || ce.code != 0x86 {
		t.Errorf("reconnect with the secret: %v, want CONNACK 0x86", err)
	}
}

// enrolled registers a device and enrols a client certificate for it.
func enrolled(t *testing.T, a *app.App) (device.Credentials, *tls.Certificate) {
	t.Helper()
	ctx := context.Background()
	c := register(t, a)
	tok, err := enrol.NewToken(ctx, a.Store(), time.Now(), c.DeviceID, 0)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := sim.Enrol(ctx, a.Addr("https"), vigiltest.ClientTLS(t, a), c.DeviceID, tok.Value)
	if err != nil {
		t.Fatal(err)
	}
	return c, cert
}

// TestSharedIdentityRaisesOneEvent (security requirement 6): two clients
// with one certificate connect alternately from 127.0.0.2 and 127.0.0.3,
// ten times; exactly one "device identity shared" security event is
// recorded, naming both sources, and the takeover policy applies (each
// new connection replaces the live one). A single network change is not
// flagged.
func TestSharedIdentityRaisesOneEvent(t *testing.T) {
	cfg := vigiltest.Config(t)
	cfg.MQTT.ClientCerts = "required"
	a := vigiltest.StartApp(t, cfg)
	ctx := context.Background()

	// A phone that changes network once: not shared.
	roamer, roamCert := enrolled(t, a)
	if _, _, err := connectFrom(t, a, roamer, roamCert, "127.0.0.2"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := connectFrom(t, a, roamer, roamCert, "127.0.0.3"); err != nil {
		t.Fatal(err)
	}

	c, cert := enrolled(t, a)
	var prev <-chan struct{}
	for i := range 10 {
		src := []string{"127.0.0.2", "127.0.0.3"}[i%2]
		_, gone, err := connectFrom(t, a, c, cert, src)
		if err != nil {
			t.Fatalf("connection %d from %s: %v (takeover must admit it)", i, src, err)
		}
		if prev != nil {
			select {
			case <-prev:
			case <-time.After(30 * time.Second): // a loaded -race run once took over 10 s
				t.Fatalf("connection %d did not replace the one before", i)
			}
		}
		prev = gone
	}
	var recs []store.AuditRecord
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		var err error
		recs, err = a.Store().ListAudit(ctx, store.AuditFilter{OrgID: "acme", Action: "device.identity_shared"})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(recs) != 1 {
		t.Fatalf("%d identity-shared events, want exactly 1: %+v", len(recs), recs)
	}
	r := recs[0]
	if r.ObjectID != c.DeviceID || r.Severity != "high" || !strings.Contains(r.Details, "127.0.0.2 127.0.0.3") || !strings.Contains(r.Details, "takeover") {
		t.Errorf("event: %+v", r)
	}
}

// TestSharedIdentityRefusePolicy: under mqtt.shared_identity=refuse, once
// an identity is flagged a connection from another source is refused
// (CONNACK 0x87) while the live one stays up.
func TestSharedIdentityRefusePolicy(t *testing.T) {
	cfg := vigiltest.Config(t)
	cfg.MQTT.ClientCerts = "required"
	cfg.MQTT.SharedIdentity = "refuse"
	a := vigiltest.StartApp(t, cfg)
	c, cert := enrolled(t, a)
	if _, _, err := connectFrom(t, a, c, cert, "127.0.0.2"); err != nil {
		t.Fatal(err)
	}
	// A network change is let in (and takes the session over).
	live, gone, err := connectFrom(t, a, c, cert, "127.0.0.3")
	if err != nil {
		t.Fatalf("one network change: %v", err)
	}
	// Back from .2 while .3 is live: flagged, and refused.
	_, _, err = connectFrom(t, a, c, cert, "127.0.0.2")
	var ce *connackError
	if !errors.As(err, &ce) || ce.code != 0x87 {
		t.Fatalf("a third connection from the first source: %v, want CONNACK 0x87", err)
	}
	select {
	case <-gone:
		t.Fatal("the live connection was dropped")
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := live.Publish(ctx, &paho.Publish{Topic: "v1/devices/" + c.DeviceID + "/events", QoS: 1,
		Payload: fmt.Appendf(nil, `{"v":1,"id":"hb-1","ts":%q,"type":"heartbeat"}`, time.Now().UTC().Format(time.RFC3339Nano))}); err != nil {
		t.Errorf("the live connection after the refusal: %v", err)
	}
}

// quarantineOf reads a device's quarantine reason through the API's
// device list ("" when none), waiting a little for want: the flag is
// stored off the message path.
func quarantineOf(t *testing.T, api *apiClient, deviceID, want string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var list struct {
			Devices []struct {
				ID         string `json:"id"`
				Quarantine *struct {
					Reason string    `json:"reason"`
					Since  time.Time `json:"since"`
				} `json:"quarantine"`
			} `json:"devices"`
		}
		if code := api.do("GET", "/api/v1/orgs/acme/devices", "", &list); code != 200 {
			t.Fatalf("list devices: %d", code)
		}
		got := ""
		for _, d := range list.Devices {
			if d.ID == deviceID && d.Quarantine != nil {
				got = d.Quarantine.Reason
			}
		}
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestQuarantineMisbehavingDevices: a device that keeps publishing to
// another device's topics, and one whose fixes jump further than anything
// travels, are quarantined with the reason (device list, audit log); the
// first one's SOS still raises an alert; an admin releases it.
func TestQuarantineMisbehavingDevices(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	api := newAPIClient(t, a)
	ctx := context.Background()
	bad := registerWorker(t, a, "p-bad")
	victim := register(t, a)
	cl := mqttConnect(t, a, bad)
	for i := range 20 {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		pr, err := cl.Publish(pctx, &paho.Publish{Topic: "v1/devices/" + victim.DeviceID + "/events", QoS: 1,
			Payload: fmt.Appendf(nil, `{"v":1,"id":"x-%d","ts":%q,"type":"heartbeat"}`, i, time.Now().UTC().Format(time.RFC3339Nano))})
		cancel()
		if err == nil && pr.ReasonCode < 0x80 {
			t.Fatalf("publish %d to another device's topic accepted", i)
		}
	}
	if got := quarantineOf(t, api, bad.DeviceID, "acl_denials"); got != "acl_denials" {
		t.Fatalf("quarantine after 20 ACL denials: %q, want acl_denials", got)
	}
	if got := quarantineOf(t, api, victim.DeviceID, ""); got != "" {
		t.Errorf("the victim is quarantined: %q", got)
	}
	// Safety first: its SOS still raises an alert.
	publishEvent(t, cl, bad.DeviceID, event.Message{V: 1, ID: "sos-q", TS: time.Now(), Type: event.TypeButton,
		Button: &event.Button{Kind: event.ButtonSOS}})
	var alerts struct {
		Alerts []struct {
			Kind     string `json:"kind"`
			DeviceID string `json:"device_id"`
		} `json:"alerts"`
	}
	for deadline := time.Now().Add(10 * time.Second); len(alerts.Alerts) == 0 && time.Now().Before(deadline); {
		api.do("GET", "/api/v1/alerts?org=acme", "", &alerts)
		if len(alerts.Alerts) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if len(alerts.Alerts) != 1 || alerts.Alerts[0].Kind != "sos" || alerts.Alerts[0].DeviceID != bad.DeviceID {
		t.Errorf("alerts after the quarantined device's SOS: %+v", alerts.Alerts)
	}

	// Impossible travel: London, then Sydney a minute later.
	jumper := register(t, a)
	jc := mqttConnect(t, a, jumper)
	t0 := time.Now().Add(-2 * time.Minute)
	publishEvent(t, jc, jumper.DeviceID, event.Message{V: 1, ID: "p1", TS: t0, Type: event.TypePosition,
		Position: &event.Position{Lat: 51.5, Lon: -0.12, AccuracyM: 10}})
	publishEvent(t, jc, jumper.DeviceID, event.Message{V: 1, ID: "p2", TS: t0.Add(time.Minute), Type: event.TypePosition,
		Position: &event.Position{Lat: -33.87, Lon: 151.21, AccuracyM: 10}})
	if got := quarantineOf(t, api, jumper.DeviceID, "impossible_travel"); got != "impossible_travel" {
		t.Errorf("quarantine after a jump to Sydney: %q, want impossible_travel", got)
	}

	recs, err := a.Store().ListAudit(ctx, store.AuditFilter{OrgID: "acme", Action: "device.quarantine"})
	if err != nil || len(recs) != 2 || recs[0].Severity != "high" {
		t.Errorf("audit: %v %+v", err, recs)
	}
	// An admin releases it, with a note; releasing twice is a conflict.
	if code := api.do("POST", "/api/v1/devices/"+bad.DeviceID+"/release", `{"reason":""}`, nil); code != 400 {
		t.Errorf("release without a reason: %d, want 400", code)
	}
	if code := api.do("POST", "/api/v1/devices/"+bad.DeviceID+"/release", `{"reason":"firmware bug, updated"}`, nil); code != 200 {
		t.Errorf("release: %d", code)
	}
	if got := quarantineOf(t, api, bad.DeviceID, ""); got != "" {
		t.Errorf("after release: %q", got)
	}
	if code := api.do("POST", "/api/v1/devices/"+bad.DeviceID+"/release", `{"reason":"again"}`, nil); code != 409 {
		t.Errorf("release again: %d, want 409", code)
	}
}

// TestDeviceTrustInTheConsole: the devices page shows a quarantined
// device with the reason in words, releases it and revokes a device for
// good, each with the admin's reason; a missing reason is refused.
func TestDeviceTrustInTheConsole(t *testing.T) {
	w, admin, _ := admWorld(t)
	ctx := context.Background()
	st := w.a.Store()
	if err := st.CreateDevice(ctx, store.Device{ID: "dq", OrgID: "acme", Name: "pendant q", SecretHash: make([]byte, 32), CreatedAt: w.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.QuarantineDevice(ctx, "dq", "impossible_travel", w.clk.Now()); err != nil {
		t.Fatal(err)
	}
	page := admPage(t, admin, "/console/acme/devices", 200)
	admHas(t, page, "reported positions further apart than anything travels", true)
	admHas(t, page, `action="/console/acme/devices/dq/release"`, true)

	if r := admPost(t, admin, "/console/acme/devices/dq/release", url.Values{"reason": {""}}); r.status != 400 || !strings.Contains(string(r.body), "Give a reason") {
		t.Errorf("release without a reason: %d", r.status)
	}
	if r := admPost(t, admin, "/console/acme/devices/dq/release", url.Values{"reason": {"firmware fixed"}}); r.status != 303 {
		t.Errorf("release: %d %s", r.status, r.body)
	}
	if d, _ := st.GetDevice(ctx, "dq"); !d.Quarantine.At.IsZero() {
		t.Errorf("still quarantined after release: %+v", d.Quarantine)
	}
	if r := admPost(t, admin, "/console/acme/devices/dq/revoke", url.Values{"reason": {"lost on a visit"}}); r.status != 303 {
		t.Errorf("revoke: %d %s", r.status, r.body)
	}
	if d, _ := st.GetDevice(ctx, "dq"); d.DisabledAt.IsZero() {
		t.Error("not revoked")
	}
	page = admPage(t, admin, "/console/acme/devices", 200)
	admHas(t, page, "revoked", true)
	if r := admPost(t, admin, "/console/acme/devices/nope/revoke", url.Values{"reason": {"x"}}); r.status != 404 {
		t.Errorf("revoke an unknown device: %d", r.status)
	}
}
