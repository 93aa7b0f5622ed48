package remote

import (
	"path"
	"strings"
	"testing"
)

// FuzzSplitPath: a request path the receiver accepts names a backup
// directory and a file inside it, and nothing else: no separator, dot
// element or escape survives into the names it returns. Seeds in
// testdata/fuzz/FuzzSplitPath.
func FuzzSplitPath(f *testing.F) {
	for _, s := range []string{"/vigil-20261129T120000Z-0123abcd/part-000.age", "/vigil-20261129T120000Z-0123abcd/manifest.sig", "/../etc/passwd", "/vigil-20261129T120000Z-0123abcd/../x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		name, file, err := splitPath(p)
		if err != nil {
			return
		}
		for _, s := range []string{name, file} {
			if s == "" || strings.ContainsAny(s, "/\\\x00") || s == "." || s == ".." || path.Clean(s) != s {
				t.Fatalf("splitPath(%q) = %q, %q", p, name, file)
			}
		}
		if !backupName.MatchString(name) || (file != "manifest.json" && file != "manifest.sig" && !partFile.MatchString(file)) {
			t.Fatalf("splitPath(%q) = %q, %q", p, name, file)
		}
	})
}
