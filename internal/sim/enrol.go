package sim

import (
	"context"
	"crypto/tls"
)

// Enrol does what a device does with an enrolment token (security
// requirement 3): it generates its own P-256 key, which never leaves it,
// sends a CSR with the token to POST /api/v1/enrol on httpsAddr, and
// returns the issued certificate with the key, ready for Config.Certs.
// tlsCfg must trust the server (nil: system roots). A refusal is an
// *HTTPError.
func Enrol(ctx context.Context, httpsAddr string, tlsCfg *tls.Config, deviceID, token string) (*tls.Certificate, error) {
	return certify(ctx, "enrol "+deviceID, "https://"+httpsAddr+"/api/v1/enrol", tlsCfg, deviceID,
		func(csr string) any { return map[string]string{"device_id": deviceID, "token": token, "csr": csr} })
}
