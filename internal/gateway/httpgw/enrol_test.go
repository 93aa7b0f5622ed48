package httpgw_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"vigil/internal/gateway/httpgw"
)

type refusal string

func (r refusal) Error() string       { return "refused: " + string(r) }
func (r refusal) RefusalCode() string { return string(r) }

// fakeEnroller accepts token "good" for device "da" and refuses by the
// token's name otherwise.
type fakeEnroller struct{ calls int }

func (f *fakeEnroller) Enrol(_ context.Context, deviceID, token string, csr []byte) ([]byte, []byte, error) {
	f.calls++
	switch token {
	case "good":
		return []byte("CERT " + deviceID), []byte("CA"), nil
	case "broken":
		return nil, nil, io.ErrUnexpectedEOF
	default:
		return nil, nil, refusal(token)
	}
}

func postEnrol(t *testing.T, h http.Handler, ctype, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", "/api/v1/enrol", strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestEnrolHandler(t *testing.T) {
	f := &fakeEnroller{}
	h := httpgw.EnrolHandler(f, slog.New(slog.DiscardHandler))
	body := func(dev, tok string) string {
		b, _ := json.Marshal(map[string]string{"device_id": dev, "token": tok, "csr": "-----BEGIN CERTIFICATE REQUEST-----"})
		return string(b)
	}
	for _, tc := range []struct {
		name, ctype, body string
		want              int
		wantCode          string
	}{
		{"ok", "application/json", body("da", "good"), 200, ""},
		{"used", "application/json", body("da", "token_used"), 410, "token_used"},
		{"expired", "application/json", body("da", "token_expired"), 410, "token_expired"},
		{"invalid", "application/json", body("da", "token_invalid"), 401, "token_invalid"},
		{"rsa", "application/json", body("da", "key_not_allowed"), 400, "key_not_allowed"},
		{"store down", "application/json", body("da", "broken"), 503, "unavailable"},
		{"wrong type", "text/plain", body("da", "good"), 415, "unsupported_media_type"},
		{"unknown field", "application/json", `{"device_id":"da","token":"good","csr":"x","admin":true}`, 400, "invalid_request"},
		{"bad device id", "application/json", body("../da", "good"), 400, "invalid_request"},
		{"empty token", "application/json", body("da", ""), 400, "invalid_request"},
		{"two objects", "application/json", body("da", "good") + body("da", "good"), 400, "invalid_request"},
		{"too large", "application/json", `{"device_id":"da","token":"good","csr":"` + strings.Repeat("A", 20<<10) + `"}`, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := postEnrol(t, h, tc.ctype, tc.body)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
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
					Code      string
					RequestID string `json:"request_id"`
				}
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code != tc.wantCode || e.Error.RequestID == "" {
				t.Errorf("error body %s, want code %s", rec.Body, tc.wantCode)
			}
		})
	}
}

// FuzzDecodeEnrolRequest feeds arbitrary bodies to the enrolment decoder:
// never a panic, and an accepted request always within its limits.
func FuzzDecodeEnrolRequest(f *testing.F) {
	f.Add([]byte(`{"device_id":"da","token":"abc","csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Add([]byte(`{"device_id":"da","token":"abc"}`))
	f.Add([]byte(`{"device_id":"DA","token":"a b","csr":"x"}`))
	f.Add([]byte(`{"device_id":"da","token":"abc","csr":"x"} {}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := httpgw.DecodeEnrolRequest(bytes.NewReader(body))
		if err != nil {
			if strings.Contains(err.Error(), string(body)) && len(body) > 8 {
				t.Fatalf("error repeats the body: %v", err)
			}
			return
		}
		if req.DeviceID == "" || len(req.DeviceID) > 64 || req.Token == "" || len(req.Token) > 128 || req.CSR == "" || len(req.CSR) > 8<<10 {
			t.Fatalf("accepted out of limits: %+v", req)
		}
		if !utf8.ValidString(req.DeviceID) || !utf8.ValidString(req.Token) {
			t.Fatalf("accepted invalid UTF-8: %+v", req)
		}
	})
}
