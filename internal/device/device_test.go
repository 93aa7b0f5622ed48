package device_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/internal/clock"
	"vigil/internal/device"
	"vigil/internal/store/sqlite"
)

func registry(t *testing.T) (*device.Registry, *sqlite.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "v.db"), sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	return device.NewRegistry(st, clock.Func(func() time.Time { return now })), st
}

func TestRegisterAndAuthenticate(t *testing.T) {
	ctx := context.Background()
	r, st := registry(t)
	if _, err := r.Register(ctx, "acme", "pendant"); !errors.Is(err, device.ErrUnknownOrg) {
		t.Fatalf("register in a missing org: %v, want ErrUnknownOrg", err)
	}
	if err := r.EnsureOrg(ctx, "acme", "Acme"); err != nil {
		t.Fatal(err)
	}
	if err := r.EnsureOrg(ctx, "acme", "Acme"); err != nil {
		t.Fatalf("EnsureOrg twice: %v", err)
	}
	for _, bad := range []string{"", "  ", strings.Repeat("x", 101), "a\x00b", "line\nbreak"} {
		if _, err := r.Register(ctx, "acme", bad); !errors.Is(err, device.ErrInvalidName) {
			t.Errorf("name %q: %v, want ErrInvalidName", bad, err)
		}
	}
	for _, bad := range []string{"", "ACME", "a.b", "a b", "1abc", "a>"} {
		if _, err := r.Register(ctx, bad, "x"); !errors.Is(err, device.ErrInvalidOrg) {
			t.Errorf("org %q: %v, want ErrInvalidOrg", bad, err)
		}
	}
	c, err := r.Register(ctx, "acme", "pendant 1")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.DeviceID) != 17 || c.DeviceID[0] != 'd' || len(c.Secret) != 43 {
		t.Fatalf("credentials shape: %+v", c)
	}
	d, err := st.GetDevice(ctx, c.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(d.SecretHash, []byte(c.Secret)) || !bytes.Equal(d.SecretHash, device.HashSecret(c.Secret)) {
		t.Fatal("secret not stored as its hash only")
	}
	for _, tc := range []struct {
		name, id, secret string
		ok               bool
	}{
		{"right", c.DeviceID, c.Secret, true},
		{"wrong secret", c.DeviceID, c.Secret + "x", false},
		{"empty secret", c.DeviceID, "", false},
		{"unknown device", "dzzzzzzzzzzzzzzzz", c.Secret, false},
		{"oversize secret", c.DeviceID, strings.Repeat("a", 1000), false},
	} {
		org, ok, err := r.AuthenticateDevice(ctx, tc.id, tc.secret)
		if err != nil || ok != tc.ok || (ok && org != "acme") {
			t.Errorf("%s: org %q ok %v err %v, want ok %v", tc.name, org, ok, err, tc.ok)
		}
	}
	// Rotation voids the old secret; disabling voids every secret.
	c2, err := r.RotateSecret(ctx, c.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := r.AuthenticateDevice(ctx, c.DeviceID, c.Secret); ok {
		t.Error("old secret still works after rotation")
	}
	if _, ok, _ := r.AuthenticateDevice(ctx, c.DeviceID, c2.Secret); !ok {
		t.Error("new secret refused")
	}
	if err := st.DisableDevice(ctx, c.DeviceID, time.Date(2026, 11, 29, 11, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := r.AuthenticateDevice(ctx, c.DeviceID, c2.Secret); ok {
		t.Error("disabled device authenticated")
	}
}

func TestIDsAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id, err := device.NewID()
		if err != nil {
			t.Fatal(err)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}

func TestAuthenticateDeviceCert(t *testing.T) {
	ctx := context.Background()
	r, st := registry(t)
	if err := r.EnsureOrg(ctx, "acme", "Acme"); err != nil {
		t.Fatal(err)
	}
	c, err := r.Register(ctx, "acme", "pendant")
	if err != nil {
		t.Fatal(err)
	}
	check := func(id, fp string, want bool) {
		t.Helper()
		org, ok, err := r.AuthenticateDeviceCert(ctx, id, fp)
		if err != nil || ok != want || (ok && org != "acme") {
			t.Errorf("AuthenticateDeviceCert(%s, %s) = %q %v %v, want %v", id, fp, org, ok, err, want)
		}
	}
	check(c.DeviceID, "ab12", false) // not enrolled yet
	if err := st.SetDeviceCertFingerprint(ctx, c.DeviceID, "ab12"); err != nil {
		t.Fatal(err)
	}
	check(c.DeviceID, "ab12", true)
	check(c.DeviceID, "ab13", false) // another (or an older) certificate
	check(c.DeviceID, "", false)
	check("dnope", "ab12", false)
	if err := st.DisableDevice(ctx, c.DeviceID, time.Date(2026, 11, 29, 11, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	check(c.DeviceID, "ab12", false) // disabled
}
