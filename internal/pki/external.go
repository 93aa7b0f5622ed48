package pki

import (
	"crypto/x509"
	"fmt"
	"time"
)

// LoadCA loads an existing CA (typically an intermediate issued by an
// organisation's own PKI) from a PEM certificate and a PKCS#8 key, to issue
// device client certificates instead of the built-in CA. The certificate
// must be a CA allowed to sign certificates, its key must match, and it
// must be valid now. As with LoadKeyPair, a group-readable key is accepted
// and a world-readable one refused.
func LoadCA(certFile, keyFile string, now time.Time) (*CA, error) {
	cert, err := readCert(certFile)
	if err != nil {
		return nil, fmt.Errorf("load device CA: %w", err)
	}
	key, err := readKey(keyFile, false)
	if err != nil {
		return nil, fmt.Errorf("load device CA: %w", err)
	}
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return nil, fmt.Errorf("load device CA: %s is not a CA certificate (basic constraints)", certFile)
	case cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, fmt.Errorf("load device CA: %s may not sign certificates (key usage)", certFile)
	case !publicKeysEqual(cert.PublicKey, key.Public()):
		return nil, fmt.Errorf("load device CA: the key in %s is not the key of %s", keyFile, certFile)
	case now.Before(cert.NotBefore) || now.After(cert.NotAfter):
		return nil, fmt.Errorf("load device CA: %s is valid only from %s to %s", certFile, cert.NotBefore.Format(time.DateOnly), cert.NotAfter.Format(time.DateOnly))
	}
	return &CA{cert: cert, key: key, certPEM: pemCert(cert.Raw)}, nil
}
