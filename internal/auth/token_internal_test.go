package auth

import (
	"encoding/base64"
	"testing"
)

// Security row 23: session ids (and every other token) are 256-bit
// random values; 10,000 samples are all distinct and full length.
func TestTokenEntropy(t *testing.T) {
	seen := make(map[string]bool, 10000)
	for i := 0; i < 10000; i++ {
		tok, h, err := randomToken("", 32)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) != 32 {
			t.Fatalf("token %q: %d bytes, %v; want 32 random bytes", tok, len(raw), err)
		}
		if len(h) != 32 || string(h) == string(raw) {
			t.Fatalf("stored form of a token must be its SHA-256, not the token")
		}
		if seen[tok] {
			t.Fatalf("token repeated after %d samples", i)
		}
		seen[tok] = true
	}
	ones := 0
	for tok := range seen {
		raw, _ := base64.RawURLEncoding.DecodeString(tok)
		for _, b := range raw {
			for ; b != 0; b &= b - 1 {
				ones++
			}
		}
	}
	// 10,000 × 256 bits: half of them set, within a wide margin.
	if frac := float64(ones) / (10000 * 256); frac < 0.49 || frac > 0.51 {
		t.Fatalf("bit balance %.4f, want about 0.5", frac)
	}
}
