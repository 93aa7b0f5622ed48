package httpgw

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// RenewPattern is the device certificate renewal route: no session, no
// token; the credential is the device's current client certificate,
// presented in the TLS handshake (the HTTPS listener requests one and
// never requires it, so browsers are not prompted) and verified by the
// Renewer for this route only.
const RenewPattern = "POST /api/v1/enrol/renew"

// Renewer issues a device a new certificate for a new key against its
// current certificate (internal/enrol). chain is what the client
// presented, unverified. A refusal the client may know about is an error
// with a RefusalCode method (and optionally RefusalMessage and
// RetryAfterSeconds); any other error is a failure to renew.
type Renewer interface {
	Renew(ctx context.Context, chain []*x509.Certificate, csrPEM []byte) (deviceID string, certPEM, caPEM []byte, err error)
}

// RenewRequest is the body of POST /api/v1/enrol/renew. The device is the
// one the client certificate names.
type RenewRequest struct {
	CSR string `json:"csr"` // PEM "CERTIFICATE REQUEST" for a new key, CN = the device id
}

// DecodeRenewRequest reads one strict JSON renewal request: no unknown
// fields, nothing after the object, the CSR present and within its limit.
// Errors name the field and never repeat its value.
func DecodeRenewRequest(r io.Reader) (RenewRequest, error) {
	var req RenewRequest
	if err := decodeStrict(r, &req, "csr"); err != nil {
		return RenewRequest{}, err
	}
	if req.CSR == "" || len(req.CSR) > maxEnrolCSR {
		return RenewRequest{}, &fieldError{"csr", fmt.Sprintf("must be a PEM certificate request of at most %d bytes", maxEnrolCSR)}
	}
	return req, nil
}

// RenewHandler serves POST /api/v1/enrol/renew with rn. Refusals: 401 (no
// client certificate, an invalid one), 403 (a revoked device, a
// certificate that is not the device's current one), 400 (a bad CSR, a key
// not allowed or reused, a CSR naming another device), 409 (too early),
// 429 (too many attempts); a failure to renew is 503. The answer has the
// shape of an enrolment's.
func RenewHandler(rn Renewer, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "", "Content-Type must be application/json")
			return
		}
		req, err := DecodeRenewRequest(http.MaxBytesReader(w, r.Body, maxEnrolBody+1))
		if err != nil {
			var fe *fieldError
			if errors.As(err, &fe) {
				WriteError(w, http.StatusBadRequest, "invalid_request", fe.field, fe.msg)
				return
			}
			WriteError(w, http.StatusBadRequest, "bad_request", "", "the body could not be read")
			return
		}
		var chain []*x509.Certificate
		if r.TLS != nil {
			chain = r.TLS.PeerCertificates
		}
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		defer cancel()
		id, certPEM, caPEM, err := rn.Renew(ctx, chain, []byte(req.CSR))
		if err != nil {
			var ref interface{ RefusalCode() string }
			if !errors.As(err, &ref) {
				log.Error("device renewal failed", "device_id", id, "err", err)
				w.Header().Set("Retry-After", "5")
				WriteError(w, http.StatusServiceUnavailable, "unavailable", "", "renewal is not possible right now; retry later")
				return
			}
			status, field := renewRefusal(ref.RefusalCode())
			msg := "renewal refused"
			var m interface{ RefusalMessage() string }
			if errors.As(err, &m) && m.RefusalMessage() != "" {
				msg = m.RefusalMessage()
			}
			var ra interface{ RetryAfterSeconds() int }
			if errors.As(err, &ra) && ra.RetryAfterSeconds() > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(ra.RetryAfterSeconds()))
			}
			WriteError(w, status, ref.RefusalCode(), field, msg)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(EnrolResponse{DeviceID: id, Certificate: string(certPEM), CA: string(caPEM)})
	})
}

// renewRefusal is the one map from a renewal refusal to HTTP.
func renewRefusal(code string) (status int, field string) {
	switch code {
	case "client_cert_required", "client_cert_invalid":
		return http.StatusUnauthorized, ""
	case "device_revoked", "cert_not_current":
		return http.StatusForbidden, ""
	case "bad_csr", "key_not_allowed", "key_reused", "csr_wrong_device":
		return http.StatusBadRequest, "csr"
	case "too_early":
		return http.StatusConflict, ""
	case "rate_limited":
		return http.StatusTooManyRequests, ""
	default:
		return http.StatusForbidden, ""
	}
}
