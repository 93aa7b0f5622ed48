package app_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps enforces the import rules of CONVENTIONS.md with `go list -deps`:
// each banned edge has a reason.
func TestDeps(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go command not on PATH: the import rules cannot be checked")
	}
	rules := []struct {
		pkg    string
		banned []string
		why    string
		allow  []string // exceptions to banned
	}{
		{"vigil/internal/event", []string{"vigil/"}, "event is the shared schema: a leaf that imports only the standard library", nil},
		{"vigil/internal/clock", []string{"vigil/"}, "clock is a leaf", nil},
		{"vigil/internal/config", []string{"vigil/"}, "config is read by everyone and knows no one", nil},
		{"vigil/internal/pki", []string{"vigil/"}, "pki is standard-library crypto only", nil},
		{"vigil/internal/gateway/mqttgw", []string{"vigil/internal/store", "vigil/internal/bus", "vigil/internal/safety", "vigil/internal/alert", "github.com/nats-io/", "github.com/jackc/", "modernc.org/sqlite"}, "gateways only speak a wire protocol and hand events on", nil},
		{"vigil/internal/gateway/gt06", []string{"vigil/internal/store", "vigil/internal/bus", "vigil/internal/safety", "vigil/internal/alert", "vigil/internal/web", "github.com/nats-io/", "github.com/jackc/", "modernc.org/sqlite"}, "gateways only speak a wire protocol and hand events on", nil},
		{"vigil/internal/gateway/httpgw", []string{"vigil/internal/store", "vigil/internal/bus", "vigil/internal/safety", "vigil/internal/alert", "github.com/nats-io/", "github.com/jackc/", "modernc.org/sqlite"}, "gateways only speak a wire protocol and hand events on", nil},
		{"vigil/internal/store", []string{"vigil/internal/bus", "vigil/internal/gateway", "net/http", "github.com/nats-io/", "vigil/internal/store/sqlite", "vigil/internal/store/postgres"}, "the store contract knows no drivers or transports", nil},
		{"vigil/internal/enrol", []string{"vigil/internal/store/sqlite", "vigil/internal/store/postgres", "vigil/internal/bus", "vigil/internal/gateway", "net/http", "github.com/nats-io/", "github.com/jackc/", "modernc.org/sqlite"}, "enrolment is domain code; httpgw serves it over HTTP", nil},
		{"vigil/internal/device", []string{"vigil/internal/store/sqlite", "vigil/internal/store/postgres", "vigil/internal/bus", "vigil/internal/gateway", "net/http"}, "domain code never imports NATS, SQL drivers or HTTP", nil},
		{"vigil/internal/bus", []string{"vigil/internal/store", "vigil/internal/gateway", "vigil/internal/device"}, "the bus moves bytes", nil},
		{"vigil/internal/sim", []string{"vigil/internal/store", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/app"}, "the simulator is an outside client", nil},
		{"vigil/internal/fall", []string{"vigil/", "net", "database/sql", "github.com/", "modernc.org/"}, "the detector runs inside processors: standard library only", nil},
		{"vigil/internal/fall/sisfall", []string{"vigil/", "net", "database/sql", "github.com/", "modernc.org/"}, "the loader parses outside bytes: standard library only", nil},
		{"vigil/internal/fall/lab", []string{"vigil/internal/app", "vigil/internal/store", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/device", "vigil/internal/sim", "vigil/internal/fallwatch", "net", "database/sql", "github.com/", "modernc.org/"}, "the lab is tooling over the detector and the loader: it reads files, not the running system", nil},
		{"vigil/internal/fallwatch", []string{"vigil/internal/store", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/app", "github.com/nats-io/", "net/http"}, "fallwatch is domain code behind its own small interfaces", nil},
		{"vigil/internal/deadline", []string{"vigil/", "net", "database/sql", "github.com/"}, "the scheduler is a leaf: standard library and the clock only", []string{"vigil/internal/clock"}},
		{"vigil/internal/geofence", []string{"vigil/", "net", "database/sql", "github.com/nats-io/", "github.com/jackc/", "modernc.org/"}, "geofences are pure geometry (orb, rtree)", nil},
		{"vigil/internal/alert", []string{"vigil/internal/store/sqlite", "vigil/internal/store/postgres", "vigil/internal/bus", "vigil/internal/gateway", "net/http", "github.com/nats-io/"}, "the alert lifecycle is domain code", nil},
		{"vigil/internal/safety", []string{"vigil/internal/store/sqlite", "vigil/internal/store/postgres", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/web", "net/http", "github.com/nats-io/", "github.com/jackc/", "modernc.org/sqlite"}, "rules are testable with no broker or database driver", nil},
		{"vigil/internal/web", []string{"vigil/internal/store/sqlite", "vigil/internal/store/encrypted", "vigil/internal/store/postgres", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/app", "github.com/nats-io/", "github.com/jackc/", "modernc.org/sqlite"}, "handlers reach data through their own interfaces", nil},
		{"vigil/internal/web/console", []string{"vigil/internal/store/sqlite", "vigil/internal/store/encrypted", "vigil/internal/store/postgres", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/app", "vigil/internal/web", "vigil/internal/notify/", "github.com/nats-io/", "github.com/jackc/", "modernc.org/sqlite"}, "console pages reach data through their own interfaces, as the API's handlers do", nil},
		{"vigil/internal/web/workerapp", []string{"vigil/internal/store", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/app", "vigil/internal/web", "vigil/internal/safety", "vigil/internal/notify", "github.com/nats-io/", "github.com/jackc/", "modernc.org/sqlite"}, "the worker app is static pages and scripts over the public APIs", nil},
		{"vigil/internal/escalation", []string{"vigil/internal/store/sqlite", "vigil/internal/store/postgres", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/safety", "vigil/internal/web", "vigil/internal/app", "vigil/internal/notify/", "github.com/nats-io/", "net/http"}, "escalation drives channels through notify.Notifier only", nil},
		{"vigil/internal/notify", []string{"vigil/"}, "the channel contract is a leaf", nil},
		{"vigil/internal/firmware", []string{"vigil/internal/app", "vigil/internal/store/sqlite", "vigil/internal/store/postgres", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/web", "vigil/internal/safety", "github.com/nats-io/", "github.com/jackc/", "modernc.org/sqlite"}, "firmware is TUF metadata, the director's choices and rollout policy: no store driver, bus or HTTP server", nil},
		{"vigil/internal/firmware/fleet", []string{"vigil/internal/app", "vigil/internal/store/sqlite", "vigil/internal/store/postgres", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/web", "vigil/internal/safety", "github.com/nats-io/", "github.com/jackc/", "modernc.org/sqlite"}, "fleet is the server's firmware policy over its own store interface", nil},
		{"vigil/internal/store/encrypted", []string{"vigil/internal/store/sqlite", "vigil/internal/store/postgres", "vigil/internal/bus", "net/http", "github.com/"}, "the encryption decorator is crypto over the store contract", nil},
		{"vigil/internal/datakey", []string{"vigil/", "net", "database/sql", "github.com/", "modernc.org/"}, "data keys are standard-library crypto over the seal KEK", []string{"vigil/internal/seal"}},
		{"vigil/internal/notify/console", []string{"vigil/internal/store", "vigil/internal/bus", "vigil/internal/safety", "vigil/internal/alert", "vigil/internal/escalation", "vigil/internal/app"}, "a channel delivers, it decides nothing", nil},
		{"vigil/internal/notify/email", []string{"vigil/internal/store", "vigil/internal/bus", "vigil/internal/safety", "vigil/internal/alert", "vigil/internal/escalation", "vigil/internal/app"}, "a channel delivers, it decides nothing", nil},
		{"vigil/internal/notify/sms", []string{"vigil/internal/store", "vigil/internal/bus", "vigil/internal/safety", "vigil/internal/alert", "vigil/internal/escalation", "vigil/internal/app"}, "a channel delivers, it decides nothing", nil},
		{"vigil/internal/notify/webhook", []string{"vigil/internal/store", "vigil/internal/bus", "vigil/internal/safety", "vigil/internal/alert", "vigil/internal/escalation", "vigil/internal/app"}, "a channel delivers, it decides nothing", nil},
		{"vigil/internal/notify/outbound", []string{"vigil/"}, "the SSRF-safe client is standard library only", nil},
		{"vigil/internal/report", []string{"vigil/internal/store/sqlite", "vigil/internal/store/postgres", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/app", "vigil/internal/web", "net/http"}, "the report is computation over store records", nil},
		{"vigil/internal/auth", []string{"vigil/internal/store/sqlite", "vigil/internal/store/postgres", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/web", "vigil/internal/app", "github.com/nats-io/", "github.com/jackc/", "modernc.org/sqlite"}, "sign-in and permissions are domain code; web maps them to HTTP", nil},
		{"vigil/internal/auth/password", []string{"vigil/"}, "password hashing and policy are a leaf", nil},
		{"vigil/internal/auth/guard", []string{"vigil/"}, "the throttle is a leaf: standard library and the clock", []string{"vigil/internal/clock"}},
		{"vigil/internal/auth/mfa", []string{"vigil/", "github.com/nats-io/", "github.com/jackc/", "modernc.org/"}, "second factors are a leaf: the caller stores and seals", nil},
		{"vigil/internal/seal", []string{"vigil/", "github.com/"}, "sealing is standard-library crypto only", nil},
		{"vigil/internal/audit", []string{"vigil/internal/store/sqlite", "vigil/internal/store/postgres", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/web", "vigil/internal/auth", "net/http", "github.com/"}, "the audit chain is hashing over store records", nil},
		{"vigil/internal/loadgen", []string{"vigil/internal/store", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/app"}, "the load generator is an outside client", nil},
		{"vigil/internal/retention", []string{"vigil/internal/store/sqlite", "vigil/internal/store/postgres", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/web", "vigil/internal/app", "net/http", "github.com/"}, "retention is policy and a purge loop over its own small store interface", nil},
		{"vigil/internal/backup/snapshot", []string{"net/http", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/app", "vigil/internal/web", "github.com/nats-io/"}, "the snapshot reads the store and the data dir: it moves no bytes over a network", nil},
		{"vigil/internal/backup/remote", []string{"vigil/internal/store", "vigil/internal/bus", "vigil/internal/gateway", "vigil/internal/app", "vigil/internal/web", "database/sql", "github.com/", "modernc.org/"}, "moving backup files over HTTPS needs no store or driver", nil},
		{"vigil/internal/backup", []string{"vigil/", "database/sql", "net/http", "github.com/", "modernc.org/"}, "the backup format is files, age and Ed25519: the caller snapshots the store and checks the restore", nil},
	}
	for _, r := range rules {
		out, err := exec.Command("go", "list", "-deps", r.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", r.pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == r.pkg || slices.Contains(r.allow, dep) {
				continue
			}
			for _, b := range r.banned {
				if strings.HasPrefix(dep, b) {
					t.Errorf("%s imports %s: %s", r.pkg, dep, r.why)
				}
			}
		}
	}
	// No production package imports testing.
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "vigil/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "vigil/internal/vigiltest") || strings.Contains(f[0], "storetest") {
			continue
		}
		for _, imp := range f[1:] {
			if imp == "testing" {
				t.Errorf("production package %s imports testing", f[0])
			}
		}
	}
}
