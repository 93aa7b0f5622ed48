package enrol_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	dto "github.com/prometheus/client_model/go"

	"vigil/internal/app"
	"vigil/internal/clock"
	"vigil/internal/enrol"
	"vigil/internal/pki"
	"vigil/internal/vigiltest"
)

// server is a whole Vigil on loopback with mutual TLS required on MQTT
// and a manual clock.
type server struct {
	log     *logBuf
	a       *app.App
	clk     *clock.Manual
	dataDir string
	http    *http.Client
}

func startServer(t *testing.T) *server {
	t.Helper()
	cfg := vigiltest.Config(t)
	cfg.MQTT.ClientCerts = "required"
	clk := clock.NewManual(time.Now().UTC().Truncate(time.Second))
	lb := &logBuf{}
	a, _ := vigiltest.StartAppWith(t, cfg, app.Deps{Clock: clk, Logger: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	return &server{log: lb, a: a, clk: clk, dataDir: cfg.DataDir,
		http: &http.Client{Transport: &http.Transport{TLSClientConfig: vigiltest.ClientTLS(t, a)}, Timeout: 10 * time.Second}}
}

// logBuf keeps the server's log for assertions.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (s *server) device(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	if err := s.a.Devices().EnsureOrg(ctx, "acme", "Acme Care"); err != nil {
		t.Fatal(err)
	}
	c, err := s.a.Devices().Register(ctx, "acme", name)
	if err != nil {
		t.Fatal(err)
	}
	return c.DeviceID
}

func (s *server) token(t *testing.T, deviceID string) string {
	t.Helper()
	tok, err := enrol.NewToken(context.Background(), s.a.Store(), s.clk.Now(), deviceID, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Value
}

func csrPEM(t *testing.T, key crypto.Signer) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "anything"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func p256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// enrolReq posts an enrolment; it returns the status, the error code (if
// any) and the certificate (on 200).
func (s *server) enrolReq(t *testing.T, deviceID, token, csr string) (int, string, *x509.Certificate) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"device_id": deviceID, "token": token, "csr": csr})
	resp, err := s.http.Post("https://"+s.a.Addr("https")+"/api/v1/enrol", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(b), token) {
		t.Errorf("response repeats the token: %s", b)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error struct{ Code string } }
		_ = json.Unmarshal(b, &e)
		return resp.StatusCode, e.Error.Code, nil
	}
	var out struct{ DeviceID, Certificate, CA string }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("enrol response %s: %v", b, err)
	}
	blk, _ := pem.Decode([]byte(out.Certificate))
	if blk == nil {
		t.Fatalf("no certificate PEM in %s", b)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if out.CA != string(s.a.CACertPEM()) {
		t.Errorf("CA in the response is not the server's")
	}
	return resp.StatusCode, "", cert
}

func (s *server) enrolled(t *testing.T, deviceID string, key crypto.Signer) tls.Certificate {
	t.Helper()
	code, reason, cert := s.enrolReq(t, deviceID, s.token(t, deviceID), csrPEM(t, key))
	if code != http.StatusOK {
		t.Fatalf("enrol %s: %d %s", deviceID, code, reason)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// TestEnrolment is security requirement 3: a single-use, short-lived token
// bound to one device id yields a certificate for the device's own key.
func TestEnrolment(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	a, b := s.device(t, "pendant a"), s.device(t, "pendant b")

	tokT := s.token(t, a)
	key := p256(t)
	code, reason, cert := s.enrolReq(t, a, tokT, csrPEM(t, key))
	if code != http.StatusOK {
		t.Fatalf("enrol with T: %d %s", code, reason)
	}
	if cert.Subject.CommonName != a || len(cert.URIs) != 1 || cert.URIs[0].String() != "urn:vigil:device:"+a {
		t.Errorf("certificate names %q %v, want %s", cert.Subject.CommonName, cert.URIs, a)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || cert.IsCA {
		t.Errorf("certificate usages %v (CA %v), want clientAuth only", cert.ExtKeyUsage, cert.IsCA)
	}
	if !key.Public().(*ecdsa.PublicKey).Equal(cert.PublicKey) {
		t.Error("certificate is not for the device's key")
	}
	if d := cert.NotAfter.Sub(s.clk.Now()); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("certificate lifetime %v, want a year", d)
	}
	d, err := s.a.Store().GetDevice(ctx, a)
	if err != nil || d.CertFingerprint != pki.Fingerprint(cert.Raw) {
		t.Errorf("stored fingerprint %q (%v), want the certificate's", d.CertFingerprint, err)
	}

	for _, tc := range []struct {
		name          string
		device, token string
		csr           string
		wantCode      int
		wantReason    string
	}{
		{"T again", a, tokT, csrPEM(t, p256(t)), http.StatusGone, "token_used"},
		{"T again for another device", b, tokT, csrPEM(t, p256(t)), http.StatusGone, "token_used"},
		{"unknown token", b, "notatoken", csrPEM(t, p256(t)), http.StatusUnauthorized, "token_invalid"},
		{"B's token for A", a, s.token(t, b), csrPEM(t, p256(t)), http.StatusUnauthorized, "token_invalid"},
		{"not a CSR", b, s.token(t, b), "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", http.StatusBadRequest, "bad_csr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, reason, _ := s.enrolReq(t, tc.device, tc.token, tc.csr)
			if code != tc.wantCode || reason != tc.wantReason {
				t.Errorf("got %d %s, want %d %s", code, reason, tc.wantCode, tc.wantReason)
			}
		})
	}

	t.Run("RSA key refused, token kept", func(t *testing.T) {
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		tok := s.token(t, b)
		if code, reason, _ := s.enrolReq(t, b, tok, csrPEM(t, rk)); code != http.StatusBadRequest || reason != "key_not_allowed" {
			t.Errorf("RSA CSR: %d %s, want 400 key_not_allowed", code, reason)
		}
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if code, reason, _ := s.enrolReq(t, b, tok, csrPEM(t, p384)); code != http.StatusBadRequest || reason != "key_not_allowed" {
			t.Errorf("P-384 CSR: %d %s, want 400 key_not_allowed", code, reason)
		}
		_, ek, _ := ed25519.GenerateKey(rand.Reader)
		if code, reason, _ := s.enrolReq(t, b, tok, csrPEM(t, ek)); code != http.StatusOK {
			t.Errorf("Ed25519 CSR with the same token: %d %s, want 200", code, reason)
		}
	})

	t.Run("expired token", func(t *testing.T) {
		tok := s.token(t, b)
		s.clk.Advance(15*time.Minute + time.Second)
		if code, reason, _ := s.enrolReq(t, b, tok, csrPEM(t, p256(t))); code != http.StatusGone || reason != "token_expired" {
			t.Errorf("expired token: %d %s, want 410 token_expired", code, reason)
		}
	})

	// Refusals are logged, tokens never (security requirement 39).
	logged := s.log.String()
	for _, reason := range []string{"token_used", "token_expired", "token_invalid", "key_not_allowed"} {
		if !strings.Contains(logged, "device enrolment refused") || !strings.Contains(logged, "reason="+reason) {
			t.Errorf("refusal %s not logged", reason)
		}
	}
	if strings.Contains(logged, tokT) {
		t.Error("the log contains an enrolment token")
	}
}

// caSigner loads the server's CA key from its data directory, to forge
// hostile certificates the enrolment path would never issue.
func (s *server) caSigner(t *testing.T) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(s.dataDir, "tls", name))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		return blk.Bytes
	}
	cert, err := x509.ParseCertificate(read("ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(read("ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	return cert, k.(crypto.Signer)
}

func issue(t *testing.T, parent *x509.Certificate, parentKey crypto.Signer, deviceID string, from, to time.Time, eku []x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key := p256(t)
	u, _ := url(deviceID)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: deviceID},
		NotBefore: from, NotAfter: to, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: eku, URIs: u}
	if parent == nil { // self-signed: "another CA"
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsConfig presents certs whatever CAs the server asks for, as a hostile
// client would (crypto/tls would otherwise hold back a certificate of
// another CA).
func (s *server) tlsConfig(t *testing.T, certs ...tls.Certificate) *tls.Config {
	cfg := vigiltest.ClientTLS(t, s.a)
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if len(certs) == 0 {
			return &tls.Certificate{}, nil
		}
		return &certs[0], nil
	}
	return cfg
}

// handshake dials the MQTT listener with cfg and reads: the error is the
// TLS failure (with TLS 1.3 the client learns of it on its first read).
func (s *server) handshake(t *testing.T, cfg *tls.Config) error {
	t.Helper()
	conn, err := tls.Dial("tcp", s.a.Addr("mqtt"), cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	return err
}

func counter(t *testing.T, a *app.App, name, label string) float64 {
	t.Helper()
	mfs, err := a.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || hasLabel(m, label) {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func hasLabel(m *dto.Metric, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == v {
			return true
		}
	}
	return false
}

// connectMQTT connects over TLS with cfg and sends CONNECT with clientID;
// it returns the CONNACK reason code, or the error that stopped it.
func (s *server) connectMQTT(t *testing.T, cfg *tls.Config, clientID string) (*paho.Client, byte, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", s.a.Addr("mqtt"), cfg)
	if err != nil {
		return nil, 0, err
	}
	t.Cleanup(func() { conn.Close() })
	cl := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := cl.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true})
	if ca != nil {
		return cl, ca.ReasonCode, nil
	}
	return nil, 0, err
}

// TestMutualTLS is security requirements 5 and 9: with client
// certificates required, four hostile handshakes fail in TLS before the
// broker sees a byte; a certificate's device is the only identity.
func TestMutualTLS(t *testing.T) {
	s := startServer(t)
	a, b := s.device(t, "pendant a"), s.device(t, "pendant b")
	certA := s.enrolled(t, a, p256(t))
	caCert, caKey := s.caSigner(t)
	now := s.clk.Now()

	connects := func() float64 { return counter(t, s.a, "vigil_mqtt_connects_total", "") }
	for _, tc := range []struct {
		name   string
		certs  []tls.Certificate
		reason string
	}{
		{"no certificate", nil, "no_certificate"},
		{"another CA", []tls.Certificate{issue(t, nil, nil, a, now.Add(-time.Hour), now.Add(time.Hour), []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})}, "unknown_ca"},
		{"expired", []tls.Certificate{issue(t, caCert, caKey, a, now.Add(-48*time.Hour), now.Add(-time.Hour), []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})}, "expired"},
		{"no clientAuth EKU", []tls.Certificate{issue(t, caCert, caKey, a, now.Add(-time.Hour), now.Add(time.Hour), []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})}, "no_client_auth"},
		{"no EKU at all", []tls.Certificate{issue(t, caCert, caKey, a, now.Add(-time.Hour), now.Add(time.Hour), nil)}, "no_client_auth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, hookBefore := counter(t, s.a, "vigil_mqtt_tls_client_refused_total", tc.reason), connects()
			err := s.handshake(t, s.tlsConfig(t, tc.certs...))
			if err == nil || !strings.Contains(err.Error(), "tls: ") {
				t.Errorf("error %v, want a TLS alert", err)
			}
			if got := counter(t, s.a, "vigil_mqtt_tls_client_refused_total", tc.reason); got != before+1 {
				t.Errorf("refusals with reason %s: %v, want %v", tc.reason, got, before+1)
			}
			if got := connects(); got != hookBefore {
				t.Errorf("the broker's connect hook ran (%v connects, want %v)", got, hookBefore)
			}
		})
	}

	for _, id := range []string{b, "#", "+", "a/b", a + "\x00", "d\xff"} {
		t.Run(fmt.Sprintf("A's certificate, client id %q", id), func(t *testing.T) {
			_, code, err := s.connectMQTT(t, s.tlsConfig(t, certA), id)
			// NUL and invalid UTF-8 are malformed packets: the broker
			// may close the connection instead of answering.
			if (err == nil && code != 0x85) || (err != nil && !strings.ContainsAny(id, "\x00\xff")) {
				t.Errorf("CONNACK %#x (%v), want 0x85", code, err)
			}
		})
	}

	t.Run("A's certificate, client id A", func(t *testing.T) {
		cl, code, err := s.connectMQTT(t, s.tlsConfig(t, certA), a)
		if err != nil || code != 0 {
			t.Fatalf("CONNACK %#x (%v), want 0", code, err)
		}
		ctx := context.Background()
		ts := s.clk.Now().Add(-time.Second).Format(time.RFC3339Nano)
		pr, err := cl.Publish(ctx, &paho.Publish{Topic: "v1/devices/" + a + "/events", QoS: 1,
			Payload: fmt.Appendf(nil, `{"v":1,"id":"sos-1","ts":%q,"type":"button","button":{"kind":"sos"}}`, ts)})
		if err != nil || pr.ReasonCode >= 0x80 {
			t.Fatalf("publish: %v %+v", err, pr)
		}
		if ok, err := s.a.Store().HasEvent(ctx, a, "sos-1"); err != nil || !ok {
			t.Errorf("A's SOS acknowledged but not stored (%v)", err)
		}
		// A's certificate cannot publish as B either.
		pr, err = cl.Publish(ctx, &paho.Publish{Topic: "v1/devices/" + b + "/events", QoS: 1,
			Payload: fmt.Appendf(nil, `{"v":1,"id":"sos-2","ts":%q,"type":"button","button":{"kind":"sos"}}`, ts)})
		if err == nil && pr.ReasonCode != 0x87 {
			t.Errorf("publish to B's topic: %+v, want 0x87", pr)
		}
		_ = cl.Disconnect(&paho.Disconnect{})
	})

	t.Run("a replaced certificate is refused", func(t *testing.T) {
		old := certA
		_ = s.enrolled(t, a, p256(t)) // re-enrolment stores the new fingerprint
		_, code, err := s.connectMQTT(t, s.tlsConfig(t, old), a)
		if err != nil || code != 0x86 {
			t.Errorf("old certificate: CONNACK %#x (%v), want 0x86", code, err)
		}
	})

	logged := s.log.String()
	for _, want := range []string{"mqtt tls client certificate refused", "reason=client_id_not_cert", "device_id=" + a} {
		if !strings.Contains(logged, want) {
			t.Errorf("log lacks %q", want)
		}
	}

	t.Run("a disabled device is refused", func(t *testing.T) {
		cert := s.enrolled(t, b, p256(t))
		if err := s.a.Store().DisableDevice(context.Background(), b, s.clk.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		_, code, err := s.connectMQTT(t, s.tlsConfig(t, cert), b)
		if err != nil || code != 0x86 {
			t.Errorf("disabled device: CONNACK %#x (%v), want 0x86", code, err)
		}
	})
}

func url(deviceID string) ([]*neturl.URL, error) {
	u, err := neturl.Parse("urn:vigil:device:" + deviceID)
	if err != nil {
		return nil, err
	}
	return []*neturl.URL{u}, nil
}
