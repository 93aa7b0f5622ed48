package seal

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newKey(t testing.TB) Key {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newSealer(t testing.TB, keys ...Key) *Sealer {
	t.Helper()
	s, err := New(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := newSealer(t, newKey(t))
	for _, pt := range [][]byte{nil, {}, []byte("x"), []byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"), bytes.Repeat([]byte{0xAB}, 4096)} {
		ct, err := s.Seal(pt, []byte("totp:u1"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(ct), len(pt)+overhead; got != want {
			t.Errorf("len(ct) = %d, want %d", got, want)
		}
		if ct[0] != version1 {
			t.Errorf("version byte = %#x, want %#x", ct[0], version1)
		}
		if got, want := hex.EncodeToString(ct[1:5]), s.KeyID(); got != want {
			t.Errorf("key id in ct = %s, want %s", got, want)
		}
		if len(pt) > 0 && bytes.Contains(ct, pt) {
			t.Error("plaintext visible in ciphertext")
		}
		got, err := s.Open(ct, []byte("totp:u1"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("Open = %x, want %x", got, pt)
		}
	}
}

func TestSealNonceIsRandom(t *testing.T) {
	s := newSealer(t, newKey(t))
	a, _ := s.Seal([]byte("same"), nil)
	b, _ := s.Seal([]byte("same"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are equal: nonce reuse")
	}
}

func TestOpenFlipEveryByte(t *testing.T) {
	s := newSealer(t, newKey(t), newKey(t))
	aad := []byte("totp:user-42")
	ct, err := s.Seal([]byte("a 20-byte totp seed!"), aad)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ct {
		for _, mask := range []byte{0x01, 0x80, 0xFF} {
			bad := bytes.Clone(ct)
			bad[i] ^= mask
			pt, err := s.Open(bad, aad)
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("byte %d ^ %#x: err = %v, want ErrIntegrity", i, mask, err)
			}
			if pt != nil {
				t.Fatalf("byte %d ^ %#x: returned %d bytes of plaintext with the error", i, mask, len(pt))
			}
		}
	}
	// Truncation and extension are refused too.
	for n := range len(ct) {
		if _, err := s.Open(ct[:n], aad); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("truncated to %d: err = %v, want ErrIntegrity", n, err)
		}
	}
	if _, err := s.Open(append(bytes.Clone(ct), 0), aad); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("extended: err = %v, want ErrIntegrity", err)
	}
}

func TestOpenWrongAAD(t *testing.T) {
	s := newSealer(t, newKey(t))
	ct, err := s.Seal([]byte("seed"), []byte("totp:alice"))
	if err != nil {
		t.Fatal(err)
	}
	for _, aad := range [][]byte{nil, []byte("totp:bob"), []byte("totp:alice "), []byte("webauthn:alice"), []byte("TOTP:alice")} {
		if _, err := s.Open(ct, aad); !errors.Is(err, ErrIntegrity) {
			t.Errorf("aad %q: err = %v, want ErrIntegrity", aad, err)
		}
	}
}

func TestOpenWithOtherInstallKey(t *testing.T) {
	a := newSealer(t, newKey(t))
	b := newSealer(t, newKey(t))
	ct, _ := a.Seal([]byte("seed"), nil)
	if _, err := b.Open(ct, nil); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("err = %v, want ErrIntegrity", err)
	}
}

func TestRotation(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	s1 := newSealer(t, k1)
	old, err := s1.Seal([]byte("old secret"), []byte("row:1"))
	if err != nil {
		t.Fatal(err)
	}

	s2 := newSealer(t, k1, k2) // k2 added, newest last
	if got, want := s2.KeyID(), k2.ID(); got != want {
		t.Fatalf("current key = %s, want %s", got, want)
	}
	got, err := s2.Open(old, []byte("row:1"))
	if err != nil || string(got) != "old secret" {
		t.Fatalf("old value under rotated sealer: %q, %v", got, err)
	}
	if s2.SealedWithCurrent(old) {
		t.Error("SealedWithCurrent(old) = true, want false")
	}
	fresh, err := s2.Seal([]byte("new secret"), []byte("row:2"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(fresh[1:5]), k2.ID(); got != want {
		t.Errorf("new value sealed with %s, want %s", got, want)
	}
	if !s2.SealedWithCurrent(fresh) {
		t.Error("SealedWithCurrent(fresh) = false")
	}
	// The old sealer cannot open what the new key sealed.
	if _, err := s1.Open(fresh, []byte("row:2")); !errors.Is(err, ErrIntegrity) {
		t.Errorf("old sealer opened a value of the new key: %v", err)
	}
}

func TestNewRefuses(t *testing.T) {
	k := newKey(t)
	for name, keys := range map[string][]Key{
		"none":      nil,
		"zero key":  {{}},
		"duplicate": {k, k},
		"short key": {{id: [4]byte{1}, secret: make([]byte, 16)}},
	} {
		if _, err := New(keys...); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestKeyFileCreateAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	s, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", got)
	}
	ct, err := s.Seal([]byte("seed"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}

	again, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.KeyID() != s.KeyID() || again.Fingerprint() != s.Fingerprint() {
		t.Fatalf("reload: key %s/%s, want %s/%s", again.KeyID(), again.Fingerprint(), s.KeyID(), s.Fingerprint())
	}
	if pt, err := again.Open(ct, []byte("aad")); err != nil || string(pt) != "seed" {
		t.Fatalf("reload cannot open: %q, %v", pt, err)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the key file", len(ents))
	}
}

func TestKeyFileUmaskDoesNotApply(t *testing.T) {
	// The file is chmod'ed explicitly, so a lax directory or umask does not
	// matter; a group-writable directory is still the operator's choice.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kek")
	if _, err := LoadOrCreateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode = %04o, want 0600", got)
	}
}

func TestKeyFileRefusesLaxMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	if _, err := LoadOrCreateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660, 0o602, 0o620, 0o601} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateKeyFile(path)
		if err == nil {
			t.Fatalf("mode %04o accepted", mode)
		}
		if !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: error %q does not say how to fix it", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateKeyFile(path); err != nil {
			t.Errorf("mode %04o refused: %v", mode, err)
		}
	}
}

func TestKeyFileSymlinkAndGarbage(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	s, err := LoadOrCreateKeyFile(real)
	if err != nil {
		t.Fatal(err)
	}
	// A symlink (as mounted secrets are) is followed and its target checked.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if viaLink, err := LoadOrCreateKeyFile(link); err != nil || viaLink.Fingerprint() != s.Fingerprint() {
		t.Errorf("key file through a symlink: %v", err)
	}
	if err := os.Chmod(real, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeyFile(link); err == nil {
		t.Error("symlink to a 0644 key file accepted")
	}
	if _, err := LoadOrCreateKeyFile(dir); err == nil {
		t.Error("a directory accepted as key file")
	}

	k := newKey(t)
	secret := base64.StdEncoding.EncodeToString(k.secret)
	for name, content := range map[string]string{
		"empty":         "",
		"comments only": "# nothing\n",
		"bad id":        "zz112233 " + secret + "\n",
		"short id":      "1122 " + secret + "\n",
		"short key":     k.ID() + " " + base64.StdEncoding.EncodeToString(k.secret[:16]) + "\n",
		"bad base64":    k.ID() + " !!!!\n",
		"extra field":   k.ID() + " " + secret + " x\n",
		"duplicate":     k.ID() + " " + secret + "\n" + k.ID() + " " + secret + "\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateKeyFile(path)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), secret[:12]) {
			t.Errorf("%s: error leaks key material: %v", name, err)
		}
	}
}

func TestTwoInstallsDiffer(t *testing.T) {
	a, err := LoadOrCreateKeyFile(filepath.Join(t.TempDir(), "kek"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateKeyFile(filepath.Join(t.TempDir(), "kek"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Fingerprint() == b.Fingerprint() {
		t.Errorf("two installs share key fingerprint %s", a.Fingerprint())
	}
	if a.KeyID() == b.KeyID() {
		t.Errorf("two installs share key id %s", a.KeyID())
	}
	ct, _ := a.Seal([]byte("x"), nil)
	if _, err := b.Open(ct, nil); !errors.Is(err, ErrIntegrity) {
		t.Errorf("install B opened install A's value: %v", err)
	}
}

func TestConcurrentCreateAgrees(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	const n = 8
	fps := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := LoadOrCreateKeyFile(path)
			if err != nil {
				errs[i] = err
				return
			}
			fps[i] = s.Fingerprint()
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("creator %d: %v", i, errs[i])
		}
		if fps[i] != fps[0] {
			t.Fatalf("creator %d got key %s, creator 0 got %s", i, fps[i], fps[0])
		}
	}
}

func TestRotateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	s1, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := s1.Seal([]byte("old"), []byte("r"))

	s2, err := RotateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s2.KeyID() == s1.KeyID() {
		t.Fatal("rotation kept the same current key")
	}
	fi, _ := os.Stat(path)
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode after rotation = %04o, want 0600", got)
	}
	reloaded, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if reloaded.KeyID() != s2.KeyID() {
		t.Errorf("reloaded current key = %s, want %s", reloaded.KeyID(), s2.KeyID())
	}
	if pt, err := reloaded.Open(old, []byte("r")); err != nil || string(pt) != "old" {
		t.Errorf("old value after rotation: %q, %v", pt, err)
	}
	fresh, _ := reloaded.Seal([]byte("new"), []byte("r"))
	if !reloaded.SealedWithCurrent(fresh) || reloaded.SealedWithCurrent(old) {
		t.Error("SealedWithCurrent wrong after rotation")
	}
	if _, err := RotateKeyFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("RotateKeyFile created a key file from nothing")
	}
}

func TestNoKeyMaterialInOutput(t *testing.T) {
	k := newKey(t)
	s := newSealer(t, k)
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	log.Info("keys", "key", k, "sealer", s)
	log.Info("keys", "key_ptr", &k)
	text := fmt.Sprintf("%v %+v %#v %s %v %+v %#v %s %v", k, k, k, k, s, s, s, s, *s) + logged.String()
	for _, enc := range []string{
		hex.EncodeToString(k.secret),
		base64.StdEncoding.EncodeToString(k.secret),
		base64.RawURLEncoding.EncodeToString(k.secret),
		fmt.Sprint(k.secret),
		fmt.Sprintf("%x", k.secret[:8]),
	} {
		if strings.Contains(text, enc) {
			t.Fatalf("key material printed: %s", text)
		}
	}
	if !strings.Contains(text, k.ID()) {
		t.Errorf("key id missing from %q", text)
	}
}
