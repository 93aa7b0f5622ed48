package sim

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Enrol does what a device does with an enrolment token (security
// requirement 3): it generates its own P-256 key, which never leaves it,
// sends a CSR with the token to POST /api/v1/enrol on httpsAddr, and
// returns the issued certificate with the key, ready for Config.Certs.
// tlsCfg must trust the server (nil: system roots).
func Enrol(ctx context.Context, httpsAddr string, tlsCfg *tls.Config, deviceID, token string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sim: enrol %s: %w", deviceID, err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: deviceID}}, key)
	if err != nil {
		return nil, fmt.Errorf("sim: enrol %s: %w", deviceID, err)
	}
	body, _ := json.Marshal(map[string]string{
		"device_id": deviceID, "token": token,
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+httpsAddr+"/api/v1/enrol", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("sim: enrol %s: %w", deviceID, err)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sim: enrol %s: %w", deviceID, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("sim: enrol %s: %w", deviceID, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(b, &e)
		return nil, fmt.Errorf("sim: enrol %s: HTTP %d %s: %s", deviceID, resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	var out struct{ Certificate string }
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("sim: enrol %s: response: %w", deviceID, err)
	}
	blk, _ := pem.Decode([]byte(out.Certificate))
	if blk == nil {
		return nil, fmt.Errorf("sim: enrol %s: no certificate in the response", deviceID)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("sim: enrol %s: %w", deviceID, err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("sim: enrol %s: the certificate is not for our key", deviceID)
	}
	return &tls.Certificate{Certificate: [][]byte{blk.Bytes}, PrivateKey: key, Leaf: leaf}, nil
}
