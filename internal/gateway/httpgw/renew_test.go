package httpgw_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"vigil/internal/gateway/httpgw"
)

// rateRefusal is a refusal with a message and a retry time.
type rateRefusal struct{}

func (rateRefusal) Error() string          { return "refused" }
func (rateRefusal) RefusalCode() string    { return "rate_limited" }
func (rateRefusal) RefusalMessage() string { return "too many renewal attempts" }
func (rateRefusal) RetryAfterSeconds() int { return 42 }

// fakeRenewer answers by the CSR text: "ok" issues, "broken" fails, any
// other text is the refusal code.
type fakeRenewer struct{ chain []*x509.Certificate }

func (f *fakeRenewer) Renew(_ context.Context, chain []*x509.Certificate, csr []byte) (string, []byte, []byte, error) {
	f.chain = chain
	switch string(csr) {
	case "ok":
		return "da", []byte("CERT da"), []byte("CA"), nil
	case "broken":
		return "da", nil, nil, io.ErrUnexpectedEOF
	case "rate_limited":
		return "da", nil, nil, rateRefusal{}
	default:
		return "da", nil, nil, refusal(csr)
	}
}

func TestRenewHandler(t *testing.T) {
	f := &fakeRenewer{}
	h := httpgw.RenewHandler(f, slog.New(slog.DiscardHandler))
	body := func(csr string) string {
		b, _ := json.Marshal(map[string]string{"csr": csr})
		return string(b)
	}
	leaf := &x509.Certificate{Raw: []byte("leaf")}
	for _, tc := range []struct {
		name, ctype, body string
		peer              bool
		want              int
		wantCode          string
		wantField         string
	}{
		{"ok", "application/json", body("ok"), true, 200, "", ""},
		{"no certificate", "application/json", body("client_cert_required"), false, 401, "client_cert_required", ""},
		{"invalid certificate", "application/json", body("client_cert_invalid"), true, 401, "client_cert_invalid", ""},
		{"revoked", "application/json", body("device_revoked"), true, 403, "device_revoked", ""},
		{"not current", "application/json", body("cert_not_current"), true, 403, "cert_not_current", ""},
		{"wrong device", "application/json", body("csr_wrong_device"), true, 400, "csr_wrong_device", "csr"},
		{"key reused", "application/json", body("key_reused"), true, 400, "key_reused", "csr"},
		{"bad csr", "application/json", body("bad_csr"), true, 400, "bad_csr", "csr"},
		{"too early", "application/json", body("too_early"), true, 409, "too_early", ""},
		{"rate limited", "application/json", body("rate_limited"), true, 429, "rate_limited", ""},
		{"store down", "application/json", body("broken"), true, 503, "unavailable", ""},
		{"wrong type", "text/plain", body("ok"), true, 415, "unsupported_media_type", ""},
		{"unknown field", "application/json", `{"csr":"ok","device_id":"db"}`, true, 400, "invalid_request", ""},
		{"empty csr", "application/json", body(""), true, 400, "invalid_request", "csr"},
		{"two objects", "application/json", body("ok") + body("ok"), true, 400, "invalid_request", ""},
		{"too large", "application/json", body(strings.Repeat("A", 20<<10)), true, 400, "invalid_request", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.chain = nil
			req := httptest.NewRequest("POST", "/api/v1/enrol/renew", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ctype)
			if tc.peer {
				req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
			if tc.peer && tc.want != 415 && !strings.HasPrefix(tc.wantCode, "invalid") && (len(f.chain) != 1 || f.chain[0] != leaf) {
				t.Errorf("the renewer got chain %v, want the presented certificate", f.chain)
			}
			if tc.want == 200 {
				var out httpgw.EnrolResponse
				if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Certificate != "CERT da" || out.CA != "CA" || out.DeviceID != "da" {
					t.Errorf("body %s (%v)", rec.Body, err)
				}
				return
			}
			var e struct {
				Error struct {
					Code, Field, Message string
					RequestID            string `json:"request_id"`
				}
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code != tc.wantCode || e.Error.Field != tc.wantField || e.Error.RequestID == "" || e.Error.Message == "" {
				t.Errorf("error body %s, want code %s field %q", rec.Body, tc.wantCode, tc.wantField)
			}
			if tc.want == 429 && rec.Header().Get("Retry-After") != "42" {
				t.Errorf("Retry-After %q, want 42", rec.Header().Get("Retry-After"))
			}
		})
	}
}

// FuzzDecodeRenewRequest feeds arbitrary bodies to the renewal decoder:
// never a panic, an error never repeats the body, and an accepted request
// always has a CSR within its limit.
func FuzzDecodeRenewRequest(f *testing.F) {
	f.Add([]byte(`{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Add([]byte(`{"csr":""}`))
	f.Add([]byte(`{"csr":"x","device_id":"da"}`))
	f.Add([]byte(`{"csr":"x"} {}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := httpgw.DecodeRenewRequest(bytes.NewReader(body))
		if err != nil {
			if strings.Contains(err.Error(), string(body)) && len(body) > 8 {
				t.Fatalf("error repeats the body: %v", err)
			}
			return
		}
		if req.CSR == "" || len(req.CSR) > 8<<10 {
			t.Fatalf("accepted out of limits: %d bytes of CSR", len(req.CSR))
		}
		if len(body) > 16<<10 {
			t.Fatalf("accepted a body of %d bytes", len(body))
		}
	})
}
