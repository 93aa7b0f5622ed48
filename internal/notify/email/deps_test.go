package email_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the channel a leaf of escalation: channels are called by
// escalation and call no one back, so they must not import the store, the
// bus, the safety engine, the alert lifecycle, the web API or the app
// (internal/app's TestDeps should carry the same rule).
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "vigil/internal/notify/email").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	banned := []string{"vigil/internal/store", "vigil/internal/bus", "vigil/internal/safety", "vigil/internal/app", "vigil/internal/alert", "vigil/internal/web", "vigil/internal/gateway", "github.com/nats-io/", "testing"}
	for _, dep := range strings.Fields(string(out)) {
		for _, b := range banned {
			if dep == b || strings.HasPrefix(dep, strings.TrimSuffix(b, "/")+"/") {
				t.Errorf("vigil/internal/notify/email imports %s", dep)
			}
		}
	}
}
