package backup_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"vigil/internal/backup"
)

type fixture struct {
	src, to string
	keys    backup.KeyFiles
	key     ed25519.PrivateKey
	pub     ed25519.PublicKey
	id      age.Identity
	rcpt    *age.X25519Recipient
	parts   []backup.Part
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{src: t.TempDir(), to: t.TempDir()}
	kf, err := backup.GenerateKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	f.keys = kf
	if f.key, err = backup.LoadSigningKey(kf.SigningKey); err != nil {
		t.Fatal(err)
	}
	if f.pub, err = backup.LoadVerifyKey(kf.VerifyKey); err != nil {
		t.Fatal(err)
	}
	if f.id, err = backup.LoadIdentity(kf.Identity); err != nil {
		t.Fatal(err)
	}
	if f.rcpt, err = backup.ParseRecipient(kf.Recipient); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"vigil.db":          bytes.Repeat([]byte("CANARY-Ada-Lovelace row "), 5000),
		"tls/ca.key":        []byte("-----BEGIN PRIVATE KEY-----\nsecret\n"),
		"seal.key":          []byte("seal-key-material"),
		"empty":             nil,
		"audit-signing.key": []byte("audit"),
	}
	for name, b := range files {
		p := filepath.Join(f.src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		f.parts = append(f.parts, backup.Part{Name: name, Path: p, Mode: 0o600})
	}
	return f
}

func (f *fixture) write(t *testing.T) string {
	t.Helper()
	dir, err := backup.Write(f.to, time.Date(2026, 11, 29, 18, 0, 0, 0, time.UTC), backup.Manifest{Store: "sqlite", SchemaVersion: 13, Counts: map[string]int64{"orgs": 1}}, f.parts, f.rcpt, f.key)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(t)
	dir := f.write(t)
	target := filepath.Join(t.TempDir(), "restored")
	m, err := backup.Restore(dir, target, f.pub, f.id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 13 || m.Counts["orgs"] != 1 || len(m.Parts) != len(f.parts) || m.Format != backup.Format || m.Recipient != f.rcpt.String() {
		t.Errorf("manifest %+v", m)
	}
	for _, p := range f.parts {
		want, _ := os.ReadFile(p.Path)
		got, err := os.ReadFile(filepath.Join(target, filepath.FromSlash(p.Name)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s restored as %d bytes (%v), want %d", p.Name, len(got), err, len(want))
		}
		fi, _ := os.Stat(filepath.Join(target, filepath.FromSlash(p.Name)))
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", p.Name, fi.Mode().Perm())
		}
	}
	// Nothing of the plaintext is in the backup's files.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		for _, canary := range []string{"CANARY-Ada", "seal-key-material", "secret"} {
			if bytes.Contains(b, []byte(canary)) {
				t.Errorf("%s holds %q in plaintext", e.Name(), canary)
			}
		}
	}
}

// TestAppendOnly: every backup is a new directory; older ones are never
// touched, even within the same second.
func TestAppendOnly(t *testing.T) {
	f := newFixture(t)
	first := f.write(t)
	before := snapshot(t, first)
	second := f.write(t)
	if first == second {
		t.Fatalf("two backups share the directory %s", first)
	}
	if after := snapshot(t, first); !equalMaps(before, after) {
		t.Error("the second backup changed the first")
	}
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		m[e.Name()] = string(b)
	}
	return m
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func manifest(t *testing.T, dir string) backup.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, backup.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := backup.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// partFile is the encrypted file of the part called name.
func partFile(t *testing.T, dir, name string) string {
	t.Helper()
	for _, p := range manifest(t, dir).Parts {
		if p.Name == name {
			return filepath.Join(dir, p.File)
		}
	}
	t.Fatalf("no part %s", name)
	return ""
}

// TestTamperRefused: each way of damaging a backup is refused before
// anything is written, with an error naming the part.
func TestTamperRefused(t *testing.T) {
	other, err := backup.GenerateKeys(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := backup.LoadSigningKey(other.SigningKey)
	otherID, _ := backup.LoadIdentity(other.Identity)

	cases := []struct {
		name    string
		damage  func(t *testing.T, f *fixture, dir string)
		id      func(f *fixture) age.Identity
		want    error
		mention string
	}{
		{"flipped byte in the store part", func(t *testing.T, f *fixture, dir string) {
			p := partFile(t, dir, "vigil.db")
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0x01
			writeOver(t, p, b)
		}, nil, backup.ErrChecksum, "part vigil.db"},
		{"truncated key part", func(t *testing.T, f *fixture, dir string) {
			p := partFile(t, dir, "tls/ca.key")
			b, _ := os.ReadFile(p)
			writeOver(t, p, b[:len(b)-10])
		}, nil, backup.ErrTruncated, "part tls/ca.key"},
		{"appended bytes", func(t *testing.T, f *fixture, dir string) {
			p := partFile(t, dir, "seal.key")
			b, _ := os.ReadFile(p)
			writeOver(t, p, append(b, 'x'))
		}, nil, backup.ErrChecksum, "part seal.key"},
		{"missing part", func(t *testing.T, f *fixture, dir string) {
			if err := os.Remove(partFile(t, dir, "audit-signing.key")); err != nil {
				t.Fatal(err)
			}
		}, nil, backup.ErrMissing, "part audit-signing.key"},
		{"edited manifest", func(t *testing.T, f *fixture, dir string) {
			p := filepath.Join(dir, backup.ManifestFile)
			b, _ := os.ReadFile(p)
			writeOver(t, p, bytes.Replace(b, []byte(`"schema_version": 13`), []byte(`"schema_version": 12`), 1))
		}, nil, backup.ErrSignature, backup.SignatureFile},
		{"re-signed with another key", func(t *testing.T, f *fixture, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, backup.ManifestFile))
			writeOver(t, filepath.Join(dir, backup.SignatureFile), []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(otherKey, b))))
		}, nil, backup.ErrSignature, backup.SignatureFile},
		{"no signature (interrupted backup)", func(t *testing.T, f *fixture, dir string) {
			if err := os.Remove(filepath.Join(dir, backup.SignatureFile)); err != nil {
				t.Fatal(err)
			}
		}, nil, backup.ErrIncomplete, backup.SignatureFile},
		{"wrong identity", func(*testing.T, *fixture, string) {}, func(*fixture) age.Identity { return otherID }, age.ErrIncorrectIdentity, "part "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			dir := f.write(t)
			c.damage(t, f, dir)
			id := f.id
			if c.id != nil {
				id = c.id(f)
			}
			target := filepath.Join(t.TempDir(), "restored")
			_, err := backup.Restore(dir, target, f.pub, id, nil)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("restore: %v; want %v naming %q", err, c.want, c.mention)
			}
			// Refused before writing: the target was not even created.
			if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("target exists after a refused restore: %v", err)
			}
		})
	}
}

func writeOver(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreRefusesNonEmptyTarget(t *testing.T) {
	f := newFixture(t)
	dir := f.write(t)
	target := t.TempDir()
	writeOver(t, filepath.Join(target, "vigil.db"), []byte("live data"))
	if _, err := backup.Restore(dir, target, f.pub, f.id, nil); !errors.Is(err, backup.ErrTargetNotEmpty) {
		t.Fatalf("restore into a non-empty dir: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "vigil.db")); string(b) != "live data" {
		t.Error("the existing file was changed")
	}
}

func TestKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "k")
	kf, err := backup.GenerateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{kf.SigningKey, kf.Identity} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v", p, err, fi.Mode().Perm())
		}
	}
	if _, err := backup.GenerateKeys(dir); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second keygen into the same dir: %v", err)
	}
	if err := os.Chmod(kf.SigningKey, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.LoadSigningKey(kf.SigningKey); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable signing key: %v", err)
	}
	if _, err := backup.ParseRecipient("age1notarecipient"); err == nil {
		t.Error("bad recipient accepted")
	}
	if _, err := backup.ParseVerifyKey([]byte("abcd")); err == nil {
		t.Error("short hex verify key accepted")
	}
}

func TestParseManifestRejects(t *testing.T) {
	good := backup.Manifest{Format: backup.Format, Parts: []backup.PartInfo{{Name: "tls/ca.key", File: "part-000.age", Mode: 0o600,
		SHA256: strings.Repeat("ab", 32), PlainSHA256: strings.Repeat("cd", 32)}}}
	enc := func(m backup.Manifest) []byte { b, _ := json.Marshal(m); return b }
	if _, err := backup.ParseManifest(enc(good)); err != nil {
		t.Fatalf("good manifest: %v", err)
	}
	cases := map[string]func(m *backup.Manifest){
		"parts[0].name": func(m *backup.Manifest) { m.Parts[0].Name = "../etc/passwd" },
		"parts[0].file": func(m *backup.Manifest) { m.Parts[0].File = "../x.age" },
		"sha256":        func(m *backup.Manifest) { m.Parts[0].SHA256 = "zz" },
		"format":        func(m *backup.Manifest) { m.Format = "other/1" },
		"mode":          func(m *backup.Manifest) { m.Parts[0].Mode = 0o4755 },
	}
	for field, mut := range cases {
		m := good
		m.Parts = append([]backup.PartInfo(nil), good.Parts...)
		mut(&m)
		if _, err := backup.ParseManifest(enc(m)); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
	if _, err := backup.ParseManifest([]byte(`{"format":"vigil-backup/1","extra":1}`)); err == nil {
		t.Error("unknown field accepted")
	}
}

// TestRestoreAcceptRefuses: the caller sees the verified manifest before
// anything is written, and its refusal leaves no target.
func TestRestoreAcceptRefuses(t *testing.T) {
	f := newFixture(t)
	dir := f.write(t)
	target := filepath.Join(t.TempDir(), "restored")
	refuse := errors.New("not this store")
	var seen backup.Manifest
	_, err := backup.Restore(dir, target, f.pub, f.id, func(m backup.Manifest) error { seen = m; return refuse })
	if !errors.Is(err, refuse) || seen.Store != "sqlite" {
		t.Fatalf("restore: %v (manifest %+v)", err, seen)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target after a refusal: %v", err)
	}
}
