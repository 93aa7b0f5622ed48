package backup_test

import (
	"crypto/ed25519"
	"path/filepath"
	"testing"

	"vigil/internal/backup"
)

// FuzzParseManifest: a manifest is outside bytes (read from the backup
// target before its signature is trusted); parsing never panics and never
// accepts a part name that escapes the restore target.
func FuzzParseManifest(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzParseManifest (a good manifest, escaping
	// names and files, trailing data, an unknown field).
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := backup.ParseManifest(b)
		if err != nil {
			return
		}
		for _, p := range m.Parts {
			if !filepath.IsLocal(filepath.FromSlash(p.Name)) || !filepath.IsLocal(p.File) {
				t.Fatalf("accepted part %q file %q", p.Name, p.File)
			}
		}
	})
}

// FuzzVerifyManifest: manifest.json and manifest.sig as fetched from a
// remote target are outside bytes; nothing but a valid signature by the
// verify key is accepted, and no input panics. Seeds:
// testdata/fuzz/FuzzVerifyManifest.
func FuzzVerifyManifest(f *testing.F) {
	pub := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, mb, sig []byte) {
		if _, err := backup.VerifyManifest(mb, sig, pub); err == nil {
			// Only the all-zero seed's key could have signed it: the
			// fuzzer cannot forge Ed25519.
			t.Fatalf("accepted manifest %q with signature %q", mb, sig)
		}
	})
}
