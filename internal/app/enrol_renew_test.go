package app_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"vigil/internal/app"
	"vigil/internal/clock"
	"vigil/internal/device"
	"vigil/internal/enrol"
	"vigil/internal/pki"
	"vigil/internal/sim"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
)

// renewServer is a Vigil with mutual TLS required on MQTT and a manual
// clock, so that a year-long certificate can near its expiry.
type renewServer struct {
	a       *app.App
	clk     *clock.Manual
	dataDir string
}

func startRenewServer(t *testing.T) *renewServer {
	t.Helper()
	cfg := vigiltest.Config(t)
	cfg.MQTT.ClientCerts = "required"
	clk := clock.NewManual(time.Now().UTC().Truncate(time.Second))
	a, _ := vigiltest.StartAppWith(t, cfg, app.Deps{Clock: clk, Logger: slog.New(slog.DiscardHandler)})
	return &renewServer{a: a, clk: clk, dataDir: cfg.DataDir}
}

// enrol registers a device and enrols it the way a device does.
func (s *renewServer) enrol(t *testing.T) (device.Credentials, *tls.Certificate) {
	t.Helper()
	ctx := context.Background()
	c := register(t, s.a)
	tok, err := enrol.NewToken(ctx, s.a.Store(), s.clk.Now(), c.DeviceID, 0)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := sim.Enrol(ctx, s.a.Addr("https"), vigiltest.ClientTLS(t, s.a), c.DeviceID, tok.Value)
	if err != nil {
		t.Fatal(err)
	}
	return c, cert
}

// renew posts a renewal presenting cert (nil: none) in the handshake; it
// returns the status, the error code and message, and the certificate
// PEM on 200.
func (s *renewServer) renew(t *testing.T, cert *tls.Certificate, csr string) (status int, code, msg string, hdr http.Header) {
	t.Helper()
	cfg := vigiltest.ClientTLS(t, s.a).Clone()
	cfg.ClientSessionCache = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if cert == nil {
			return &tls.Certificate{}, nil
		}
		return cert, nil
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	body, _ := json.Marshal(map[string]string{"csr": csr})
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Post("https://"+s.a.Addr("https")+"/api/v1/enrol/renew", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e.Error.Code, e.Error.Message, resp.Header
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func renewCSR(t *testing.T, key crypto.Signer, cn string, uris ...string) string {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// forge issues a device certificate with the server's CA key (parent nil:
// self-signed, "another CA"), as the enrolment path never would.
func (s *renewServer) forge(t *testing.T, own bool, deviceID string, from, to time.Time) *tls.Certificate {
	t.Helper()
	key := newKey(t)
	u, _ := url.Parse(pki.DeviceURI(deviceID))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: deviceID},
		NotBefore: from, NotAfter: to, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, URIs: []*url.URL{u}}
	var parent *x509.Certificate
	var parentKey crypto.Signer
	if own {
		read := func(name string) []byte {
			b, err := os.ReadFile(filepath.Join(s.dataDir, "tls", name))
			if err != nil {
				t.Fatal(err)
			}
			blk, _ := pem.Decode(b)
			return blk.Bytes
		}
		var err error
		if parent, err = x509.ParseCertificate(read("ca.crt")); err != nil {
			t.Fatal(err)
		}
		k, err := x509.ParsePKCS8PrivateKey(read("ca.key"))
		if err != nil {
			t.Fatal(err)
		}
		parentKey = k.(crypto.Signer)
	} else {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// TestRenewCertificate: a device renews its certificate with the current
// one and a new key; the new certificate connects over MQTT (mutual TLS
// required), a live connection made with the old one is not cut, a new
// one with the old certificate is refused (0x86). If the answer was lost,
// the old certificate renews again within the retry grace, and no longer
// after it. Too early is 409.
func TestRenewCertificate(t *testing.T) {
	s := startRenewServer(t)
	ctx := context.Background()
	c, cert1 := s.enrol(t)
	tlsCfg := vigiltest.ClientTLS(t, s.a)

	_, err := sim.Renew(ctx, s.a.Addr("https"), tlsCfg, cert1)
	var he *sim.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusConflict || he.Code != "too_early" || !strings.Contains(he.Message, "renew from") {
		t.Fatalf("renewal a year before expiry: %v, want 409 too_early", err)
	}

	// 59 days before expiry.
	s.clk.Advance(cert1.Leaf.NotAfter.Add(-59 * 24 * time.Hour).Sub(s.clk.Now()))
	live, _, err := connectWatched(t, s.a, c, cert1)
	if err != nil {
		t.Fatalf("connect with the first certificate: %v", err)
	}

	cert2, err := sim.Renew(ctx, s.a.Addr("https"), tlsCfg, cert1)
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	if id, err := pki.DeviceID(cert2.Leaf); err != nil || id != c.DeviceID {
		t.Errorf("renewed certificate names %q (%v), want %s", id, err, c.DeviceID)
	}
	if cert2.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(cert1.Leaf.PublicKey) {
		t.Error("renewed certificate has the old key")
	}
	if d := cert2.Leaf.NotAfter.Sub(s.clk.Now()); d < 364*24*time.Hour {
		t.Errorf("renewed certificate valid for %v, want a year", d)
	}
	d, err := s.a.Store().GetDevice(ctx, c.DeviceID)
	if err != nil || d.CertFingerprint != pki.Fingerprint(cert2.Certificate[0]) {
		t.Errorf("stored fingerprint %q (%v), want the renewed certificate's", d.CertFingerprint, err)
	}

	// The live connection made with the old certificate still carries an
	// alarm: renewal does not cut it.
	ts := s.clk.Now().Add(-time.Second).Format(time.RFC3339Nano)
	pr, err := live.Publish(ctx, &paho.Publish{Topic: "v1/devices/" + c.DeviceID + "/events", QoS: 1,
		Payload: []byte(`{"v":1,"id":"sos-renew","ts":"` + ts + `","type":"button","button":{"kind":"sos"}}`)})
	if err != nil || pr.ReasonCode >= 0x80 {
		t.Fatalf("SOS on the live connection after renewal: %v %+v", err, pr)
	}
	if ok, err := s.a.Store().HasEvent(ctx, c.DeviceID, "sos-renew"); err != nil || !ok {
		t.Errorf("SOS not stored (%v)", err)
	}

	cl, _, err := connectWatched(t, s.a, c, cert2)
	if err != nil {
		t.Fatalf("connect with the renewed certificate: %v", err)
	}
	_ = cl.Disconnect(&paho.Disconnect{})
	var ce *connackError
	if _, _, err := connectWatched(t, s.a, c, cert1); !errors.As(err, &ce) || ce.code != 0x86 {
		t.Errorf("connect with the replaced certificate: %v, want CONNACK 0x86", err)
	}

	// The answer was lost: the old certificate renews again, once more
	// within the grace; the certificate it replaced is then not current.
	s.clk.Advance(5 * time.Minute)
	cert3, err := sim.Renew(ctx, s.a.Addr("https"), tlsCfg, cert1)
	if err != nil {
		t.Fatalf("retry with the replaced certificate within the grace: %v", err)
	}
	if code, reason, _, _ := s.renew(t, cert2, renewCSR(t, newKey(t), c.DeviceID)); code != http.StatusForbidden || reason != "cert_not_current" {
		t.Errorf("renew with a superseded certificate: %d %s, want 403 cert_not_current", code, reason)
	}
	s.clk.Advance(enrol.DefaultRetryGrace)
	if code, reason, _, _ := s.renew(t, cert1, renewCSR(t, newKey(t), c.DeviceID)); code != http.StatusForbidden || reason != "cert_not_current" {
		t.Errorf("retry after the grace: %d %s, want 403 cert_not_current", code, reason)
	}
	cl, _, err = connectWatched(t, s.a, c, cert3)
	if err != nil {
		t.Fatalf("connect with the retried certificate: %v", err)
	}
	_ = cl.Disconnect(&paho.Disconnect{})

	recs, err := s.a.Store().ListAudit(ctx, store.AuditFilter{OrgID: "acme", Action: "device.renew"})
	if err != nil {
		t.Fatal(err)
	}
	var ok, denied int
	for _, r := range recs {
		switch r.Outcome {
		case "ok":
			ok++
		case "denied":
			denied++
		}
	}
	if ok != 2 || denied != 2 {
		t.Errorf("device.renew audit: %d ok, %d denied, want 2 and 2 (%+v)", ok, denied, recs)
	}
}

// TestRenewRefusals: every way a renewal is refused, with its status.
func TestRenewRefusals(t *testing.T) {
	s := startRenewServer(t)
	ctx := context.Background()
	c, cert := s.enrol(t)
	other, otherCert := s.enrol(t)
	s.clk.Advance(cert.Leaf.NotAfter.Add(-30 * 24 * time.Hour).Sub(s.clk.Now()))
	now := s.clk.Now()
	id := c.DeviceID
	good := func() string { return renewCSR(t, newKey(t), id) }

	for _, tc := range []struct {
		name     string
		cert     *tls.Certificate
		csr      string
		want     int
		wantCode string
	}{
		{"no certificate", nil, good(), 401, "client_cert_required"},
		{"another CA", s.forge(t, false, id, now.Add(-time.Hour), now.Add(time.Hour)), good(), 401, "client_cert_invalid"},
		{"expired", s.forge(t, true, id, now.Add(-48*time.Hour), now.Add(-time.Hour)), good(), 401, "client_cert_invalid"},
		{"not the current one", s.forge(t, true, id, now.Add(-time.Hour), now.Add(24*time.Hour)), good(), 403, "cert_not_current"},
		{"CSR naming another device", cert, renewCSR(t, newKey(t), other.DeviceID), 400, "csr_wrong_device"},
		{"CSR with another device's URI", cert, renewCSR(t, newKey(t), id, pki.DeviceURI(other.DeviceID)), 400, "csr_wrong_device"},
		{"CSR reusing the old key", cert, renewCSR(t, cert.PrivateKey.(crypto.Signer), id), 400, "key_reused"},
		{"not a CSR", cert, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", 400, "bad_csr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, reason, msg, _ := s.renew(t, tc.cert, tc.csr)
			if code != tc.want || reason != tc.wantCode {
				t.Errorf("got %d %s (%s), want %d %s", code, reason, msg, tc.want, tc.wantCode)
			}
		})
	}

	t.Run("rate limited", func(t *testing.T) {
		// Five attempts above identified the device: the sixth is refused.
		code, reason, _, hdr := s.renew(t, cert, good())
		if code != http.StatusTooManyRequests || reason != "rate_limited" || hdr.Get("Retry-After") == "" {
			t.Fatalf("sixth attempt in an hour: %d %s (Retry-After %q), want 429", code, reason, hdr.Get("Retry-After"))
		}
		s.clk.Advance(enrol.RenewLimitPeriod)
		if code, reason, msg, _ := s.renew(t, cert, good()); code != http.StatusOK {
			t.Errorf("an hour later: %d %s %s, want 200", code, reason, msg)
		}
	})

	t.Run("revoked device", func(t *testing.T) {
		if _, _, err := s.a.RevokeDevice(ctx, other.DeviceID); err != nil {
			t.Fatal(err)
		}
		if code, reason, _, _ := s.renew(t, otherCert, renewCSR(t, newKey(t), other.DeviceID)); code != http.StatusForbidden || reason != "device_revoked" {
			t.Errorf("revoked device: %d %s, want 403 device_revoked", code, reason)
		}
	})

	t.Run("only Vigil's CA is asked for", func(t *testing.T) {
		// The HTTPS listener requests a certificate of Vigil's CA only, so
		// a browser (holding none) is not prompted, and answering without
		// one still reaches every other route.
		var asked [][]byte
		cfg := vigiltest.ClientTLS(t, s.a).Clone()
		cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			asked = cri.AcceptableCAs
			return &tls.Certificate{}, nil
		}
		resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}).Get("https://" + s.a.Addr("https") + "/no-such-route")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("status %d, want 404", resp.StatusCode)
		}
		blk, _ := pem.Decode(s.a.CACertPEM())
		ca, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if len(asked) != 1 || !bytes.Equal(asked[0], ca.RawSubject) {
			t.Errorf("acceptable CAs %q, want only Vigil's CA", asked)
		}
	})
}
