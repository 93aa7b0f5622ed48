package datakey

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzDEKID and fuzzDEK are the fixed data key the seed corpus was sealed
// with (testdata/fuzz/FuzzOpen/valid).
const fuzzDEKID = "f00dfacecafe0001"

var (
	fuzzDEK   = bytes.Repeat([]byte{0x42}, dekLen)
	fuzzAAD   = Field("people", "medical_notes", "p-fuzz")
	fuzzPlain = []byte("asthma; inhaler in left pocket")
)

// fuzzKeyring is a keyring holding the fixed key, wrapped by a fixed KEK
// written to a temporary key file.
func fuzzKeyring(t testing.TB) *Keyring {
	t.Helper()
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i)
	}
	path := filepath.Join(t.TempDir(), "kek.key")
	if err := os.WriteFile(path, []byte("0a0b0c0d "+base64.StdEncoding.EncodeToString(secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kek, err := OpenFileKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	owner := PersonOwner("p-fuzz")
	wrapped, err := kek.Wrap(fuzzDEK, wrapAAD(fuzzDEKID, owner))
	if err != nil {
		t.Fatal(err)
	}
	ks := newMemKeys()
	ks.byID[fuzzDEKID] = WrappedKey{ID: fuzzDEKID, Owner: owner, KEKID: kek.KeyID(), Wrapped: wrapped, CreatedAt: time.Unix(0, 0)}
	return New(ks, kek, Config{})
}

// fuzzValid is fuzzPlain sealed under the fixed key with nonce 07…07.
func fuzzValid(t testing.TB) []byte {
	t.Helper()
	block, err := aes.NewCipher(fuzzDEK)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := hex.DecodeString(fuzzDEKID)
	out := append([]byte{version1}, id...)
	nonce := bytes.Repeat([]byte{7}, nonceLen)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, fuzzPlain, additional(out[:headerLen], fuzzAAD))
}

// TestFuzzSeedValid keeps the seed corpus honest: testdata's "valid" seed
// is the genuine value, so the fuzzer starts from one that opens.
func TestFuzzSeedValid(t *testing.T) {
	want := fuzzValid(t)
	kr := fuzzKeyring(t)
	got, err := kr.Open(context.Background(), want, fuzzAAD)
	if err != nil || !bytes.Equal(got, fuzzPlain) {
		t.Fatalf("Open(valid) = %q, %v", got, err)
	}
	seed, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzOpen", "valid"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(seed, []byte(hex.EncodeToString(want))) && !bytes.Contains(seed, []byte(quoteBytes(want))) {
		t.Errorf("testdata/fuzz/FuzzOpen/valid is not the genuine value; regenerate it: want []byte(%s)", quoteBytes(want))
	}
}

func quoteBytes(b []byte) string {
	var s bytes.Buffer
	s.WriteByte('"')
	for _, c := range b {
		s.WriteString(`\x`)
		s.WriteString(hex.EncodeToString([]byte{c}))
	}
	s.WriteByte('"')
	return s.String()
}

// FuzzOpen feeds Open arbitrary values and places: it must never panic,
// every failure returns no plaintext and is ErrIntegrity, ErrUnknownKey
// or ErrDestroyed, and the only value that opens is the genuine one in its
// own place.
func FuzzOpen(f *testing.F) {
	kr := fuzzKeyring(f)
	valid := fuzzValid(f)
	f.Add(valid, fuzzAAD)
	f.Fuzz(func(t *testing.T, ct, aad []byte) {
		got, err := kr.Open(context.Background(), ct, aad)
		if err != nil {
			if got != nil {
				t.Fatalf("error %v came with plaintext %q", err, got)
			}
			if !errors.Is(err, ErrIntegrity) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrDestroyed) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if !bytes.Equal(ct, valid) || !bytes.Equal(aad, fuzzAAD) || !bytes.Equal(got, fuzzPlain) {
			t.Fatalf("Open(%x, %q) = %q: only the genuine value may open", ct, aad, got)
		}
	})
}
