package password_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"

	"vigil/internal/auth/password"
)

func mustHash(t *testing.T, pw string, p password.Params) string {
	t.Helper()
	h, err := password.Hash(pw, p)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return h
}

// fast are cheap parameters for tests of behaviour that does not depend on
// the cost: under the race detector a hash at DefaultParams takes half a
// second.
var fast = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerify(t *testing.T) {
	cur := fast
	h := mustHash(t, "tide lamp grove", cur)
	for _, tc := range []struct {
		pw   string
		want bool
	}{
		{"tide lamp grove", true},
		{"tide lamp grovE", false},
		{"tide lamp grove ", false},
		{"", false},
	} {
		ok, rehash, err := password.Verify(h, tc.pw, cur)
		if err != nil {
			t.Fatalf("Verify(%q): %v", tc.pw, err)
		}
		if ok != tc.want || rehash {
			t.Errorf("Verify(%q) = %v, %v; want %v, false", tc.pw, ok, rehash, tc.want)
		}
	}
}

func TestDefaultParamsInHash(t *testing.T) {
	h := mustHash(t, "tide lamp grove", password.DefaultParams())
	if want := "$argon2id$v=19$m=19456,t=2,p=1$"; !strings.HasPrefix(h, want) {
		t.Errorf("hash %q does not start with %q", h, want)
	}
	p, err := password.Parse(h)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	// Security row 19: the OWASP minimum for argon2id.
	floor := password.Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	if !p.AtLeast(floor) {
		t.Errorf("parsed params %+v below the minimum %+v", p, floor)
	}
	if p != password.DefaultParams() {
		t.Errorf("parsed params %+v, want %+v", p, password.DefaultParams())
	}
	f := strings.Split(h, "$")
	salt, err := base64.RawStdEncoding.DecodeString(f[4])
	if err != nil || len(salt) != 16 {
		t.Errorf("salt %q: %d bytes, %v; want 16 bytes of raw std base64", f[4], len(salt), err)
	}
}

func TestSamePasswordDifferentHashes(t *testing.T) {
	p := password.DefaultParams()
	a, b := mustHash(t, "tide lamp grove", p), mustHash(t, "tide lamp grove", p)
	if a == b {
		t.Fatalf("two hashes of one password are equal: %q", a)
	}
	if strings.Split(a, "$")[4] == strings.Split(b, "$")[4] {
		t.Errorf("two hashes share a salt")
	}
}

// Security row 18: no truncation. A 100-character password with its 90th
// character changed must not verify.
func TestNoTruncation(t *testing.T) {
	p := fast
	pw := []rune(strings.Repeat("the quick brown fox jumps over ", 4)[:100])
	h := mustHash(t, string(pw), p)
	if ok, _, err := password.Verify(h, string(pw), p); !ok || err != nil {
		t.Fatalf("Verify(right password) = %v, %v", ok, err)
	}
	changed := append([]rune(nil), pw...)
	changed[89] = 'X'
	if ok, _, err := password.Verify(h, string(changed), p); ok || err != nil {
		t.Errorf("Verify(character 90 changed) = %v, %v; want false, nil", ok, err)
	}
	if ok, _, _ := password.Verify(h, string(pw[:99]), p); ok {
		t.Errorf("Verify(first 99 characters) = true")
	}
	// The longest password the policy accepts counts to its last character.
	long := []rune(strings.Repeat("abcdefghij", password.MaxLen/10+1)[:password.MaxLen])
	h = mustHash(t, string(long), p)
	long[password.MaxLen-1] = 'z'
	if ok, _, _ := password.Verify(h, string(long), p); ok {
		t.Errorf("Verify(%d characters, last changed) = true", password.MaxLen)
	}
}

// Security row 18: the same password in NFC and NFD verifies either way.
func TestNormalisation(t *testing.T) {
	p := fast
	nfc := norm.NFC.String("crème brûlée à l'ancienne")
	nfd := norm.NFD.String(nfc)
	if nfc == nfd {
		t.Fatal("test password has the same NFC and NFD forms")
	}
	for _, tc := range []struct{ set, login string }{{nfc, nfd}, {nfd, nfc}, {"ｔｉｄｅ ｌａｍｐ ｇｒｏｖｅ", "tide lamp grove"}} {
		h := mustHash(t, tc.set, p)
		if ok, _, err := password.Verify(h, tc.login, p); !ok || err != nil {
			t.Errorf("set %+q, login %+q: Verify = %v, %v; want true", tc.set, tc.login, ok, err)
		}
	}
}

// Security row 19: a hash with old parameters verifies and asks to be
// rewritten; the rewritten one does not.
func TestNeedsRehash(t *testing.T) {
	cur := password.DefaultParams()
	old := password.Params{Memory: 4096, Time: 3, Threads: 1, SaltLen: 16, KeyLen: 32}
	h := mustHash(t, "tide lamp grove", old)
	if !strings.Contains(h, "$m=4096,t=3,p=1$") {
		t.Fatalf("old hash %q", h)
	}
	ok, rehash, err := password.Verify(h, "tide lamp grove", cur)
	if !ok || !rehash || err != nil {
		t.Fatalf("Verify(old hash) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	if ok, rehash, _ := password.Verify(h, "wrong lamp grove", cur); ok || rehash {
		t.Errorf("Verify(old hash, wrong password) = %v, %v; want false, false", ok, rehash)
	}
	h2 := mustHash(t, "tide lamp grove", cur)
	if ok, rehash, _ := password.Verify(h2, "tide lamp grove", cur); !ok || rehash {
		t.Errorf("Verify(rewritten hash) = %v, %v; want true, false", ok, rehash)
	}
	p, _ := password.Parse(h)
	if p.AtLeast(cur) {
		t.Errorf("old params %+v reported at least %+v", p, cur)
	}
}

func TestMalformed(t *testing.T) {
	good := "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ"
	if _, err := password.Parse(good); err != nil {
		t.Fatalf("Parse(good) = %v", err)
	}
	for _, bad := range []string{
		"",
		"$",
		"plain text",
		"$argon2id",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2d$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$ARGON2ID$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$t=1,m=64,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=64,t=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=64,t=1,p=1,keyid=x$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=064,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=+64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=64 ,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=99999999999,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=4,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=64,t=1000,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=4096,t=1,p=256$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA==$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRz\nYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdB$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq-fSEmI6v3MFnmKm4i_k4cXQfsX2SRQ",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq",
		"$argon2id$v=19$m=64,t=1,p=1$$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ$",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ ",
		" $argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$uZ4ii2qjfDyKq+fSEmI6v3MFnmKm4i+k4cXQfsX2SRQ",
		"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		good + strings.Repeat("A", 300),
	} {
		ok, rehash, err := password.Verify(bad, "tide lamp grove", password.DefaultParams())
		if err == nil || ok || rehash {
			t.Errorf("Verify(%q) = %v, %v, %v; want an error", bad, ok, rehash, err)
			continue
		}
		if !errors.Is(err, password.ErrMalformed) {
			t.Errorf("Verify(%q) error %v does not wrap ErrMalformed", bad, err)
		}
		if strings.Contains(err.Error(), "tide") || (len(bad) > 8 && strings.Contains(err.Error(), bad)) {
			t.Errorf("error %q repeats its input", err)
		}
		if _, err := password.Parse(bad); err == nil {
			t.Errorf("Parse(%q) = nil error", bad)
		}
	}
}

func TestHashRefusesBadParams(t *testing.T) {
	for _, p := range []password.Params{
		{},
		{Memory: 19456, Time: 2, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 8},
		{Memory: 19456, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 19456, Time: 2, Threads: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 1 << 30, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32},
	} {
		if h, err := password.Hash("tide lamp grove", p); err == nil {
			t.Errorf("Hash(%+v) = %q, want an error", p, h)
		}
	}
	if _, err := password.Hash(strings.Repeat("x", 17<<10), password.DefaultParams()); !errors.Is(err, password.ErrTooLong) {
		t.Errorf("Hash(17 KiB) error = %v, want ErrTooLong", err)
	}
}

func TestDummyVerify(t *testing.T) {
	// It must neither panic nor need valid params.
	password.DummyVerify("tide lamp grove", password.DefaultParams())
	password.DummyVerify("", password.Params{})
}

func BenchmarkHash(b *testing.B) {
	p := password.DefaultParams()
	for b.Loop() {
		if _, err := password.Hash("tide lamp grove", p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	p := password.DefaultParams()
	h, err := password.Hash("tide lamp grove", p)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		password.Verify(h, "wrong lamp grove", p)
	}
}

func BenchmarkDummyVerify(b *testing.B) {
	p := password.DefaultParams()
	for b.Loop() {
		password.DummyVerify("wrong lamp grove", p)
	}
}
