package sim

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
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// RenewBefore is how long before its expiry the simulator renews a
// device certificate (the server accepts renewals from 60 days before).
const RenewBefore = 30 * 24 * time.Hour

// NeedsRenewal reports whether cert has less than before left at now.
func NeedsRenewal(cert *tls.Certificate, now time.Time, before time.Duration) bool {
	leaf, err := leafOf(cert)
	return err == nil && leaf.NotAfter.Sub(now) < before
}

// Renew does what an enrolled device does before its certificate expires:
// it generates a new P-256 key, which never leaves it, and sends a CSR for
// it to POST /api/v1/enrol/renew on httpsAddr, presenting its current
// certificate cur in the TLS handshake. It returns the new certificate
// with the new key. tlsCfg must trust the server (nil: system roots).
func Renew(ctx context.Context, httpsAddr string, tlsCfg *tls.Config, cur *tls.Certificate) (*tls.Certificate, error) {
	leaf, err := leafOf(cur)
	if err != nil {
		return nil, fmt.Errorf("sim: renew: %w", err)
	}
	id := leaf.Subject.CommonName
	if tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tlsCfg = tlsCfg.Clone()
	tlsCfg.Certificates = nil
	tlsCfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cur, nil }
	// A new session each time: a resumed one would carry whichever
	// certificate its first handshake presented.
	tlsCfg.ClientSessionCache = nil
	return certify(ctx, "renew "+id, "https://"+httpsAddr+"/api/v1/enrol/renew", tlsCfg, id,
		func(csr string) any { return map[string]string{"csr": csr} })
}

// certify generates a key, builds a CSR naming deviceID, posts the body
// that body makes of it to url and returns the certificate it answers.
func certify(ctx context.Context, op, url string, tlsCfg *tls.Config, deviceID string, body func(csrPEM string) any) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", op, err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: deviceID}}, key)
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", op, err)
	}
	b, _ := json.Marshal(body(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{TLSClientConfig: tlsCfg}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", op, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(rb, &e)
		return nil, &HTTPError{Op: op, Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	var out struct{ Certificate string }
	if err := json.Unmarshal(rb, &out); err != nil {
		return nil, fmt.Errorf("sim: %s: response: %w", op, err)
	}
	blk, _ := pem.Decode([]byte(out.Certificate))
	if blk == nil {
		return nil, fmt.Errorf("sim: %s: no certificate in the response", op)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", op, err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("sim: %s: the certificate is not for our key", op)
	}
	return &tls.Certificate{Certificate: [][]byte{blk.Bytes}, PrivateKey: crypto.Signer(key), Leaf: leaf}, nil
}

// HTTPError is an enrolment or renewal the server refused.
type HTTPError struct {
	Op      string
	Status  int
	Code    string // the API's error code, e.g. "too_early"
	Message string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("sim: %s: HTTP %d %s: %s", e.Op, e.Status, e.Code, e.Message)
}

func leafOf(cert *tls.Certificate) (*x509.Certificate, error) {
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, errors.New("no certificate")
	}
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	return x509.ParseCertificate(cert.Certificate[0])
}

// certBook holds the devices' client certificates, which the runner
// replaces on renewal.
type certBook struct {
	mu sync.Mutex
	m  map[string]*tls.Certificate
}

func newCertBook(certs map[string]*tls.Certificate) *certBook {
	b := &certBook{m: make(map[string]*tls.Certificate, len(certs))}
	for id, c := range certs {
		b.m[id] = c
	}
	return b
}

func (b *certBook) get(id string) *tls.Certificate {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m[id]
}

func (b *certBook) set(id string, c *tls.Certificate) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[id] = c
}

// Cert returns a device's current client certificate (nil: it has none).
func (s *Sim) Cert(deviceID string) *tls.Certificate { return s.certs.get(deviceID) }

// clientCert is the certificate a device connects with: its current one,
// renewed first when it has less than Config.RenewBefore left and the
// HTTPS address is known. A failed renewal is logged and counted; the
// device connects with what it has and tries again on its next connect.
func (s *Sim) clientCert(ctx context.Context, id string) *tls.Certificate {
	cur := s.certs.get(id)
	if cur == nil || s.cfg.HTTPSAddr == "" || !NeedsRenewal(cur, s.cfg.Now(), s.cfg.RenewBefore) {
		return cur
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	next, err := Renew(rctx, s.cfg.HTTPSAddr, s.cfg.TLS, cur)
	if err != nil {
		if ctx.Err() == nil {
			s.update(func(st *Stats) { st.RenewErrors++ })
			s.log.Warn("sim: certificate renewal failed", "device_id", id, "err", err)
		}
		return cur
	}
	s.certs.set(id, next)
	s.update(func(st *Stats) { st.Renewed++ })
	s.log.Info("sim: certificate renewed", "device_id", id, "not_after", next.Leaf.NotAfter)
	return next
}
