package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/internal/device"
	"vigil/internal/enrol"
	"vigil/internal/store/sqlite"
)

func TestCLIEnrolToken(t *testing.T) {
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
	if code, _, errs := cli(t, nil, "device", "enrol-token", "--data-dir", dir); code != 2 || !strings.Contains(errs, "--device") {
		t.Errorf("without --device: %d %q", code, errs)
	}
	if code, _, errs := cli(t, nil, "device", "enrol-token", "--data-dir", dir, "--device", "dnope"); code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("unknown device: %d %q", code, errs)
	}
	if code, _, errs := cli(t, nil, "device", "enrol-token", "--data-dir", dir, "--device", c.DeviceID, "--ttl", "720h"); code != 2 || !strings.Contains(errs, "--ttl") {
		t.Errorf("ttl of a month: %d %q", code, errs)
	}
	code, out, errs = cli(t, nil, "device", "enrol-token", "--data-dir", dir, "--device", c.DeviceID, "--ttl", "10m", "--json")
	if code != 0 {
		t.Fatalf("enrol-token: %d %s", code, errs)
	}
	var tok enrol.Token
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.DeviceID != c.DeviceID || len(tok.Value) < 26 {
		t.Fatalf("enrol-token --json: %q %v", out, err)
	}
	if d := time.Until(tok.ExpiresAt); d < 9*time.Minute || d > 10*time.Minute {
		t.Errorf("token expires in %v, want 10m", d)
	}
	// Only the hash is stored; the token is usable once.
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "vigil.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.UseEnrolmentToken(context.Background(), enrol.HashToken(tok.Value), c.DeviceID, time.Now()); err != nil {
		t.Errorf("use the printed token: %v", err)
	}
	// "vigil device enrol" is the same command, under the name.
	if code, out, errs := cli(t, nil, "device", "enrol", "--data-dir", dir, "--device", c.DeviceID, "--json"); code != 0 || !strings.Contains(out, c.DeviceID) {
		t.Errorf("device enrol: %d %q %q", code, out, errs)
	}
}
