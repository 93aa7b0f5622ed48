package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func newCA(t *testing.T) (*CA, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	ca, err := EnsureCA(dir, t0)
	if err != nil {
		t.Fatal(err)
	}
	return ca, dir
}

func TestEnsureCACreateThenReload(t *testing.T) {
	ca, dir := newCA(t)
	c := ca.Certificate()
	if c.Subject.CommonName != CACommonName || !c.IsCA || !c.BasicConstraintsValid || !c.MaxPathLenZero {
		t.Errorf("CA certificate: CN %q IsCA %v BasicConstraintsValid %v MaxPathLenZero %v", c.Subject.CommonName, c.IsCA, c.BasicConstraintsValid, c.MaxPathLenZero)
	}
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || c.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", c.PublicKey)
	}
	if got, want := c.NotAfter, t0.Add(CAValidity); !got.Equal(want) {
		t.Errorf("CA NotAfter = %v, want %v", got, want)
	}
	for path, want := range map[string]fs.FileMode{
		dir:                          0o700,
		filepath.Join(dir, "ca.crt"): 0o644,
		filepath.Join(dir, "ca.key"): 0o600,
	} {
		if got := mode(t, path); got != want {
			t.Errorf("mode of %s = %04o, want %04o", path, got, want)
		}
	}

	again, err := EnsureCA(dir, t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Certificate().Raw, c.Raw) || !bytes.Equal(again.CertPEM(), ca.CertPEM()) {
		t.Error("reloaded CA differs from the created one")
	}
	if !publicKeysEqual(again.key.Public(), ca.key.Public()) {
		t.Error("reloaded CA key differs")
	}
	if !bytes.Contains(ca.CertPEM(), []byte("BEGIN CERTIFICATE")) {
		t.Errorf("CertPEM is not PEM: %q", ca.CertPEM())
	}
	// A certificate that CertPEM's pool accepts: the CA verifies itself.
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: t0}); err != nil {
		t.Errorf("CA does not verify against its own pool: %v", err)
	}
}

func TestEnsureCARefusesLooseKey(t *testing.T) {
	for _, m := range []fs.FileMode{0o644, 0o640, 0o604, 0o660} {
		_, dir := newCA(t)
		key := filepath.Join(dir, "ca.key")
		if err := os.Chmod(key, m); err != nil {
			t.Fatal(err)
		}
		_, err := EnsureCA(dir, t0)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+key) {
			t.Errorf("mode %04o: EnsureCA error = %v, want one saying chmod 600 %s", m, err, key)
		}
	}
}

func TestEnsureCAKeyWithoutCertIsRepaired(t *testing.T) {
	ca, dir := newCA(t)
	if err := os.Remove(filepath.Join(dir, "ca.crt")); err != nil {
		t.Fatal(err)
	}
	again, err := EnsureCA(dir, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeysEqual(again.Certificate().PublicKey, ca.Certificate().PublicKey) {
		t.Error("the recreated CA certificate is not for the existing key")
	}
}

func TestEnsureCACertWithoutKeyIsRefused(t *testing.T) {
	ca, dir := newCA(t)
	if err := os.Remove(filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureCA(dir, t0); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("EnsureCA = %v, want an error about the missing key", err)
	}
	pemNow, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil || !bytes.Equal(pemNow, ca.CertPEM()) {
		t.Error("ca.crt was changed")
	}
}

func TestEnsureCAExpired(t *testing.T) {
	_, dir := newCA(t)
	if _, err := EnsureCA(dir, t0.Add(CAValidity+time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("EnsureCA after expiry = %v, want an expiry error", err)
	}
}

func TestServerCert(t *testing.T) {
	ca, dir := newCA(t)
	hosts := []string{"vigil.example", "192.0.2.7", "VIGIL.example"}
	cert, err := ca.EnsureServerCert(dir, hosts, t0)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	hostname, _ := os.Hostname()
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "vigil.example", "192.0.2.7", hostname} {
		if name == "" {
			continue
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots: ca.Pool(), DNSName: name, CurrentTime: t0,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			t.Errorf("server certificate does not verify for %q: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "other.example", CurrentTime: t0}); err == nil {
		t.Error("server certificate verifies for a name it was not issued for")
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ExtKeyUsage = %v, want serverAuth only", leaf.ExtKeyUsage)
	}
	if got, want := leaf.NotAfter, t0.Add(ServerValidity); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	for _, f := range []string{"server.crt", "server.key"} {
		if got := mode(t, filepath.Join(dir, f)); got != 0o600 {
			t.Errorf("mode of %s = %04o, want 0600", f, got)
		}
	}

	serial := func(when time.Time, hosts []string) string {
		t.Helper()
		c, err := ca.EnsureServerCert(dir, hosts, when)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.String()
	}
	first := leaf.SerialNumber.String()
	if got := serial(t0.Add(300*24*time.Hour), []string{"192.0.2.7", "vigil.example"}); got != first {
		t.Error("certificate reissued although current and for the same hosts (in another order)")
	}
	if got := serial(t0.Add(ServerValidity-29*24*time.Hour), hosts); got == first {
		t.Error("certificate not reissued within 30 days of expiry")
	}
	second := serial(t0.Add(ServerValidity-29*24*time.Hour), hosts)
	if got := serial(t0.Add(ServerValidity-29*24*time.Hour), append(hosts, "new.example")); got == second {
		t.Error("certificate not reissued when a host was added")
	}
}

func TestServerCertNewCAReissues(t *testing.T) {
	ca, dir := newCA(t)
	first, err := ca.EnsureServerCert(dir, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newCA(t)
	c, err := other.EnsureServerCert(dir, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Error("a certificate signed by another CA was kept")
	}
	if err := c.Leaf.CheckSignatureFrom(other.Certificate()); err != nil {
		t.Errorf("reissued certificate not signed by the current CA: %v", err)
	}
}

func TestServerCertRefusesLooseKey(t *testing.T) {
	ca, dir := newCA(t)
	if _, err := ca.EnsureServerCert(dir, nil, t0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "server.key"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.EnsureServerCert(dir, nil, t0); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("EnsureServerCert = %v, want a mode error", err)
	}
}

func TestIssueClient(t *testing.T) {
	ca, _ := newCA(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.IssueClient("device-42", &key.PublicKey, t0, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != "device-42" || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || c.IsCA {
		t.Errorf("client certificate: CN %q EKU %v IsCA %v", c.Subject.CommonName, c.ExtKeyUsage, c.IsCA)
	}
	if !publicKeysEqual(c.PublicKey, &key.PublicKey) {
		t.Error("client certificate is for another key")
	}
	opts := x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := c.Verify(opts); err != nil {
		t.Errorf("client certificate does not verify for clientAuth: %v", err)
	}
	opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if _, err := c.Verify(opts); err == nil {
		t.Error("client certificate verifies for serverAuth")
	}
	if got, want := c.NotAfter, t0.Add(90*24*time.Hour); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}

	// Validity is cut to the CA's.
	der, err = ca.IssueClient("device-43", &key.PublicKey, t0, 20*CAValidity)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := x509.ParseCertificate(der); !c.NotAfter.Equal(ca.Certificate().NotAfter) {
		t.Errorf("NotAfter = %v, want the CA's %v", c.NotAfter, ca.Certificate().NotAfter)
	}

	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := ca.IssueClient("ed", edPub, t0, time.Hour); err != nil {
		t.Errorf("Ed25519 client key: %v", err)
	}
	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"empty name":     func() error { _, err := ca.IssueClient("", &key.PublicKey, t0, time.Hour); return err },
		"zero validity":  func() error { _, err := ca.IssueClient("d", &key.PublicKey, t0, 0); return err },
		"small RSA":      func() error { _, err := ca.IssueClient("d", &smallRSA.PublicKey, t0, time.Hour); return err },
		"unsupported":    func() error { _, err := ca.IssueClient("d", "not a key", t0, time.Hour); return err },
		"private as pub": func() error { _, err := ca.IssueClient("d", key, t0, time.Hour); return err },
	} {
		if call() == nil {
			t.Errorf("%s: IssueClient succeeded, want an error", name)
		}
	}
}

func TestLoadKeyPair(t *testing.T) {
	ca, dir := newCA(t)
	if _, err := ca.EnsureServerCert(dir, nil, t0); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	for _, m := range []fs.FileMode{0o600, 0o640, 0o400} {
		if err := os.Chmod(keyFile, m); err != nil {
			t.Fatal(err)
		}
		c, err := LoadKeyPair(certFile, keyFile)
		if err != nil {
			t.Errorf("mode %04o: %v", m, err)
			continue
		}
		if c.Leaf == nil || c.PrivateKey == nil {
			t.Errorf("mode %04o: loaded pair without leaf or key", m)
		}
	}
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyPair(certFile, keyFile); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: %v, want a mode error", err)
	}
	if _, err := LoadKeyPair(certFile, filepath.Join(dir, "nope.key")); err == nil {
		t.Error("missing key file loaded")
	}
	if _, err := LoadKeyPair(filepath.Join(dir, "ca.crt"), keyFile); err == nil {
		t.Error("mismatched certificate and key loaded")
	}
}
