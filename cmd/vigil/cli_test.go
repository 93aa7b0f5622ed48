package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"vigil/internal/device"
	"vigil/internal/vigiltest"
)

func cli(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLIDeviceLifecycle(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := cli(t, nil, "device", "add", "--data-dir", dir, "--org", "acme", "--name", "p1"); code != 1 || !strings.Contains(errs, "vigil org add --id acme") {
		t.Fatalf("device add to a missing org: code %d, %q", code, errs)
	}
	if code, out, errs := cli(t, nil, "org", "add", "--data-dir", dir, "--id", "acme", "--name", "Acme Care"); code != 0 || !strings.Contains(out, "acme") {
		t.Fatalf("org add: %d %q %q", code, out, errs)
	}
	if code, _, errs := cli(t, nil, "org", "add", "--data-dir", dir, "--id", "Bad Id", "--name", "x"); code != 2 || !strings.Contains(errs, "--id") {
		t.Fatalf("org add with a bad id: %d %q", code, errs)
	}
	code, out, errs := cli(t, nil, "device", "add", "--data-dir", dir, "--org", "acme", "--name", "pendant 1", "--json")
	if code != 0 {
		t.Fatalf("device add: %d %s", code, errs)
	}
	var c device.Credentials
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.DeviceID == "" || c.Secret == "" {
		t.Fatalf("device add --json: %q %v", out, err)
	}
	code, out, _ = cli(t, nil, "device", "list", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, c.DeviceID) || !strings.Contains(out, "pendant 1") || strings.Contains(out, c.Secret) {
		t.Fatalf("device list: %d %q", code, out)
	}
	if code, _, errs := cli(t, nil, "device", "add", "--data-dir", dir, "--org", "acme"); code != 2 || !strings.Contains(errs, "--name") {
		t.Fatalf("device add without --name: %d %q", code, errs)
	}
	if code, out, _ := cli(t, nil, "migrate", "--data-dir", dir); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate on a current schema: %d %q", code, out)
	}
}

func TestCLIMigratePostgres(t *testing.T) {
	url := vigiltest.PostgresURL(t)
	code, out, errs := cli(t, nil, "migrate", "--data-dir", t.TempDir(), "--store", url)
	if code != 0 || !strings.Contains(out, "applied migrations") {
		t.Fatalf("migrate: %d %q %q", code, out, errs)
	}
	code, out, _ = cli(t, nil, "migrate", "--data-dir", t.TempDir(), "--store", url)
	if code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("second migrate: %d %q", code, out)
	}
}

func TestCLIConfig(t *testing.T) {
	env := map[string]string{"VIGIL_STORE": "postgres://vigil:hunter2-secret@db/vigil", "VIGIL_NATS_URL": "nats://vigil:natspw-secret@nats1:4222"}
	code, out, errs := cli(t, env, "config", "dump")
	if code != 0 || strings.Contains(out, "hunter2") || strings.Contains(out, "natspw") || !strings.Contains(out, "[redacted]") {
		t.Fatalf("config dump: %d %q %q", code, out, errs)
	}
	if code, out, _ := cli(t, nil, "config", "check"); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("config check: %d %q", code, out)
	}
	code, _, errs = cli(t, nil, "config", "check", "--admin-listen", "0.0.0.0:9090")
	if code == 0 || !strings.Contains(errs, "admin") {
		t.Fatalf("public admin listener accepted: %d %q", code, errs)
	}
	if code, _, errs := cli(t, nil, "nonsense"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errs)
	}
}
