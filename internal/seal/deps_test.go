package seal

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps: seal is a leaf of standard-library crypto, so the key-encryption
// key never passes through third-party code and any package may use it.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "vigil/internal/seal").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "vigil/internal/seal" {
			continue
		}
		if first, _, _ := strings.Cut(dep, "/"); first == "vigil" || strings.Contains(first, ".") {
			t.Errorf("seal imports %s: it must import only the standard library", dep)
		}
	}
}
