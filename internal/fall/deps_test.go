package fall_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps fall detection domain code: the detector and the loader
// import only the standard library (and each other as stated); nothing here
// reaches the app, the store, the bus or the network.
func TestDeps(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go command not on PATH: the import rules cannot be checked")
	}
	rules := []struct {
		pkg     string
		allowed []string // vigil packages it may import
		why     string
	}{
		{"vigil/internal/fall", nil, "the detector runs inside processors: standard library only"},
		{"vigil/internal/fall/sisfall", nil, "the loader parses outside bytes: standard library only"},
		{"vigil/internal/fall/lab", []string{"vigil/internal/fall", "vigil/internal/fall/sisfall"}, "the lab is tooling over the detector and the loader"},
	}
	banned := []string{"net", "net/http", "database/sql", "github.com/", "modernc.org/", "golang.org/x/net"}
	for _, r := range rules {
		out, err := exec.Command("go", "list", "-deps", r.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", r.pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == r.pkg {
				continue
			}
			if strings.HasPrefix(dep, "vigil/") && !contains(r.allowed, dep) {
				t.Errorf("%s imports %s: %s", r.pkg, dep, r.why)
			}
			for _, b := range banned {
				if dep == b || strings.HasPrefix(dep, b) && strings.HasSuffix(b, "/") {
					t.Errorf("%s imports %s: %s", r.pkg, dep, r.why)
				}
			}
		}
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
