package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fuzzKey is a fixed key so the seed corpus can hold a valid value.
func fuzzSealer(t testing.TB) *Sealer {
	t.Helper()
	k := Key{id: [idLen]byte{0x5e, 0xa1, 0x00, 0x01}, secret: make([]byte, keyLen)}
	for i := range k.secret {
		k.secret[i] = byte(i)
	}
	return newSealer(t, k)
}

var fuzzAAD = []byte("totp:fuzz-user")

// validFuzzValue is "JBSWY3DPEHPK3PXP" sealed under fuzzSealer with nonce
// 07…07 and fuzzAAD: the first seed in testdata/fuzz/FuzzOpen.
func validFuzzValue(t testing.TB, s *Sealer) []byte {
	t.Helper()
	e := s.current
	out := []byte{version1}
	out = append(out, e.key.id[:]...)
	nonce := bytes.Repeat([]byte{7}, nonceLen)
	out = append(out, nonce...)
	return e.aead.Seal(out, nonce, []byte("JBSWY3DPEHPK3PXP"), additional(out[:headerLen], fuzzAAD))
}

// FuzzOpen feeds Open arbitrary values and additional data: it must never
// panic, every failure must be ErrIntegrity with no plaintext, and the only
// value that opens is the genuine one with its own AAD.
func FuzzOpen(f *testing.F) {
	s := fuzzSealer(f)
	valid := validFuzzValue(f, s)
	f.Add(valid, fuzzAAD)
	f.Fuzz(func(t *testing.T, ct, aad []byte) {
		pt, err := s.Open(ct, aad)
		if err != nil {
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("error %v is not ErrIntegrity", err)
			}
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			return
		}
		if !bytes.Equal(ct, valid) || !bytes.Equal(aad, fuzzAAD) {
			t.Fatalf("forged value opened: ct=%x aad=%q pt=%q", ct, aad, pt)
		}
		if string(pt) != "JBSWY3DPEHPK3PXP" {
			t.Fatalf("genuine value opened to %q", pt)
		}
	})
}

// TestFuzzOpenSeedIsValid keeps the checked-in corpus meaningful: its first
// seed must be the genuine value, so the fuzzer mutates a real ciphertext.
func TestFuzzOpenSeedIsValid(t *testing.T) {
	s := fuzzSealer(t)
	valid := validFuzzValue(t, s)
	data, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzOpen", "valid"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(quoteBytes(valid))) {
		t.Fatalf("testdata/fuzz/FuzzOpen/valid does not hold the genuine value %s", quoteBytes(valid))
	}
	if _, err := s.Open(valid, fuzzAAD); err != nil {
		t.Fatal(err)
	}
}

func quoteBytes(b []byte) string {
	const hexd = "0123456789abcdef"
	out := []byte(`[]byte("`)
	for _, c := range b {
		out = append(out, '\\', 'x', hexd[c>>4], hexd[c&15])
	}
	return string(append(out, `")`...))
}
