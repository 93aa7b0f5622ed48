package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Device client certificates (security requirements 3, 5 and 9). A device
// certificate names its device twice, as the subject CN and as the one URI
// SAN urn:vigil:device:<id>; it carries the clientAuth EKU only, so it
// cannot serve TLS. The MQTT listener takes a device's identity from the
// verified URI SAN and nothing else.

// DeviceValidity is the lifetime of an enrolled device's certificate.
const DeviceValidity = 365 * 24 * time.Hour

// DeviceURIPrefix starts the URI SAN naming a device.
const DeviceURIPrefix = "urn:vigil:device:"

const pemTypeCSR = "CERTIFICATE REQUEST"

// Errors of device certificate handling; callers map them to their
// protocol's answer.
var (
	ErrBadCSR          = errors.New("pki: not a valid certificate signing request")
	ErrKeyNotAllowed   = errors.New("pki: device key must be ECDSA P-256 or Ed25519")
	ErrNotDeviceCert   = errors.New("pki: not a Vigil device certificate")
	ErrUntrustedClient = errors.New("pki: client certificate not trusted")
)

// ParseDeviceCSR decodes a PEM certificate signing request, checks its
// signature and that its key is one the device policy allows (ECDSA P-256
// or Ed25519), and returns the public key. The CSR's subject and extensions
// are ignored: the CA decides what the certificate says.
func ParseDeviceCSR(csrPEM []byte) (crypto.PublicKey, error) {
	block, rest := pem.Decode(csrPEM)
	if block == nil || block.Type != pemTypeCSR || len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%w: want one %q PEM block", ErrBadCSR, pemTypeCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := CheckDeviceKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrBadCSR, err)
	}
	return csr.PublicKey, nil
}

// CheckDeviceKey accepts ECDSA P-256 and Ed25519 public keys only.
func CheckDeviceKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return nil
		}
		return fmt.Errorf("%w: ECDSA on %s", ErrKeyNotAllowed, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	default:
		return fmt.Errorf("%w: got %T", ErrKeyNotAllowed, pub)
	}
}

// DeviceURI is the URI SAN naming a device.
func DeviceURI(deviceID string) string { return DeviceURIPrefix + deviceID }

// IssueDevice signs a device client certificate for pub (which must pass
// CheckDeviceKey): CN and URI SAN name deviceID, clientAuth EKU only,
// validity cut to the CA's own expiry. It returns the DER.
func (ca *CA) IssueDevice(deviceID string, pub crypto.PublicKey, now time.Time, validity time.Duration) ([]byte, error) {
	if deviceID == "" || strings.ContainsAny(deviceID, ":/?#[]@ \x00") {
		return nil, fmt.Errorf("issue device certificate: invalid device id")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("issue device certificate %s: validity %v is not positive", deviceID, validity)
	}
	if err := CheckDeviceKey(pub); err != nil {
		return nil, fmt.Errorf("issue device certificate %s: %w", deviceID, err)
	}
	u, err := url.Parse(DeviceURI(deviceID))
	if err != nil {
		return nil, fmt.Errorf("issue device certificate %s: %w", deviceID, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("issue device certificate %s: %w", deviceID, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: deviceID, Organization: []string{"Vigil device"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     ca.clamp(now.Add(validity)),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue device certificate %s: %w", deviceID, err)
	}
	return der, nil
}

// Fingerprint is the lower-case hex SHA-256 of a certificate's DER, the
// form stored on the device.
func Fingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

// PEMCert encodes a DER certificate as PEM.
func PEMCert(der []byte) []byte { return pemCert(der) }

// VerifyClient checks a TLS client's certificate chain (leaf first) against
// roots at now, requiring the clientAuth EKU. Expired, not yet valid,
// another CA's or EKU-less certificates are ErrUntrustedClient.
func VerifyClient(chain []*x509.Certificate, roots *x509.CertPool, now time.Time) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: no certificate", ErrUntrustedClient)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUntrustedClient, err)
	}
	// x509 accepts a leaf with no EKU at all as "any"; a device
	// certificate must say clientAuth explicitly.
	if !hasEKU(chain[0], x509.ExtKeyUsageClientAuth) {
		return fmt.Errorf("%w: no clientAuth extended key usage", ErrUntrustedClient)
	}
	return nil
}

func hasEKU(c *x509.Certificate, want x509.ExtKeyUsage) bool {
	for _, u := range c.ExtKeyUsage {
		if u == want {
			return true
		}
	}
	return false
}

// DeviceID returns the device a verified device certificate names: its one
// urn:vigil:device: URI SAN, which the CN must repeat.
func DeviceID(c *x509.Certificate) (string, error) {
	var id string
	n := 0
	for _, u := range c.URIs {
		if s := u.String(); strings.HasPrefix(s, DeviceURIPrefix) {
			id = strings.TrimPrefix(s, DeviceURIPrefix)
			n++
		}
	}
	if n != 1 || id == "" || c.Subject.CommonName != id {
		return "", ErrNotDeviceCert
	}
	return id, nil
}
