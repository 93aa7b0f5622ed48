package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"vigil/internal/clock"
	"vigil/internal/device"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
)

// TestCLIDeviceRevoke: `vigil device revoke` needs a device and a reason,
// disables the device and records the revocation in the audit log first.
func TestCLIDeviceRevoke(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := cli(t, nil, "org", "add", "--data-dir", dir, "--id", "acme", "--name", "Acme"); code != 0 {
		t.Fatalf("org add: %s", errs)
	}
	code, out, errs := cli(t, nil, "device", "add", "--data-dir", dir, "--org", "acme", "--name", "pendant", "--json")
	if code != 0 {
		t.Fatalf("device add: %s", errs)
	}
	var c device.Credentials
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli(t, nil, "device", "revoke", "--data-dir", dir, "--device", c.DeviceID); code != 2 || !strings.Contains(errs, "--reason") {
		t.Errorf("without --reason: %d %q", code, errs)
	}
	if code, _, errs := cli(t, nil, "device", "revoke", "--data-dir", dir, "--device", "dnope", "--reason", "lost"); code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("unknown device: %d %q", code, errs)
	}
	if code, out, errs := cli(t, nil, "device", "revoke", "--data-dir", dir, "--device", c.DeviceID, "--reason", "lost on a visit"); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %d %q %q", code, out, errs)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := st.GetDevice(ctx, c.DeviceID)
	if err != nil || d.DisabledAt.IsZero() {
		t.Fatalf("device after revoke: %v %+v", err, d)
	}
	if _, ok, _ := device.NewRegistry(st, clock.Real{}).AuthenticateDevice(ctx, c.DeviceID, c.Secret); ok {
		t.Error("the revoked device's secret still authenticates")
	}
	recs, err := st.ListAudit(ctx, store.AuditFilter{OrgID: "acme", Action: "device.revoke"})
	if err != nil || len(recs) != 1 || recs[0].Severity != "high" || !strings.Contains(recs[0].Details, "lost on a visit") {
		t.Errorf("audit: %v %+v", err, recs)
	}
}
