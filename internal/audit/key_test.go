package audit_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"vigil/internal/audit"
)

func TestAuditLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, audit.KeyFileName)
	if _, err := audit.LoadKey(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadKey of a missing file: %v, want fs.ErrNotExist", err)
	}

	// Concurrent starters all end up with the one key on disk.
	keys := make([]ed25519.PrivateKey, 8)
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = audit.LoadOrCreateKey(path) })
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatalf("LoadOrCreateKey %d: %v", i, errs[i])
		}
		if !keys[i].Equal(keys[0]) {
			t.Fatalf("starter %d got another key", i)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".audit-signing-*")); len(left) > 0 {
		t.Errorf("temp files left behind: %v", left)
	}
	again, err := audit.LoadKey(path)
	if err != nil || !again.Equal(keys[0]) {
		t.Fatalf("LoadKey: %v, same key %v", err, again.Equal(keys[0]))
	}
	msg := []byte("m")
	if !ed25519.Verify(again.Public().(ed25519.PublicKey), msg, ed25519.Sign(keys[0], msg)) {
		t.Error("the loaded key does not verify the created key's signature")
	}

	// A key others may read is refused, not replaced.
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func(string) (ed25519.PrivateKey, error){"LoadKey": audit.LoadKey, "LoadOrCreateKey": audit.LoadOrCreateKey} {
		if _, err := load(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("%s of a group-readable key: %v, want a refusal naming chmod 600", name, err)
		}
	}
	os.Chmod(path, 0o600)
	if k, err := audit.LoadOrCreateKey(path); err != nil || !k.Equal(keys[0]) {
		t.Errorf("after chmod 600: %v", err)
	}
}

func TestAuditLoadKeyRejectsJunk(t *testing.T) {
	dir := t.TempDir()
	secret := "SECRET-CONTENT-0123456789"
	for name, content := range map[string]string{
		"text":      secret,
		"other pem": "-----BEGIN CERTIFICATE-----\nU0VDUkVULUNPTlRFTlQ=\n-----END CERTIFICATE-----\n",
		"bad der":   "-----BEGIN PRIVATE KEY-----\nU0VDUkVULUNPTlRFTlQ=\n-----END PRIVATE KEY-----\n",
		"huge":      strings.Repeat("A", 1<<20),
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := audit.LoadKey(path)
		if err == nil {
			t.Errorf("%s: loaded", name)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "U0VDUkVU") {
			t.Errorf("%s: the error quotes the file: %v", name, err)
		}
		if _, err := audit.LoadOrCreateKey(path); err == nil {
			t.Errorf("%s: LoadOrCreateKey replaced or accepted it", name)
		}
	}
	if _, err := audit.LoadKey(dir); err == nil {
		t.Error("LoadKey of a directory: no error")
	}
}

func TestAuditParseAnchor(t *testing.T) {
	h := bytes.Repeat([]byte{0xab}, 32)
	hx := fmt.Sprintf("%x", h)
	want := audit.Anchor{Seq: 1000, Hash: h}
	for _, in := range []string{
		"1000:" + hx,
		"  1000:" + strings.ToUpper(hx) + "\n",
		`time=2026-03-01T09:30:00.000Z level=INFO msg="audit anchor" seq=1000 hash=` + hx,
		`{"time":"2026-03-01T09:30:00Z","level":"INFO","msg":"audit anchor","seq":1000,"hash":"` + hx + `"}`,
		want.String(),
	} {
		got, err := audit.ParseAnchor(in)
		if err != nil || got.Seq != want.Seq || !bytes.Equal(got.Hash, want.Hash) {
			t.Errorf("ParseAnchor(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "1000", "1000:", "0:" + hx, "-1:" + hx, "x:" + hx, "1000:" + hx[:62], "1000:" + hx + "ab",
		"99999999999999999999:" + hx, `msg="audit anchor" seq=12`, `msg="audit anchor" hash=` + hx,
		`headseq=5 hash=` + hx,
	} {
		if a, err := audit.ParseAnchor(in); err == nil {
			t.Errorf("ParseAnchor(%q) = %v, want an error", in, a)
		}
	}
}

// FuzzParseAnchor: anchors come from outside (flags, saved log lines).
func FuzzParseAnchor(f *testing.F) {
	hx := strings.Repeat("ab", 32)
	for _, s := range []string{"1:" + hx, `msg="audit anchor" seq=7 hash=` + hx, `{"seq":7,"hash":"` + hx + `"}`, "", ":", "seq=hash="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := audit.ParseAnchor(s)
		if err != nil {
			return
		}
		if a.Seq < 1 || len(a.Hash) != 32 {
			t.Fatalf("ParseAnchor(%q) = %v: want seq >= 1 and a 32-byte hash", s, a)
		}
		b, err := audit.ParseAnchor(a.String())
		if err != nil || b.Seq != a.Seq || !bytes.Equal(b.Hash, a.Hash) {
			t.Fatalf("round trip of %v: %v %v", a, b, err)
		}
	})
}
