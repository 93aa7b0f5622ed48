package mfa

import (
	"bytes"
	"crypto/sha256"
	"regexp"
	"strings"
	"testing"
)

var codeShape = regexp.MustCompile(`^[a-z2-7]{5}-[a-z2-7]{5}-[a-z2-7]{5}-[a-z2-7]{5}$`)

func TestNewRecoveryCodes(t *testing.T) {
	codes, hashes, err := NewRecoveryCodes(RecoveryCodeCount)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 10 || len(hashes) != 10 {
		t.Fatalf("got %d codes, %d hashes; want 10, 10", len(codes), len(hashes))
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if !codeShape.MatchString(c) {
			t.Errorf("code %q has the wrong shape", c)
		}
		// 20 base32 characters = 100 bits ≥ 80.
		if n := len(strings.ReplaceAll(c, "-", "")) * 5; n < 80 {
			t.Errorf("code carries %d bits", n)
		}
		if seen[c] {
			t.Errorf("duplicate code %q", c)
		}
		seen[c] = true
		if !bytes.Equal(hashes[i], HashRecoveryCode(c)) {
			t.Errorf("hash %d does not match its code", i)
		}
		if bytes.Contains(hashes[i], []byte(c)) {
			t.Error("hash contains the code")
		}
	}
	// Across batches too.
	more, _, err := NewRecoveryCodes(RecoveryCodeCount)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range more {
		if seen[c] {
			t.Errorf("code %q repeated across batches", c)
		}
	}
	for _, n := range []int{0, -1, 101} {
		if _, _, err := NewRecoveryCodes(n); err == nil {
			t.Errorf("NewRecoveryCodes(%d) succeeded", n)
		}
	}
}

func TestHashRecoveryCodeNormalises(t *testing.T) {
	const code = "abcde-fghij-klmno-pqrst"
	want := sha256.Sum256([]byte("abcdefghijklmnopqrst"))
	for _, typed := range []string{
		code, "ABCDE-FGHIJ-KLMNO-PQRST", "abcde fghij klmno pqrst", "abcdefghijklmnopqrst",
		"  abcde-fghij-klmno-pqrst\n", "AbCdE--FgHiJ KLMNO\tpqrst",
	} {
		if got := HashRecoveryCode(typed); !bytes.Equal(got, want[:]) {
			t.Errorf("HashRecoveryCode(%q) differs from the normalised hash", typed)
		}
	}
	if bytes.Equal(HashRecoveryCode("abcde-fghij-klmno-pqrsu"), want[:]) {
		t.Error("a different code hashes alike")
	}
}

func TestMatchRecoveryCode(t *testing.T) {
	codes, hashes, err := NewRecoveryCodes(RecoveryCodeCount)
	if err != nil {
		t.Fatal(err)
	}
	if got := MatchRecoveryCode(strings.ToUpper(codes[3]), hashes); got != 3 {
		t.Errorf("match = %d, want 3", got)
	}
	for _, bad := range []string{"", "x", codes[3] + "a", strings.Repeat(codes[3], 10)} {
		if got := MatchRecoveryCode(bad, hashes); got != -1 {
			t.Errorf("MatchRecoveryCode(%q) = %d, want -1", bad, got)
		}
	}
	if got := MatchRecoveryCode(codes[0], nil); got != -1 {
		t.Errorf("no hashes: %d", got)
	}
}
