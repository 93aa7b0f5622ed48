package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzLoadFile feeds outside bytes to the config-file path: it must never
// panic, and whatever it accepts must dump to TOML that loads back to the
// same Config (secrets aside, which the dump redacts). Seeds: every file
// in testdata/ plus testdata/fuzz/FuzzLoadFile.
func FuzzLoadFile(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.toml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	noFiles := func(string) ([]byte, error) { return nil, errors.New("no files in fuzzing") }
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		if err := loadFile(&c, "fuzz.toml", data, noFiles); err != nil {
			return
		}
		_ = c.Validate()
		_, _ = c.StoreKind()
		var buf bytes.Buffer
		if err := c.Dump(&buf); err != nil {
			t.Fatalf("Dump of an accepted config: %v", err)
		}
		if c.Store != "" {
			return
		}
		back := Default()
		if err := loadFile(&back, "dump", buf.Bytes(), noFiles); err != nil {
			t.Fatalf("load of the dump: %v\ninput:\n%s\ndump:\n%s", err, data, buf.String())
		}
		if diff := cmp.Diff(c, back, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("dump round trip (-want +got):\n%s\ninput:\n%s\ndump:\n%s", diff, data, buf.String())
		}
	})
}
