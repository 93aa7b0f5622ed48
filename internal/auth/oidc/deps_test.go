package oidc_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps enforces the import rules in the package comment.
func TestDeps(t *testing.T) {
	const pkg = "vigil/internal/auth/oidc"
	allowed := map[string]bool{"vigil/internal/clock": true}
	banned := []string{ // prefixes, or exact names ending in "$"
		"vigil/", "database/sql$", "github.com/nats-io/", "github.com/jackc/", "modernc.org/",
		"github.com/mochi-mqtt/", "github.com/eclipse/paho", "testing$", "net/http/httptest$",
	}
	const why = "oidc is a client of the identity provider only: no Vigil package but clock, no store driver, no bus, no testing"
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == pkg || allowed[dep] || strings.HasPrefix(dep, "vendor/") {
			continue
		}
		for _, b := range banned {
			if exact, ok := strings.CutSuffix(b, "$"); ok && dep == exact || !ok && strings.HasPrefix(dep, b) {
				t.Errorf("%s imports %s: %s", pkg, dep, why)
			}
		}
	}
}
