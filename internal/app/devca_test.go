package app_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"vigil/internal/pki"
	"vigil/internal/vigiltest"
)

// TestExternalDeviceCA (issue 8: "an external CA's intermediate can be
// configured instead"): with tls.device_ca_cert/key set to an intermediate
// of the organisation's own root, enrolment issues device certificates
// from that intermediate and mutual TLS on MQTT accepts them; a device
// certificate from the built-in CA is then refused in the handshake.
func TestExternalDeviceCA(t *testing.T) {
	certFile, keyFile := orgIntermediate(t)
	cfg := vigiltest.Config(t)
	cfg.MQTT.ClientCerts = "required"
	cfg.TLS.DeviceCACert, cfg.TLS.DeviceCAKey = certFile, keyFile
	a := vigiltest.StartApp(t, cfg)

	c, cert := enrolled(t, a)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Issuer.CommonName != "Acme Care Devices CA" {
		t.Fatalf("device certificate issued by %q, want the external intermediate", leaf.Issuer.CommonName)
	}
	if _, _, err := connectWatched(t, a, c, cert); err != nil {
		t.Fatalf("mutual TLS with the intermediate's certificate: %v", err)
	}

	// The built-in CA (still the server's) no longer vouches for devices.
	local, err := pki.EnsureCA(filepath.Join(cfg.DataDir, "tls"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := local.IssueDevice(c.DeviceID, k.Public(), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	if _, _, err := connectWatched(t, a, c, forged); err == nil {
		t.Error("a device certificate of the built-in CA was accepted")
	}
}

// orgIntermediate makes an organisation root and an intermediate under it,
// and writes the intermediate's certificate and key (PEM) to files.
func orgIntermediate(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	now := time.Now()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Acme Care Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Acme Care Devices CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(12 * time.Hour), BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, k.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "devices-ca.crt"), filepath.Join(dir, "devices-ca.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
