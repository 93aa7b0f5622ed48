package outbound_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps: the outbound channels sit at the network edge. They must not
// reach the store, the bus, the safety engine or the app (the escalation
// calls them, they call no one back except through given callbacks), and
// outbound itself is standard library only.
func TestDeps(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go command not on PATH: the import rules cannot be checked")
	}
	banned := []string{"vigil/internal/store", "vigil/internal/bus", "vigil/internal/safety", "vigil/internal/app", "vigil/internal/alert", "testing"}
	for pkg, extra := range map[string][]string{
		"vigil/internal/notify/outbound": {"vigil/", "github.com/", "golang.org/"},
		"vigil/internal/notify/webhook":  nil,
		"vigil/internal/notify/sms":      nil,
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == pkg {
				continue
			}
			for _, b := range append(banned, extra...) {
				if dep == b || strings.HasPrefix(dep, b+"/") || (strings.HasSuffix(b, "/") && strings.HasPrefix(dep, b)) {
					t.Errorf("%s imports %s", pkg, dep)
				}
			}
		}
	}
}
