package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// intermediate issues a CA certificate under root (or a leaf when ca is
// false) and writes it and its key as PEM files; it returns their paths.
func intermediate(t *testing.T, root *CA, ca bool, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := newSerial()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "Acme Devices CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, BasicConstraintsValid: true, IsCA: ca, MaxPathLenZero: ca,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.cert, k.Public(), root.key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := os.WriteFile(certFile, pemCert(der), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeKey(keyFile, k); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestLoadCAIssuesUnderIntermediate: device certificates issued by an
// external intermediate chain to it (and through it to the organisation's
// root) with the clientAuth usage; a certificate that is not a CA, a key
// that is not its key and an expired intermediate are refused.
func TestLoadCAIssuesUnderIntermediate(t *testing.T) {
	now := time.Now()
	root := orgRoot(t, now)
	certFile, keyFile := intermediate(t, root, true, now.Add(365*24*time.Hour))
	ca, err := LoadCA(certFile, keyFile, now)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.IssueClient("dk3m7x2q5a4bwcyde", dev.Public(), now, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Issuer.CommonName != "Acme Devices CA" {
		t.Errorf("issuer %q", leaf.Issuer.CommonName)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("against the intermediate: %v", err)
	}
	inter := x509.NewCertPool()
	inter.AddCert(ca.Certificate())
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: root.Pool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("through to the root: %v", err)
	}

	notCA, notCAKey := intermediate(t, root, false, now.Add(time.Hour))
	_, otherKey := intermediate(t, root, true, now.Add(time.Hour))
	expired, expiredKey := intermediate(t, root, true, now.Add(-time.Minute))
	for _, tc := range []struct{ cert, key, want string }{
		{notCA, notCAKey, "not a CA"},
		{certFile, otherKey, "is not the key"},
		{expired, expiredKey, "valid only"},
		{filepath.Join(t.TempDir(), "missing.crt"), keyFile, "no such file"},
	} {
		if _, err := LoadCA(tc.cert, tc.key, now); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadCA(%s, %s): %v, want %q", filepath.Base(tc.cert), filepath.Base(tc.key), err, tc.want)
		}
	}
}

// orgRoot is an organisation's own root CA (no path length limit).
func orgRoot(t *testing.T, now time.Time) *CA {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := newSerial()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "Acme Root CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(10 * 365 * 24 * time.Hour), BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{cert: c, key: k, certPEM: pemCert(der)}
}
