package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/internal/enrol"
	"vigil/internal/vigiltest"
)

// TestCLISimEnrol: with mutual TLS required on MQTT, `vigil sim --enrol`
// enrols its devices for real (tokens through the store, a CSR per device
// over HTTPS) and gets its events acknowledged over MQTT; `--enrol-tokens`
// does the same from a token file, with no store access.
func TestCLISimEnrol(t *testing.T) {
	cfg := vigiltest.Config(t)
	cfg.MQTT.ClientCerts = "required"
	a := vigiltest.StartApp(t, cfg)
	ctx := context.Background()
	base := []string{"sim", "--data-dir", cfg.DataDir, "--server", a.Addr("mqtt"), "--https", a.Addr("https"),
		"--api", "off", "--rate", "5", "--duration", "2s"}
	acked := regexp.MustCompile(`acknowledged (\d+), refused (\d+)`)
	ackedOf := func(t *testing.T, out string) int {
		t.Helper()
		m := acked.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no summary in %q", out)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}

	t.Run("without --enrol the devices are refused", func(t *testing.T) {
		_, out, _ := cli(t, nil, append(base, "--devices", "2", "--http-share", "0", "--org", "plain")...)
		if n := ackedOf(t, out); n != 0 {
			t.Errorf("%d events acknowledged without client certificates, want 0", n)
		}
	})

	t.Run("--enrol", func(t *testing.T) {
		code, out, errs := cli(t, nil, append(base, "--devices", "3", "--http-share", "0", "--enrol")...)
		if code != 0 {
			t.Fatalf("vigil sim --enrol: %d %s %s", code, out, errs)
		}
		if !strings.Contains(out, "enrolled 3 devices") {
			t.Errorf("output %q lacks the enrolment", out)
		}
		if n := ackedOf(t, out); n == 0 {
			t.Errorf("no event acknowledged over mutual TLS: %q", out)
		}
		// The simulator reuses the devices of its file (<data dir>/sim-devices.json):
		// the two of the run above, and one more.
		list, err := a.Store().ListDevices(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 {
			t.Errorf("%d devices, want 3", len(list))
		}
		for _, d := range list {
			if d.CertFingerprint == "" {
				t.Errorf("device %s has no certificate", d.ID)
			}
		}
	})

	t.Run("--enrol-tokens", func(t *testing.T) {
		if err := a.Devices().EnsureOrg(ctx, "remote", "Remote"); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for i := range 2 {
			c, err := a.Devices().Register(ctx, "remote", fmt.Sprintf("remote %d", i))
			if err != nil {
				t.Fatal(err)
			}
			tok, err := enrol.NewToken(ctx, a.Store(), time.Now(), c.DeviceID, 0)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				lines = append(lines, c.DeviceID+" "+tok.Value)
			} else {
				lines = append(lines, fmt.Sprintf(`{"device_id":%q,"token":%q}`, c.DeviceID, tok.Value))
			}
		}
		file := filepath.Join(t.TempDir(), "tokens")
		if err := os.WriteFile(file, []byte("# device token\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// No data directory: the simulator never opens the store.
		code, out, errs := cli(t, nil, "sim", "--data-dir", filepath.Join(t.TempDir(), "none"), "--ca", filepath.Join(cfg.DataDir, "tls", "ca.crt"),
			"--server", a.Addr("mqtt"), "--https", a.Addr("https"), "--rate", "5", "--duration", "2s", "--enrol-tokens", file)
		if code != 0 {
			t.Fatalf("vigil sim --enrol-tokens: %d %s %s", code, out, errs)
		}
		if !strings.Contains(out, "enrolled 2 devices") || ackedOf(t, out) == 0 {
			t.Errorf("output %q: want 2 enrolled and events acknowledged", out)
		}
		// The tokens are spent: a second run is refused, naming the cause.
		code, _, errs = cli(t, nil, "sim", "--data-dir", filepath.Join(t.TempDir(), "none"), "--ca", filepath.Join(cfg.DataDir, "tls", "ca.crt"),
			"--server", a.Addr("mqtt"), "--https", a.Addr("https"), "--duration", "1s", "--enrol-tokens", file)
		if code != 1 || !strings.Contains(errs, "token_used") {
			t.Errorf("second run with spent tokens: %d %q, want 1 and token_used", code, errs)
		}
		for _, tok := range lines {
			if f := strings.Fields(tok); len(f) == 2 && strings.Contains(errs, f[1]) {
				t.Error("an error repeats a token")
			}
		}
	})

	t.Run("bad token file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "tokens")
		if err := os.WriteFile(file, []byte("dabc\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errs := cli(t, nil, "sim", "--data-dir", cfg.DataDir, "--server", a.Addr("mqtt"), "--enrol-tokens", file)
		if code != 2 || !strings.Contains(errs, "line 1") {
			t.Errorf("bad token file: %d %q, want 2 naming line 1", code, errs)
		}
		code, _, errs = cli(t, nil, "sim", "--data-dir", cfg.DataDir, "--server", a.Addr("mqtt"), "--enrol", "--https", "off")
		if code != 2 || !strings.Contains(errs, "--https") {
			t.Errorf("--enrol without HTTPS: %d %q, want 2 naming --https", code, errs)
		}
	})
}
