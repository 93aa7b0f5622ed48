package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzParseSignatures: the Vigil-Signature header is outside bytes. Any
// input yields either ErrNoSignature or 1 to maxSignatures 32-byte values
// that appear, hex-encoded after "v1=", in the input.
func FuzzParseSignatures(f *testing.F) {
	f.Add("v1=" + strings.Repeat("ab", 32))
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		sigs, err := parseSignatures(v)
		if err != nil {
			if !errors.Is(err, ErrNoSignature) || sigs != nil {
				t.Fatalf("parseSignatures(%q) = %v, %v", v, sigs, err)
			}
			return
		}
		if len(sigs) == 0 || len(sigs) > maxSignatures {
			t.Fatalf("parseSignatures(%q) returned %d signatures", v, len(sigs))
		}
		for _, s := range sigs {
			if len(s) != sha256.Size {
				t.Fatalf("signature of %d bytes", len(s))
			}
			if !strings.Contains(strings.ToLower(v), "v1="+hex.EncodeToString(s)) {
				t.Fatalf("signature %x not in the input %q", s, v)
			}
		}
	})
}

// FuzzVerify: arbitrary timestamp and signature headers never verify
// unless they carry the right MAC for that timestamp, and never panic.
func FuzzVerify(f *testing.F) {
	f.Add("1772373780", "v1="+strings.Repeat("00", 32), []byte("{}"))
	f.Add("1772373780", "v1=56c191106e2d1f3e0c588e66cebe7243150bf9ad8fc89287e07ff5754a214366", []byte("{}"))
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		key := []byte("k")
		h := http.Header{}
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		now := time.Unix(1772373780, 0)
		err := Verify(key, h, body, now, time.Hour)
		if err != nil {
			return
		}
		want := []byte(hex.EncodeToString(mac(key, ts, body)))
		if !bytes.Contains(bytes.ToLower([]byte(sig)), want) {
			t.Fatalf("Verify accepted ts=%q sig=%q without the right MAC", ts, sig)
		}
	})
}
