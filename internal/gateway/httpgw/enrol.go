package httpgw

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"
)

// EnrolPattern is the public device enrolment route (no session, no
// device secret: the single-use token is the credential).
const EnrolPattern = "POST /api/v1/enrol"

// Enrolment request limits.
const (
	maxEnrolBody  = 16 << 10
	maxEnrolCSR   = 8 << 10
	maxEnrolToken = 128
)

// Enroller exchanges a single-use enrolment token and a CSR for a device
// certificate (internal/enrol). A refusal the client may know about is an
// error with a RefusalCode method; any other error is a failure to enrol.
type Enroller interface {
	Enrol(ctx context.Context, deviceID, token string, csrPEM []byte) (certPEM, caPEM []byte, err error)
}

// EnrolRequest is the body of POST /api/v1/enrol.
type EnrolRequest struct {
	DeviceID string `json:"device_id"`
	Token    string `json:"token"`
	CSR      string `json:"csr"` // PEM "CERTIFICATE REQUEST"
}

// EnrolResponse is the body of a successful enrolment.
type EnrolResponse struct {
	DeviceID    string `json:"device_id"`
	Certificate string `json:"certificate"` // PEM, the device's client certificate
	CA          string `json:"ca"`          // PEM, the chain up to Vigil's CA
}

// fieldError names the offending field of a request.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// DecodeEnrolRequest reads one strict JSON enrolment request: no unknown
// fields, nothing after the object, every field present and within its
// limits. Errors name the field and never repeat its value.
func DecodeEnrolRequest(r io.Reader) (EnrolRequest, error) {
	var req EnrolRequest
	if err := decodeStrict(r, &req, "device_id, token and csr"); err != nil {
		return EnrolRequest{}, err
	}
	if !validDeviceID(req.DeviceID) {
		return EnrolRequest{}, &fieldError{"device_id", "must be 1-64 lowercase letters, digits, '-' or '_'"}
	}
	if req.Token == "" || len(req.Token) > maxEnrolToken || !printableASCII(req.Token) {
		return EnrolRequest{}, &fieldError{"token", fmt.Sprintf("must be 1-%d printable characters", maxEnrolToken)}
	}
	if req.CSR == "" || len(req.CSR) > maxEnrolCSR {
		return EnrolRequest{}, &fieldError{"csr", fmt.Sprintf("must be a PEM certificate request of at most %d bytes", maxEnrolCSR)}
	}
	return req, nil
}

func validDeviceID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// EnrolHandler serves POST /api/v1/enrol with e. Refusals get 400 (bad
// request or CSR, a key type not allowed), 401 (unknown token, another
// device's, a disabled device) or 410 (a used or expired token); a failure
// to enrol is 503.
func EnrolHandler(e Enroller, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "", "Content-Type must be application/json")
			return
		}
		req, err := DecodeEnrolRequest(http.MaxBytesReader(w, r.Body, maxEnrolBody+1))
		if err != nil {
			var fe *fieldError
			if errors.As(err, &fe) {
				WriteError(w, http.StatusBadRequest, "invalid_request", fe.field, fe.msg)
				return
			}
			WriteError(w, http.StatusBadRequest, "bad_request", "", "the body could not be read")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		defer cancel()
		certPEM, caPEM, err := e.Enrol(ctx, req.DeviceID, req.Token, []byte(req.CSR))
		if err != nil {
			var ref interface{ RefusalCode() string }
			if !errors.As(err, &ref) {
				log.Error("device enrolment failed", "device_id", req.DeviceID, "err", err)
				w.Header().Set("Retry-After", "5")
				WriteError(w, http.StatusServiceUnavailable, "unavailable", "", "enrolment is not possible right now; retry later")
				return
			}
			status, field, msg := enrolRefusal(ref.RefusalCode())
			WriteError(w, status, ref.RefusalCode(), field, msg)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(EnrolResponse{DeviceID: req.DeviceID, Certificate: string(certPEM), CA: string(caPEM)})
	})
}

// enrolRefusal is the one map from an enrolment refusal to HTTP.
func enrolRefusal(code string) (status int, field, msg string) {
	switch code {
	case "token_used":
		return http.StatusGone, "token", "this enrolment token was already used; ask for a new one"
	case "token_expired":
		return http.StatusGone, "token", "this enrolment token has expired; ask for a new one"
	case "bad_csr":
		return http.StatusBadRequest, "csr", "not a valid PEM certificate request"
	case "key_not_allowed":
		return http.StatusBadRequest, "csr", "the key must be ECDSA P-256 or Ed25519"
	case "invalid_request":
		return http.StatusBadRequest, "", "invalid request"
	default: // token_invalid and anything new
		return http.StatusUnauthorized, "token", "enrolment token refused"
	}
}

// decodeStrict reads one JSON object of at most maxEnrolBody bytes into
// v: no unknown fields, nothing after it. fields names what the object
// holds, for the error.
func decodeStrict(r io.Reader, v any, fields string) error {
	data, err := io.ReadAll(io.LimitReader(r, maxEnrolBody+1))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if len(data) > maxEnrolBody {
		return &fieldError{"", fmt.Sprintf("body above %d bytes", maxEnrolBody)}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &fieldError{"", "body must be one JSON object with " + fields}
	}
	if dec.More() {
		return &fieldError{"", "body must be one JSON object"}
	}
	return nil
}
