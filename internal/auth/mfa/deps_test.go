package mfa_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps enforces the import rules in the package comments.
func TestDeps(t *testing.T) {
	rules := []struct {
		pkg    string
		banned []string // prefixes, or exact names ending in "$"
		why    string
	}{
		{"vigil/internal/auth/mfa",
			[]string{"vigil/", "database/sql$", "github.com/nats-io/", "github.com/jackc/", "modernc.org/", "github.com/mochi-mqtt/", "github.com/eclipse/paho", "testing$"},
			"mfa is the factor cryptography only: no Vigil package (not even seal: the caller seals), no store driver, no bus, no testing"},
		{"vigil/internal/auth/mfa/mfatest",
			[]string{"vigil/", "github.com/", "golang.org/", "testing$"},
			"the software authenticator is standard library only and usable outside tests (simulator)"},
	}
	for _, r := range rules {
		out, err := exec.Command("go", "list", "-deps", r.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", r.pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == r.pkg || strings.HasPrefix(dep, "vendor/") {
				continue
			}
			for _, b := range r.banned {
				if exact, ok := strings.CutSuffix(b, "$"); ok && dep == exact || !ok && strings.HasPrefix(dep, b) {
					t.Errorf("%s imports %s: %s", r.pkg, dep, r.why)
				}
			}
		}
	}
}
