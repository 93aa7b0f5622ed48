package sms

import (
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseReply: an inbound text is outside bytes. A reply is accepted
// only as ACK and an optional short alphanumeric code, which comes back
// upper-cased and appears in the input.
func FuzzParseReply(f *testing.F) {
	f.Add("ack 1234")
	f.Fuzz(func(t *testing.T, body string) {
		code, ok := ParseReply(body)
		if !ok {
			if code != "" {
				t.Fatalf("ParseReply(%q) = %q, false", body, code)
			}
			return
		}
		if len(body) > maxReply || !utf8.ValidString(body) {
			t.Fatalf("ParseReply accepted %q", body)
		}
		if !strings.Contains(strings.ToUpper(body), "ACK") {
			t.Fatalf("ParseReply(%q) accepted a text without ACK", body)
		}
		if len(code) > 16 || code != strings.ToUpper(code) || !strings.Contains(strings.ToUpper(body), code) {
			t.Fatalf("ParseReply(%q) = %q", body, code)
		}
		for _, r := range code {
			if !('0' <= r && r <= '9' || 'A' <= r && r <= 'Z') {
				t.Fatalf("ParseReply(%q) = %q: not alphanumeric", body, code)
			}
		}
	})
}

// FuzzSignatureHeader: the X-Twilio-Signature header and the form are
// outside bytes. Parsing never panics, yields 20 bytes or nothing, and a
// header verifies only if it is the signature of that form.
func FuzzSignatureHeader(f *testing.F) {
	f.Add("GvWf1cFY/Q7PnoempGyD5oXAezc=", "Body=ack+1&From=%2B447700900123")
	f.Fuzz(func(t *testing.T, header, rawForm string) {
		if b, ok := parseSignatureHeader(header); ok != (len(b) == sha1.Size) {
			t.Fatalf("parseSignatureHeader(%q) = %x, %v", header, b, ok)
		}
		form, err := url.ParseQuery(rawForm)
		if err != nil {
			return
		}
		const token, u = "k", "https://vigil.example/sms/inbound"
		if validSignature([]byte(token), u, form, header) {
			want := Signature(token, u, form)
			if strings.TrimSpace(header) != want {
				t.Fatalf("header %q verified; the signature is %q", header, want)
			}
		}
		// The real signature always verifies, also with space around it.
		if sig := Signature(token, u, form); !validSignature([]byte(token), u, form, " "+sig+" ") {
			t.Fatalf("own signature %q of %q does not verify", sig, rawForm)
		}
		if _, err := base64.StdEncoding.DecodeString(Signature(token, u, form)); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzProviderResponse: the provider's answer is outside bytes. Only a
// plain sid and a positive code are taken from it.
func FuzzProviderResponse(f *testing.F) {
	f.Add([]byte(`{"sid":"SM123","status":"queued"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		sid, code := parseResponse(raw)
		if sid != "" && !validSID(sid) {
			t.Fatalf("parseResponse(%q) sid %q", raw, sid)
		}
		if code < 0 || code >= 1e9 {
			t.Fatalf("parseResponse(%q) code %d", raw, code)
		}
	})
}
