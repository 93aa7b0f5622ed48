package mfa

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strings"
	"unicode"
)

const (
	// RecoveryCodeCount is how many recovery codes a user gets.
	RecoveryCodeCount = 10
	recoveryGroups    = 4
	recoveryGroupLen  = 5 // 4×5 base32 characters = 100 bits
	recoveryMaxInput  = 128
)

var recoveryEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewRecoveryCodes returns n distinct recovery codes of 100 random bits,
// written xxxxx-xxxxx-xxxxx-xxxxx in lower-case base32, and their hashes
// (HashRecoveryCode) in the same order. Show the codes once; store only the
// hashes.
func NewRecoveryCodes(n int) (codes []string, hashes [][]byte, err error) {
	if n < 1 || n > 100 {
		return nil, nil, fmt.Errorf("mfa: recovery codes: n = %d, want 1..100", n)
	}
	seen := make(map[string]bool, n)
	var raw [13]byte // 104 bits; the first 100 become 20 characters
	for len(codes) < n {
		if _, err := rand.Read(raw[:]); err != nil {
			return nil, nil, fmt.Errorf("mfa: recovery codes: %w", err)
		}
		s := recoveryEncoding.EncodeToString(raw[:])[:recoveryGroups*recoveryGroupLen]
		if seen[s] {
			continue
		}
		seen[s] = true
		var b strings.Builder
		for g := range recoveryGroups {
			if g > 0 {
				b.WriteByte('-')
			}
			b.WriteString(s[g*recoveryGroupLen : (g+1)*recoveryGroupLen])
		}
		codes = append(codes, b.String())
		hashes = append(hashes, HashRecoveryCode(b.String()))
	}
	return codes, hashes, nil
}

// HashRecoveryCode is the SHA-256 of the normalised code: spaces and dashes
// removed, lower case, so "ABCDE FGHIJ-…" and "abcde-fghij-…" hash alike.
func HashRecoveryCode(code string) []byte {
	sum := sha256.Sum256([]byte(normaliseRecoveryCode(code)))
	return sum[:]
}

// MatchRecoveryCode returns the index of the hash in hashes that code
// matches, comparing against every hash in constant time, or -1. Input
// longer than 128 bytes never matches.
func MatchRecoveryCode(code string, hashes [][]byte) int {
	if len(code) > recoveryMaxInput {
		return -1
	}
	h := HashRecoveryCode(code)
	found := -1
	for i, want := range hashes {
		if subtle.ConstantTimeCompare(h, want) == 1 {
			found = i
		}
	}
	return found
}

func normaliseRecoveryCode(code string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToLower(r)
	}, code)
}
