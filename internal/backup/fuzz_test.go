package backup_test

import (
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
