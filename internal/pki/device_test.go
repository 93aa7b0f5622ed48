package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"
)

func csrFor(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeCSR, Bytes: der})
}

func TestParseDeviceCSR(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := csrFor(t, p256)
	blk, _ := pem.Decode(good)
	tampered := append([]byte(nil), blk.Bytes...)
	tampered[len(tampered)-3] ^= 0xff // inside the signature
	for _, tc := range []struct {
		name string
		csr  []byte
		want error
	}{
		{"P-256", good, nil},
		{"Ed25519", csrFor(t, ed), nil},
		{"P-384", csrFor(t, p384), ErrKeyNotAllowed},
		{"RSA", csrFor(t, rk), ErrKeyNotAllowed},
		{"bad signature", pem.EncodeToMemory(&pem.Block{Type: pemTypeCSR, Bytes: tampered}), ErrBadCSR},
		{"a certificate", pem.EncodeToMemory(&pem.Block{Type: pemTypeCert, Bytes: blk.Bytes}), ErrBadCSR},
		{"two blocks", append(append([]byte(nil), good...), good...), ErrBadCSR},
		{"garbage", []byte("hello"), ErrBadCSR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDeviceCSR(tc.csr)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestIssueDeviceAndVerify(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	ca, err := EnsureCA(t.TempDir(), now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := EnsureCA(t.TempDir(), now)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := ca.IssueDevice("da", key.Public(), now, DeviceValidity)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	if id, err := DeviceID(cert); err != nil || id != "da" {
		t.Errorf("DeviceID: %q %v, want da", id, err)
	}
	if err := VerifyClient([]*x509.Certificate{cert}, ca.Pool(), now); err != nil {
		t.Errorf("own CA: %v", err)
	}
	if err := VerifyClient([]*x509.Certificate{cert}, other.Pool(), now); !errors.Is(err, ErrUntrustedClient) {
		t.Errorf("another CA: %v, want untrusted", err)
	}
	if err := VerifyClient([]*x509.Certificate{cert}, ca.Pool(), now.Add(DeviceValidity+time.Hour)); !errors.Is(err, ErrUntrustedClient) {
		t.Errorf("expired: %v, want untrusted", err)
	}
	if err := VerifyClient(nil, ca.Pool(), now); !errors.Is(err, ErrUntrustedClient) {
		t.Errorf("no certificate: %v, want untrusted", err)
	}
	// A CA-signed certificate without the clientAuth EKU (here: none).
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "da"}, URIs: cert.URIs,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	noEKU, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := x509.ParseCertificate(noEKU)
	if err := VerifyClient([]*x509.Certificate{c2}, ca.Pool(), now); !errors.Is(err, ErrUntrustedClient) {
		t.Errorf("no EKU: %v, want untrusted", err)
	}
	// Names: a CN that disagrees with the URI is not a device certificate.
	tmpl.Subject.CommonName = "db"
	bad, _ := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	c3, _ := x509.ParseCertificate(bad)
	if _, err := DeviceID(c3); !errors.Is(err, ErrNotDeviceCert) {
		t.Errorf("CN/URI mismatch: %v", err)
	}
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := ca.IssueDevice("da", rk.Public(), now, DeviceValidity); !errors.Is(err, ErrKeyNotAllowed) {
		t.Errorf("RSA key issued: %v", err)
	}
	if _, err := ca.IssueDevice("a/b", key.Public(), now, DeviceValidity); err == nil {
		t.Error("device id with '/' issued")
	}
}
