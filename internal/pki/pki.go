// Package pki is Vigil's local certificate authority and TLS server policy:
// a self-signed ECDSA P-256 CA kept on disk ("Vigil Local CA", 10 years),
// the server certificate it issues for the listeners (1 year, reissued
// within 30 days of expiry or when the host list changes), client
// certificates for device enrolment, and the one tls.Config every listener
// uses (security requirement 8), with session-ticket keys rotated daily by
// TicketRotator.
//
// P-256 rather than Ed25519: Ed25519 certificates are still not accepted
// by many device TLS stacks (mbedTLS configurations, older modems) and
// browsers, while P-256 is universal.
//
// Files: ca.crt (0644), ca.key, server.crt and server.key (0600) in a
// 0700 directory, written atomically (temporary file, fsync, rename), key
// before certificate, so a crash at any point is repaired on the next
// start. A key file of ours that is group- or world-accessible is refused
// rather than silently used.
//
// Must not import: anything but the standard library (internal/app
// TestDeps). A CA is read-only after EnsureCA and safe for concurrent use.
// Nothing here starts a goroutine; TicketRotator.Run is run by its owner.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Validity periods and file names.
const (
	CAValidity        = 10 * 365 * 24 * time.Hour
	ServerValidity    = 365 * 24 * time.Hour
	ServerRenewBefore = 30 * 24 * time.Hour
	CACommonName      = "Vigil Local CA"
	caCertFile        = "ca.crt"
	caKeyFile         = "ca.key"
	serverCertFile    = "server.crt"
	serverKeyFile     = "server.key"
	backdate          = time.Hour // tolerate clocks a little behind ours
	minRSABits        = 2048
	pemTypeCert       = "CERTIFICATE"
	pemTypePKCS8      = "PRIVATE KEY"
	certMode, keyMode = fs.FileMode(0o644), fs.FileMode(0o600)
	dirMode           = fs.FileMode(0o700)
	serverCertMode    = fs.FileMode(0o600)
)

// CA is the local certificate authority.
type CA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
}

// EnsureCA loads the CA from dir, or creates it (and dir, 0700) when dir
// holds neither ca.crt nor ca.key. A ca.key without ca.crt (a crash
// between the two writes) gets a fresh self-signed certificate for the
// same key; a ca.crt without its key is an error, never overwritten.
func EnsureCA(dir string, now time.Time) (*CA, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("ensure CA: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
	key, err := readKey(keyPath, true)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, err := os.Stat(certPath); err == nil {
			return nil, fmt.Errorf("ensure CA: %s exists but its key %s is missing; restore the key, or move both away to create a new CA (devices will then need the new ca.crt)", certPath, keyPath)
		}
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("ensure CA: generate key: %w", err)
		}
		if err := writeKey(keyPath, k); err != nil {
			return nil, fmt.Errorf("ensure CA: %w", err)
		}
		key = k
	case err != nil:
		return nil, fmt.Errorf("ensure CA: %w", err)
	}

	cert, err := readCert(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return createCACert(certPath, key, now)
	}
	if err != nil {
		return nil, fmt.Errorf("ensure CA: %w", err)
	}
	if !cert.IsCA || !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("ensure CA: %s is not a CA certificate for the key in %s", certPath, keyPath)
	}
	if now.After(cert.NotAfter) {
		return nil, fmt.Errorf("ensure CA: %s expired on %s; move ca.crt and ca.key away to create a new CA (devices will then need the new ca.crt)", certPath, cert.NotAfter.Format(time.DateOnly))
	}
	return &CA{cert: cert, key: key, certPEM: pemCert(cert.Raw)}, nil
}

func createCACert(certPath string, key crypto.Signer, now time.Time) (*CA, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: CACommonName, Organization: []string{"Vigil"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	p := pemCert(der)
	if err := writeFileAtomic(certPath, p, certMode); err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	return &CA{cert: cert, key: key, certPEM: p}, nil
}

// Certificate returns the CA certificate (do not modify it).
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM, to hand to devices and clients.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// Pool returns a new pool holding only the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// EnsureServerCert loads server.crt/server.key from dir, or issues them
// when missing, not signed by this CA, expiring within ServerRenewBefore,
// or not covering exactly the wanted names: hosts plus localhost,
// 127.0.0.1, ::1 and the machine's hostname.
func (ca *CA) EnsureServerCert(dir string, hosts []string, now time.Time) (tls.Certificate, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return tls.Certificate{}, fmt.Errorf("ensure server certificate: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile)
	names, ips, err := serverNames(hosts)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ensure server certificate: %w", err)
	}
	cert, err := loadServerCert(certPath, keyPath)
	switch {
	case err == nil && ca.serverCertCurrent(cert.Leaf, names, ips, now):
		return cert, nil
	case err == nil, errors.Is(err, fs.ErrNotExist):
		return ca.issueServerCert(certPath, keyPath, names, ips, now)
	default:
		return tls.Certificate{}, fmt.Errorf("ensure server certificate: %w", err)
	}
}

// loadServerCert returns an error wrapping fs.ErrNotExist when a file is
// missing, an empty Certificate when the pair is unusable (reissue), and
// an error for a key with a loose mode.
func loadServerCert(certPath, keyPath string) (tls.Certificate, error) {
	if err := checkKeyMode(keyPath, true); err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return tls.Certificate{}, err
		}
		// A torn or mismatched pair of our own files: reissue.
		return tls.Certificate{}, nil
	}
	return cert, nil
}

func (ca *CA) serverCertCurrent(leaf *x509.Certificate, names []string, ips []net.IP, now time.Time) bool {
	if leaf == nil || leaf.CheckSignatureFrom(ca.cert) != nil {
		return false
	}
	if now.Before(leaf.NotBefore) || !now.Add(ServerRenewBefore).Before(leaf.NotAfter) {
		return false
	}
	if !slices.Equal(sortedLower(leaf.DNSNames), names) {
		return false
	}
	return slices.Equal(ipStrings(leaf.IPAddresses), ipStrings(ips))
}

func (ca *CA) issueServerCert(certPath, keyPath string, names []string, ips []net.IP, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"Vigil"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     ca.clamp(now.Add(ServerValidity)),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	if err := writeKey(keyPath, key); err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	if err := writeFileAtomic(certPath, pemCert(der), serverCertMode); err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// serverNames splits hosts plus the defaults into sorted, deduplicated DNS
// names (lower case; localhost first is not guaranteed) and IPs.
func serverNames(hosts []string) ([]string, []net.IP, error) {
	all := append([]string{"localhost", "127.0.0.1", "::1"}, hosts...)
	if h, err := os.Hostname(); err == nil && h != "" {
		all = append(all, h)
	}
	var names []string
	var ips []net.IP
	for _, h := range all {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if strings.ContainsAny(h, " /:@") {
			return nil, nil, fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
		}
		names = append(names, strings.ToLower(h))
	}
	names = sortedLower(names)
	ips = uniqueIPs(ips)
	return names, ips, nil
}

// IssueClient signs a client certificate (clientAuth) for pub with the CA:
// the device-enrolment path. Validity is cut to the CA's own expiry. pub
// must be ECDSA, Ed25519 or RSA of at least 2048 bits.
func (ca *CA) IssueClient(commonName string, pub crypto.PublicKey, now time.Time, validity time.Duration) ([]byte, error) {
	if commonName == "" {
		return nil, errors.New("issue client certificate: empty common name")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("issue client certificate %s: validity %v is not positive", commonName, validity)
	}
	usage := x509.KeyUsageDigitalSignature
	switch k := pub.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("issue client certificate %s: RSA key of %d bits, want at least %d", commonName, k.N.BitLen(), minRSABits)
		}
		usage |= x509.KeyUsageKeyEncipherment
	default:
		return nil, fmt.Errorf("issue client certificate %s: unsupported public key type %T", commonName, pub)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("issue client certificate %s: %w", commonName, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-backdate),
		NotAfter:     ca.clamp(now.Add(validity)),
		KeyUsage:     usage,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue client certificate %s: %w", commonName, err)
	}
	return der, nil
}

// clamp keeps a certificate from outliving its issuer.
func (ca *CA) clamp(notAfter time.Time) time.Time {
	if notAfter.After(ca.cert.NotAfter) {
		return ca.cert.NotAfter
	}
	return notAfter
}

// LoadKeyPair loads a user-supplied PEM certificate chain and key. Unlike
// our own keys, a group-readable key is accepted (Debian's ssl-cert group
// convention), a world-readable one is refused.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	if err := checkKeyMode(keyFile, false); err != nil {
		return tls.Certificate{}, fmt.Errorf("load key pair: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load key pair %s, %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// checkKeyMode refuses a key file readable by others (and by the group
// when strict), with the command that fixes it.
func checkKeyMode(path string, strict bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	mask, who := fs.FileMode(0o007), "others"
	if strict {
		mask, who = 0o077, "group or others"
	}
	if fi.Mode().Perm()&mask != 0 {
		return fmt.Errorf("private key %s has mode %04o, accessible to %s; fix with: chmod 600 %s", path, fi.Mode().Perm(), who, path)
	}
	return nil
}

func readKey(path string, strict bool) (crypto.Signer, error) {
	if err := checkKeyMode(path, strict); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemTypePKCS8 {
		return nil, fmt.Errorf("%s: no PKCS#8 PRIVATE KEY PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key type %T cannot sign", path, k)
	}
	return s, nil
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemTypeCert {
		return nil, fmt.Errorf("%s: no CERTIFICATE PEM block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: pemTypePKCS8, Bytes: der}), keyMode)
}

// writeFileAtomic writes data to path with exactly mode (set with chmod,
// so the umask does not apply) via a synced temporary file and a rename,
// then syncs the directory.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeCert, Bytes: der})
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

func sortedLower(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, strings.ToLower(n))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func uniqueIPs(ips []net.IP) []net.IP {
	seen := map[string]bool{}
	var out []net.IP
	for _, s := range ipStrings(ips) {
		if !seen[s] {
			seen[s] = true
			out = append(out, net.ParseIP(s))
		}
	}
	return out
}

// ipStrings returns the sorted canonical text of ips.
func ipStrings(ips []net.IP) []string {
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}
